"""The text form of a replay ``Report``: totals, per team, model and rule, route changes, what breaks."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from gateway.routing.replay import Report, Tally, percentile

_MOST = 8  # groups listed per kind of breakage
Column = tuple[str, Callable[[Tally], str]]
Evidence = Mapping[tuple[str, str, str], Mapping[str, Any]]
"""Shadow evaluation per (model, primary, shadow): the pairs of ``GET /v1/gateway/shadow``."""


def render(report: Report, *, source: str, evidence: Evidence | None = None, evidence_source: str = "") -> str:
    skipped = f"; {len(report.skipped)} lines skipped ({_skip_summary(report)})" if report.skipped else ""
    columns = _columns(report)
    out = [
        f"Replayed {report.total.requests} requests from {source} ({report.traffic_kind}{skipped}); no upstream called.",
        f"  now:       {report.current}",
        f"  candidate: {report.candidate}",
        "",
        _table("", {"total": report.total}, columns),
    ]
    for title, groups in (("team", report.by_team), ("model", report.by_model), ("rule (candidate)", report.by_rule)):
        out += ["", _table(f"by {title}", groups, columns)]
    out += ["", _cost_note(report), "", "Routes (now → candidate)"]
    for (before, after), count in sorted(report.routes.items(), key=lambda i: (-i[1], i[0])):
        mark = "" if before == after else "   changed"
        out.append(f"  {before:>24} → {after:<24} {count:>6}{mark}")
    if evidence is not None:
        out += ["", f"Observed agreement on the changed routes (shadow evaluation from {evidence_source})"]
        out += _evidence(report, evidence)
    out += ["", "What breaks"]
    out += _breakage(report)
    return "\n".join(out) + "\n"


def _evidence(report: Report, evidence: Evidence) -> list[str]:
    """Each route the candidate changes, its projected saving, and what shadowing the candidate's deployment
    behind today's showed: agreement on tool calls and JSON, text similarity, refusals, latency and cost."""
    if not report.changes:
        return ["  the candidate changes no route"]
    head = (f"  {'model':<14} {'now → candidate':<30} {'requests':>8} {'saved':>7} {'compared':>8} {'tools':>6} "
            f"{'json':>6} {'text':>6} {'refused':>11} {'latency×':>8} {'cost×':>6}")
    lines = [head]
    for (model, now, then), tally in sorted(report.changes.items(), key=lambda i: (-i[1].requests, i[0])):
        route = f"{now} → {then}"
        row = f"  {model:<14} {route:<30} {tally.requests:>8} {_share(tally.savings_vs_current_ratio):>7}"
        pair = evidence.get((model, now, then))
        if pair is None or not pair.get("compared"):
            lines.append(f"{row} no shadow of {then} behind {now} recorded for {model}")
            continue
        refused = f"{_rate(pair.get('refusal_rate_primary'))}/{_rate(pair.get('refusal_rate_shadow'))}"
        lines.append(f"{row} {pair['compared']:>8} {_score(pair.get('tool_call_agreement')):>6} "
                     f"{_score(pair.get('json_agreement')):>6} {_score(pair.get('text_similarity_mean')):>6} "
                     f"{refused:>11} {_score(pair.get('latency_ratio')):>8} {_score(pair.get('cost_ratio')):>6}")
    lines.append(textwrap.fill(
        "  tools, json: share of compared answers that agreed; text: mean similarity; refused: now/candidate; "
        "latency×, cost×: candidate over now. See docs/operations.md (Shadow evaluation) for where each misleads.",
        width=104, subsequent_indent="  "))
    return lines


def _score(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "—"


def _rate(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "—"


def _columns(report: Report) -> list[Column]:
    columns: list[Column] = [
        ("requests", lambda t: str(t.requests)), ("changed", lambda t: str(t.changed_routes)),
        ("denied", lambda t: str(t.denied)), ("no route", lambda t: str(t.no_route)),
    ]
    if report.has_recorded_cost:
        columns.append(("recorded $", lambda t: f"{t.recorded_cost_usd:.4f}"))
    if report.current != "recorded routes" or not report.has_recorded_cost:
        columns.append(("now $", lambda t: f"{t.current_cost_usd:.4f}" if report.has_current_cost else "n/a"))
    columns += [
        ("candidate $", lambda t: f"{t.projected_cost_usd:.4f}"),
        ("all-vendor $", lambda t: f"{t.baseline_cost_usd:.4f}" if t.baseline_cost_usd > 0 else "—"),
        ("saved vs now", lambda t: _share(t.savings_vs_current_ratio if report.has_current_cost else None)),
        ("vs all-vendor", lambda t: _share(t.savings_ratio)),
        ("SLO missed", lambda t: f"{t.slo_misses}/{t.slo_requests}" if t.slo_requests else "—"),
    ]
    return columns


def _table(title: str, groups: dict[str, Tally], columns: list[Column]) -> str:
    width = max([len(title), 5, *(len(k) for k in groups)])
    rows = [f"{title:<{width}}" + "".join(f"  {name:>{max(len(name), 8)}}" for name, _ in columns)]
    for name, tally in sorted(groups.items(), key=lambda i: (-i[1].requests, i[0])):
        rows.append(f"{name:<{width}}" + "".join(f"  {cell(tally):>{max(len(head), 8)}}" for head, cell in columns))
    return "\n".join(rows)


def _share(ratio: float | None) -> str:
    return f"{ratio:.1%}" if ratio is not None else "—"


def _cost_note(report: Report) -> str:
    t = report.total
    unserved = t.requests - t.served
    note = ("Costs are summed over the requests the candidate serves, at the recorded token counts (estimates "
            "where none were recorded); all-vendor prices them on the reference_model.")
    if unserved:
        today = t.unserved_recorded_cost_usd if report.has_recorded_cost else t.unserved_current_cost_usd
        note += (f" The {unserved} request{'s' if unserved != 1 else ''} it would not serve (below) cost "
                 f"${today:.4f} now and are not in these sums.")
    return textwrap.fill(note, width=104)


def _breakage(report: Report) -> list[str]:
    lines: list[str] = []
    for title, reasons in (("no route", report.no_route_reasons), ("denied", report.denials),
                           ("refused before routing", report.refusals)):
        lines += _counted(title, reasons)
    misses = Counter({k: len(v) for k, v in report.slo_misses.items()})
    if misses:
        total = sum(misses.values())
        lines.append(f"  latency SLO expected to be missed: {total} request{'s' if total != 1 else ''}")
        for key, count in misses.most_common(_MOST):
            values = report.slo_misses[key]
            lines.append(f"    {count:>5}× {key}: expected ~{percentile(values, 0.5):.0f} ms (p50), "
                         f"up to {max(values):.0f} ms")
    if report.unknown_teams:
        lines.append(f"  teams the candidate does not define (their rules and limits no longer apply): "
                     f"{', '.join(sorted(report.unknown_teams))}")
    return lines or ["  nothing: every request is routed, none denied, no SLO expected to be missed"]


def _counted(title: str, reasons: Counter[str]) -> list[str]:
    total = sum(reasons.values())
    if not total:
        return []
    lines = [f"  {title}: {total} request{'s' if total != 1 else ''}"]
    ranked = reasons.most_common()
    lines += [f"    {count:>5}× {reason}" for reason, count in ranked[:_MOST]]
    if len(ranked) > _MOST:
        lines.append(f"           … and {sum(c for _, c in ranked[_MOST:])} more in {len(ranked) - _MOST} other groups")
    return lines


def _skip_summary(report: Report) -> str:
    kinds = Counter(reason.split(":")[0] for _, reason in report.skipped)
    return ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
