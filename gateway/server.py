"""Entry point for uvicorn workers: build the app from the environment (``GATEWAY_*``)."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.settings import Settings


def app_from_env() -> ASGIApp:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(settings)
