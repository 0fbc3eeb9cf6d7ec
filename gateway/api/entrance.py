"""The hot path: the three proxy endpoints served straight from ASGI, in front of FastAPI.

FastAPI's routing, dependency solving and middleware stack cost more CPU per request than the whole
proxying work of a chat completion (measured with py-spy: about a third of the gateway's own time).
The proxy endpoints need none of it: they read a body, hand it to ``ProxyService`` and return its
response. Everything else (models, explain, admin, health, metrics, OpenAPI docs) stays on FastAPI,
which also keeps documenting the proxy routes.
"""

from __future__ import annotations

import logging
import time

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.body import read_body
from gateway.api.disconnect import ClientGone, cancel_on_disconnect
from gateway.api.errors import error_response
from gateway.api.headers import header_map
from gateway.core.errors import GatewayError
from gateway.core.types import Endpoint
from gateway.pipeline.service import ProxyService

log = logging.getLogger("gateway.api")

ROUTES = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/v1/completions": Endpoint.COMPLETIONS,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
}


class ProxyFastPath:
    def __init__(self, app: ASGIApp, service: ProxyService, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.service = service
        self.limit = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            error = GatewayError(f"Method {scope['method']} is not allowed for {scope['path']}", code="method_not_allowed",
                                 headers={"allow": "POST"})
            error.status, error.type, error.fault = 405, "invalid_request_error", "caller"
            await error_response(error)(scope, receive, send)
            return
        started = time.perf_counter()
        headers = header_map(scope["headers"])
        try:
            raw = await read_body(receive, headers, self.limit, self.body_timeout)
            response: Response = await cancel_on_disconnect(receive, self.service.handle(endpoint, raw, headers, started))
        except GatewayError as exc:
            response = error_response(exc)
        except ClientGone:
            return  # the client left before the answer: nobody to send it to
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            response = error_response(GatewayError("The gateway had an internal error while processing your request."))
        await response(scope, receive, send)
