"""The text form of a replay ``Report``: totals, per team, model and rule, route changes, what breaks."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable

from gateway.routing.replay import Report, Tally, percentile

_MOST = 8  # groups listed per kind of breakage
Column = tuple[str, Callable[[Tally], str]]


def render(report: Report, *, source: str) -> str:
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
    out += ["", "What breaks"]
    out += _breakage(report)
    return "\n".join(out) + "\n"


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
