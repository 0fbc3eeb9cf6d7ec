"""Figures derived from one run (ratios, added latency, targets) and their rendering as text and Markdown.

Added latency is the system's percentile minus the floor's at the same rate in the same run; ratios
to LiteLLM use LiteLLM with the same number of workers.
"""

from __future__ import annotations

from typing import Any

TARGETS = (
    # (name, figure key in derived, comparison, threshold)
    ("non-streaming throughput ≥ 30× LiteLLM", "json_vs_litellm", ">=", 30.0),
    ("streaming throughput ≥ 20× LiteLLM", "sse_vs_litellm", ">=", 20.0),
    ("CPU per request ≤ 0.5 ms", "cpu_ms_json", "<=", 0.5),
    ("added latency p50 ≤ 1 ms at 25 rps", "added_p50_25", "<=", 1.0),
    ("added latency p99 ≤ 3 ms at 25 rps", "added_p99_25", "<=", 3.0),
    ("added latency p99 ≤ 10 ms at 500 rps", "added_p99_500", "<=", 10.0),
    ("RSS under load ≤ 150 MB per worker", "rss_load_per_worker_mb", "<=", 150.0),
    ("1→2 workers scaling ≥ 1.6× (near-linear)", "scaling", ">=", 1.6),
)
TARGET_SYSTEM = "gateway-everything-w1"


def _get(d: dict | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _ratio(a: float | None, b: float | None) -> float | None:
    return float(f"{a / b:.3g}") if a and b else None


def _minus(a: float | None, b: float | None) -> float | None:
    return round(a - b, 3) if a is not None and b is not None else None


def derive(systems: dict[str, dict], rates: tuple[float, ...]) -> dict[str, dict]:
    floor = systems.get("floor", {})
    out: dict[str, dict] = {}
    for key, res in systems.items():
        if res.get("error"):
            continue
        workers = res.get("workers", 1)
        litellm = systems.get(f"litellm-w{workers}", {})
        d: dict[str, Any] = {
            "json_rps": _get(res, "saturated_json", "rps"), "sse_rps": _get(res, "saturated_sse", "rps"),
            "cpu_ms_json": _get(res, "saturated_json", "cpu_ms_per_req"),
            "cpu_ms_sse": _get(res, "saturated_sse", "cpu_ms_per_req"),
            "rss_idle_mb": res.get("rss_idle_mb"), "rss_load_mb": res.get("rss_load_mb"),
        }
        d["rss_load_per_worker_mb"] = round(d["rss_load_mb"] / workers, 1) if d["rss_load_mb"] else None
        d["failed"], d["served"] = _failures(res)
        for kind in ("json", "sse"):
            d[f"{kind}_vs_floor"] = _ratio(d[f"{kind}_rps"], _get(floor, f"saturated_{kind}", "rps"))
            d[f"{kind}_vs_litellm"] = _ratio(d[f"{kind}_rps"], _get(litellm, f"saturated_{kind}", "rps"))
        d["cpu_vs_litellm"] = _ratio(_get(litellm, "saturated_json", "cpu_ms_per_req"), d["cpu_ms_json"])
        for rate in rates:
            r = str(int(rate))
            mine = _get(res, "latency", r)
            d[f"saturated_{r}"] = bool(mine and mine.get("skipped"))
            for q in ("p50", "p99"):
                d[f"latency_{q}_{r}"] = _get(mine, "latency_ms", q)
                d[f"added_{q}_{r}"] = _minus(_get(mine, "latency_ms", q), _get(floor, "latency", r, "latency_ms", q))
        d["ttft_rate"] = _get(res, "ttft", "rate")
        for q in ("p50", "p99"):
            d[f"ttft_{q}"] = _get(res, "ttft", "ttft_ms", q)
            d[f"ttft_added_{q}"] = _minus(d[f"ttft_{q}"], _get(floor, "ttft", "ttft_ms", q))
        if workers > 1:
            single = systems.get(key.rsplit("-w", 1)[0] + "-w1", {})
            d["scaling"] = _ratio(d["json_rps"], _get(single, "saturated_json", "rps"))
        out[key] = d
    for key, d in out.items():  # a 1-worker system shows how it scales to 2
        if key.endswith("-w1") and key[:-1] + "2" in out:
            d["scaling"] = out[key[:-1] + "2"].get("scaling")
    return out


def _failures(res: dict) -> tuple[int, int]:
    """(requests that did not get a 2xx answer, requests that did) over every measured phase: a system
    answering errors fast must not pass for a fast system."""
    phases = [res.get("saturated_json"), res.get("saturated_sse"), res.get("ttft"), *res.get("latency", {}).values()]
    failed = served = 0
    for ph in phases:
        if isinstance(ph, dict) and not ph.get("skipped"):
            failed += sum(ph.get("errors", {}).values())
            served += ph.get("requests", ph.get("ok", 0)) or 0
    return failed, served


def targets(derived: dict[str, dict]) -> list[dict]:
    d = derived.get(TARGET_SYSTEM)
    rows = []
    for name, key, op, threshold in TARGETS:
        value = d.get(key) if d else None
        ok = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        rows.append({"target": name, "value": value, "threshold": threshold, "op": op, "met": ok})
    return rows


def _n(v: Any, digits: int = 1, suffix: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}{suffix}"
        return f"{v:.{digits}f}{suffix}"
    return f"{v}{suffix}"


def _x(v: float | None) -> str:
    return "–" if v is None else (f"{v:.1f}×" if v >= 0.1 else f"{v:.3f}×")


def _pct(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v * 100:.0f}%" if v >= 0.1 else f"{v * 100:.1f}%" if v >= 0.01 else f"{v * 100:.2f}%"


def throughput_rows(systems: dict, derived: dict) -> list[list[str]]:
    head = ["system", "plain req/s", "× LiteLLM", "of floor", "stream req/s", "× LiteLLM", "of floor",
            "1→2 workers", "CPU ms/req plain", "CPU ms/req stream", "RSS idle MB", "RSS load MB", "failed"]
    rows = [head]
    for key, res in systems.items():
        d = derived.get(key)
        if d is None:
            rows.append([res.get("label", key), f"failed: {res.get('error', '?')[:60]}"] + [""] * (len(head) - 2))
            continue
        rows.append([res["label"], _n(d["json_rps"], 0), _x(d["json_vs_litellm"]), _pct(d["json_vs_floor"]),
                     _n(d["sse_rps"], 0), _x(d["sse_vs_litellm"]), _pct(d["sse_vs_floor"]),
                     _x(d.get("scaling")) if key != "floor" else "", _n(d["cpu_ms_json"], 3),
                     _n(d["cpu_ms_sse"], 3), _n(d["rss_idle_mb"]), _n(d["rss_load_mb"]),
                     f"{d['failed']} of {d['failed'] + d['served']}" if d["failed"] else "0"])
    return rows


def latency_rows(systems: dict, derived: dict, rates: tuple[float, ...], ttft_rate: float) -> list[list[str]]:
    head = ["system"]
    for rate in rates:
        head += [f"p50 @{rate:g} rps", f"p99 @{rate:g} rps"]
    head += [f"TTFT p50 @{ttft_rate:g} rps", f"TTFT p99 @{ttft_rate:g} rps"]
    rows = [head]
    for key, res in systems.items():
        d = derived.get(key)
        if d is None:
            continue
        row = [res["label"]]
        for rate in rates:
            r = str(int(rate))
            if d[f"saturated_{r}"]:
                row += [f"saturated (max {d['json_rps']:.0f} rps)", ""]
                continue
            for q in ("p50", "p99"):
                if key == "floor":
                    row.append(_n(d[f"latency_{q}_{r}"], 2, " ms"))
                else:
                    row.append(_signed(d[f"added_{q}_{r}"]))
        slower = d["ttft_rate"] is not None and d["ttft_rate"] != ttft_rate
        for q in ("p50", "p99"):
            cell = _n(d[f"ttft_{q}"], 2, " ms") if key == "floor" else _signed(d[f"ttft_added_{q}"])
            row.append(f"{cell} (@{d['ttft_rate']:g} rps)" if slower else cell)
        rows.append(row)
    return rows


def _signed(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2f} ms"


def target_rows(rows: list[dict]) -> list[list[str]]:
    out = [["target (gateway, everything on, 1 worker)", "measured", "met"]]
    for t in rows:
        value = t["value"]
        shown = "–" if value is None else (_x(value) if "×" in t["target"] or "scaling" in t["target"] else _n(value, 2))
        out.append([t["target"], shown, {True: "yes", False: "NO", None: "–"}[t["met"]]])
    return out


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["--:"] * (len(rows[0]) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)
