"""The OpenAPI document and its Swagger UI, guarded by ``GATEWAY_DOCS`` (see ``access.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, JSONResponse

from gateway.api.access import docs_reader

router = APIRouter(include_in_schema=False, dependencies=[Depends(docs_reader)])


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} — API")
