"""The one place errors become HTTP responses, in OpenAI's envelope."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from gateway.api.disconnect import ClientGone
from gateway.core.errors import GatewayError, InvalidRequest

log = logging.getLogger("gateway.errors")


def error_response(exc: GatewayError) -> Response:
    return Response(orjson.dumps(exc.to_dict()), status_code=exc.status, media_type="application/json", headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(InvalidRequest(str(first.get("msg", "Invalid request.")), param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            err = GatewayError(f"Invalid URL ({request.method} {request.url.path})", code="unknown_url")
            err.status, err.type, err.fault = 404, "invalid_request_error", "caller"
        elif exc.status_code == 405:
            err = GatewayError(f"Method {request.method} is not allowed for {request.url.path}", code="method_not_allowed",
                               headers=dict(exc.headers or {}))  # RFC 9110: a 405 names the allowed methods
            err.status, err.type, err.fault = 405, "invalid_request_error", "caller"
        else:
            err = GatewayError(str(exc.detail))
            err.status = exc.status_code
        return error_response(err)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody is listening; keeps the log free of tracebacks

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Details go to the log only: an unexpected error's text may hold anything.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(GatewayError("The gateway had an internal error while processing your request."))
