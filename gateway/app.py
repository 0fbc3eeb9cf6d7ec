"""Composition root: ``create_app(settings)`` builds every part and owns their lifespan."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from gateway.api import docs_routes, gateway_routes, model_routes, ops_routes
from gateway.api.entrance import ProxyFastPath
from gateway.api.errors import install_error_handlers
from gateway.api.openapi import build_openapi
from gateway.metrics.exposition import worker_exiting
from gateway.metrics.recorder import MetricsRecorder
from gateway.metrics.registry import GatewayMetrics
from gateway.metrics.shadow import ShadowMetrics
from gateway.pipeline.access_log import AccessLog
from gateway.pipeline.accounting import Accounting
from gateway.pipeline.admission import Admission
from gateway.pipeline.auth import require_keys_off_loopback
from gateway.pipeline.service import ProxyService
from gateway.policy.loader import LoadedPolicy
from gateway.policy.reload import PolicyReloader
from gateway.routing.runtime import Runtime
from gateway.routing.sharing import SharedStatsLoop
from gateway.settings import Settings
from gateway.shadow.budget import ShadowBudget
from gateway.shadow.record import ShadowRecorder
from gateway.shadow.runner import ShadowRunner
from gateway.state import StateService

log = logging.getLogger("gateway")


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> ASGIApp:
    """The ASGI application: the proxy fast path in front of the FastAPI app (``.app``)."""
    api = create_api(settings, registry)
    return ProxyFastPath(api, api.state.proxy, settings.max_body_bytes, settings.body_timeout)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        app.openapi_schema = build_openapi(app)
    return app.openapi_schema


def create_api(settings: Settings, registry: CollectorRegistry | None = None) -> FastAPI:
    metrics = GatewayMetrics(registry or CollectorRegistry(), multiprocess=bool(settings.metrics_dir))
    recorder = MetricsRecorder(metrics)
    runtime = Runtime(hooks=recorder, on_breaker_change=recorder.breaker_changed, on_load_reading=recorder.server_load)
    access_log = AccessLog(enabled=settings.access_log)
    state = StateService.from_settings(
        settings.redis_url, timeout=settings.redis_timeout,
        on_error=lambda operation: metrics.redis_errors.labels(operation).inc(),
        on_health=lambda up: metrics.redis_up.set(1 if up else 0),
    )
    metrics.redis_up.set(1)
    metrics.policy_reloads.labels("failure").inc(0)  # exists at 0, so the first failure is an increase
    accounting = Accounting(recorder, access_log, state)
    shadows = ShadowRunner(
        runtime, ShadowRecorder(ShadowMetrics(metrics.registry, multiprocess=bool(settings.metrics_dir)), state.shadows,
                                access_log),
        ShadowBudget(state.shadows), hooks=recorder,
    )

    def install(loaded: LoadedPolicy) -> None:
        require_keys_off_loopback(loaded.policy, loaded.path, host=settings.host, loopback=settings.loopback,
                                  allow_unauthenticated=settings.allow_unauthenticated)
        initial = not runtime.ready
        snapshot = runtime.install(loaded)
        recorder.policy_installed(loaded.policy, loaded.version, snapshot.loaded_at, initial=initial)

    reloader = PolicyReloader(
        settings.policy, install, on_failure=lambda _: metrics.policy_reloads.labels("failure").inc(),
        interval=settings.policy_reload_interval,
    )
    # Load now, not in the lifespan: a bad policy must stop start-up with its file:line errors.
    reloader.load_initial()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        access_log.start()
        reloader.start(watch=settings.policy_reload)
        runtime.start_health_checks()  # the initial policy was installed before the loop ran
        await state.start()
        # Everything built so far (modules, policy, providers) lives as long as the process: move it out
        # of the collector's sight, so full collections under load only walk what requests create.
        gc.freeze()
        sharing = SharedStatsLoop(runtime, state) if state.kind == "redis" else None
        if sharing is not None:
            runtime.load.owns = sharing.owns  # one replica polls each server's load; the rest read it shared
            sharing.start()
        try:
            yield
        finally:
            app.state.draining = True
            if sharing is not None:
                await sharing.stop()
            await reloader.stop()
            await shadows.stop()
            await state.aclose()
            await runtime.aclose()
            access_log.stop()
            worker_exiting(settings.metrics_dir, os.getpid())

    app = FastAPI(
        title="Model-routing gateway", version="0.1.0", lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,  # served by api/docs_routes.py, guarded as settings say
        redirect_slashes=False,  # a 307 built from the Host header is an open redirect, and SDKs never need it
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.runtime = runtime
    app.state.reloader = reloader
    app.state.draining = False
    app.state.state = state
    app.state.shadows = shadows
    app.state.proxy = ProxyService(runtime, state, Admission(state, recorder), accounting, admin_key=settings.admin_key,
                                   shadows=shadows)
    install_error_handlers(app)
    app.include_router(model_routes.router)
    app.include_router(gateway_routes.router)
    app.include_router(ops_routes.router)
    if settings.docs != "off":
        app.include_router(docs_routes.router)
    return app
