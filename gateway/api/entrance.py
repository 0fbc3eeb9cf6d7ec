"""The hot path: the proxy routes served straight from ASGI, in front of FastAPI — their one entrance.

FastAPI's routing, dependency solving and middleware stack cost more CPU per request than the whole
proxying work of a chat completion (measured with py-spy: about a third of the gateway's own time).
The proxy routes need none of it: they read a body, hand it to ``ProxyService`` with the route's
dialect (OpenAI chat/completions/embeddings, Anthropic Messages, OpenAI Responses) and return its
response; errors come back in the dialect's own envelope. Everything else (models, explain, admin,
health, metrics, the OpenAPI document, which describes these routes too) stays on FastAPI.
"""

from __future__ import annotations

import logging
import time

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.body import read_body
from gateway.api.disconnect import ClientGone, cancel_on_disconnect
from gateway.api.headers import header_map
from gateway.core.errors import GatewayError
from gateway.pipeline.call import request_id_from
from gateway.pipeline.dialects import DIALECTS, Dialect, MessagesDialect
from gateway.pipeline.service import ProxyService

log = logging.getLogger("gateway.api")

COUNT_TOKENS = "/v1/messages/count_tokens"


class ProxyFastPath:
    def __init__(self, app: ASGIApp, service: ProxyService, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.service = service
        self.limit = max_body_bytes
        self.body_timeout = body_timeout
        self._messages = DIALECTS["/v1/messages"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        dialect = DIALECTS.get(path)
        if dialect is None and path != COUNT_TOKENS:
            await self.app(scope, receive, send)
            return
        dialect = dialect or self._messages
        if scope["method"] != "POST":
            error = GatewayError(f"Method {scope['method']} is not allowed for {path}", code="method_not_allowed",
                                 headers={"allow": "POST"})
            error.status, error.type, error.fault = 405, "invalid_request_error", "caller"
            await _error(dialect, error)(scope, receive, send)
            return
        started = time.perf_counter()
        headers = header_map(scope["headers"])
        try:
            raw = await read_body(receive, headers, self.limit, self.body_timeout)
            if path == COUNT_TOKENS:
                response = await self._count_tokens(raw, headers)
            else:
                response = await cancel_on_disconnect(receive, self.service.handle(dialect, raw, headers, started))
        except GatewayError as exc:
            response = _error(dialect, exc, request_id_from(headers))
        except ClientGone:
            return  # the client left before the answer: nobody to send it to
        except Exception:
            log.exception("unhandled error on POST %s", path)
            response = _error(dialect, GatewayError("The gateway had an internal error while processing your request."))
        await response(scope, receive, send)

    async def _count_tokens(self, raw: bytes, headers: dict[str, str]) -> Response:
        assert isinstance(self._messages, MessagesDialect)
        tokens = await self.service.count_tokens(self._messages, raw, headers)
        return Response(orjson.dumps({"input_tokens": tokens}), media_type="application/json")


def _error(dialect: Dialect, exc: GatewayError, request_id: str | None = None) -> Response:
    """An error in the dialect's envelope; the error's own headers (retry-after, x-gateway-*) go with it."""
    status, body = dialect.error_body(exc, request_id)
    return Response(body, status_code=status, media_type="application/json", headers=exc.headers)
