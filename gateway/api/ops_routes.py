"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from gateway.api.access import metrics_reader
from gateway.metrics.exposition import CONTENT_TYPE_LATEST, render

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, str] = {}
    ready = True
    if state.runtime.ready:
        checks["policy"] = f"ok ({state.runtime.snapshot.version})"
    else:
        checks["policy"] = "not loaded"
        ready = False
    shared = state.state
    if shared.kind == "redis":
        # Degraded, not unready: taking every replica out of service when Redis fails would turn a
        # cache outage into a gateway outage. The gateway serves on; limits fail open or closed by policy.
        checks["redis"] = "ok" if await shared.ping() else f"degraded (serving; cache off, limits per policy): {shared.last_error}"
    if state.draining:
        checks["shutdown"] = "draining"
        ready = False
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_reader)])
async def metrics(request: Request) -> Response:
    # In multiprocess mode a scrape reads every worker's files: off the event loop, like all file I/O.
    body = await asyncio.to_thread(render, request.app.state.metrics.registry, request.app.state.settings.metrics_dir)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
