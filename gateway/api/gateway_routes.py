"""The gateway's own API: explain a routing decision without calling any upstream, reload the policy, read
spend and shadow evaluation results."""

from __future__ import annotations

import dataclasses
import time

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gateway.api.access import admin_only
from gateway.api.body import read_body
from gateway.api.headers import header_map
from gateway.core.errors import InvalidRequest
from gateway.core.types import Endpoint
from gateway.pipeline.call import Call, request_id_from
from gateway.pipeline.dialects import DIALECTS
from gateway.pipeline.service import ProxyService
from gateway.shadow.report import shadow_report
from gateway.state.spend import NANOS_PER_USD

router = APIRouter(prefix="/v1/gateway")


@router.post("/explain")
async def explain(request: Request) -> dict[str, object]:
    """The Decision the gateway would take for this chat completion body, with the request facts."""
    service: ProxyService = request.app.state.proxy
    headers = header_map(request.scope["headers"])
    settings = request.app.state.settings
    raw = await read_body(request.receive, headers, settings.max_body_bytes, settings.body_timeout)
    call = Call(Endpoint.CHAT, request_id_from(headers), time.perf_counter())
    await service.route(DIALECTS["/v1/chat/completions"], raw, headers, call)
    assert call.decision is not None and call.facts is not None
    facts = dataclasses.asdict(call.facts)
    facts["features"] = sorted(facts["features"])
    return {"decision": call.decision.to_dict(), "facts": facts}


@router.post("/reload", dependencies=[Depends(admin_only)])
async def reload(request: Request) -> Response:
    """Reload the policy file now (admin keys only); 422 with the file's errors when it is rejected."""
    ok, message = await request.app.state.reloader.reload_now()
    return Response(orjson.dumps({"reloaded": ok, "message": message}), media_type="application/json",
                    status_code=200 if ok else 422)


@router.get("/spend", dependencies=[Depends(admin_only)])
async def spend(request: Request, period: str = "day", date: str | None = None) -> dict[str, object]:
    """Spend per key, team and deployment for a UTC day (YYYYMMDD) or month (YYYYMM). Admin keys only."""
    service: ProxyService = request.app.state.proxy
    _check_period(period)
    report = await service.state.spend.report(period, date)  # type: ignore[arg-type]
    shadows = await service.state.shadows.report(period, report.date)  # type: ignore[arg-type]
    return {**report.to_dict(), "shadow": {dep: n / NANOS_PER_USD for dep, n in shadows.spend.items()}}


@router.get("/shadow", dependencies=[Depends(admin_only)])
async def shadow(request: Request, model: str | None = None, period: str = "day",
                 date: str | None = None) -> dict[str, object]:
    """Shadow evaluation per (model, primary, shadow) pair for a UTC day (YYYYMMDD) or month (YYYYMM), every
    replica together: agreement, similarity, latency and cost ratios. Admin keys only."""
    service: ProxyService = request.app.state.proxy
    _check_period(period)
    policy = service.runtime.snapshot.policy
    if model is not None and policy.resolve_model(model) is None:
        raise InvalidRequest(f"The policy has no model `{model}`.", param="model")
    name = policy.resolve_model(model) if model is not None else None
    tally = await service.state.shadows.report(period, date)  # type: ignore[arg-type]
    return shadow_report(tally, model=name, budget_daily_usd=policy.defaults.shadow.daily_budget_usd)


def _check_period(period: str) -> None:
    if period not in ("day", "month"):
        raise InvalidRequest("period must be `day` or `month`.", param="period")
