"""The one place that imports litellm, configured to stay quiet and offline.

Importing this module costs litellm's ~5 s and ~200 MiB, which is why only the litellm adapter
(loaded by the provider registry when a policy has an ``anthropic``, ``gemini`` or ``litellm``
deployment) imports it. What is set here, and why:

- ``LITELLM_LOCAL_MODEL_COST_MAP``: litellm otherwise downloads its price map from GitHub at import;
  the gateway must start without internet access and prices come from the policy anyway.
  Set before the import (it is read at import time) and only as a default, so an operator may
  still override it from the environment.
- no callbacks, no debug banners, no message logging: the gateway does its own access logs and
  metrics, and prompts must not reach litellm's loggers (nor the vendor key, at DEBUG level).
- streaming logging off: it runs litellm's success handlers on every chunk for no reader.
- ``drop_params`` is deliberately *not* set globally; the adapter passes it per call.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402  (must follow the environment default above)

litellm.telemetry = False  # gone from recent releases; harmless there, and needed on older ones
litellm.suppress_debug_info = True
litellm.set_verbose = False  # type: ignore[attr-defined]  # set at run time, not declared in its stubs
litellm.turn_off_message_logging = True
litellm.disable_streaming_logging = True
litellm.callbacks = []
litellm.success_callback = []
litellm.failure_callback = []
litellm.num_retries = None  # retries belong to the gateway's executor, per attempt and target

for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
    logging.getLogger(_name).setLevel(logging.WARNING)

__all__ = ["litellm"]
