"""Figures derived from the paced-stream phase and the open-streams check, and their tables.

Per run (a system at one plan entry): CPU per event and per stream, the ratios of CPU per event to
nginx's and LiteLLM's in the same run, latency as the client saw it and transit added over the
floor's at the same plan entry.
"""

from __future__ import annotations

from typing import Any

from harness.report import _get, _n, _ratio

TARGET_SYSTEM = "gateway-everything-w1"
CPU_TARGET_US = 10.0
ITL_TARGET_MS = 1.0
ITL_TARGET_STREAMS = 1000


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def derive(paced: dict) -> dict[str, dict[str, dict]]:
    systems = paced.get("systems", {})
    floor = systems.get("floor", {}).get("runs", {})
    out: dict[str, dict[str, dict]] = {}
    for key, res in systems.items():
        if res.get("error"):
            continue
        rows: dict[str, dict] = {}
        for run_key, run in res.get("runs", {}).items():
            if run.get("skipped"):
                rows[run_key] = {"skipped": run["skipped"]}
                continue
            nginx_cpu = _get(systems, "nginx-w1", "runs", run_key, "cpu_us_per_event")
            litellm_cpu = _get(systems, "litellm-w1", "runs", run_key, "cpu_us_per_event")
            d: dict[str, Any] = {
                "streams": run["streams"], "tps": run["tps"], "events_per_s": run["offered_events_per_s"],
                "cpu_us_per_event": run["cpu_us_per_event"], "cpu_ms_per_stream": run["cpu_ms_per_stream"],
                "cpu_vs_nginx": _ratio(run["cpu_us_per_event"], nginx_cpu),
                "litellm_cpu_vs_this": _ratio(litellm_cpu, run["cpu_us_per_event"]),
                "events_per_read": run["events_per_read"], "rss_kb_per_stream": run["rss_kb_per_stream"],
                "ok": run["ok"], "failed": run["failed"], "saturated": run["saturated"],
                "cpu_share": run["cpu_share"], "load_cpu_share": run["load_cpu_share"],
                "kernel_share": run.get("kernel_share"),
                "upstream_lag_p99_ms": _ms(_get(run, "upstream", "lag_us", "p99")),
            }
            for q in ("p50", "p99"):
                d[f"ttft_added_{q}"] = _get(run, "ttft_added_ms", q)
                d[f"itl_added_{q}"] = _ms(_get(run, "added_itl_us", q))
                d[f"transit_{q}"] = _ms(_get(run, "transit_us", q))
                base = _ms(_get(floor, run_key, "transit_us", q))
                d[f"transit_added_{q}"] = (round(d[f"transit_{q}"] - base, 3)
                                           if d[f"transit_{q}"] is not None and base is not None else None)
            rows[run_key] = d
        out[key] = rows
    return out


def targets(paced: dict, derived: dict) -> list[dict]:
    mine = derived.get(TARGET_SYSTEM, {})
    measured = [d for d in mine.values() if not d.get("skipped")]
    worst_cpu = max((d["cpu_us_per_event"] for d in measured if d["cpu_us_per_event"] is not None), default=None)
    at = next((d for d in measured if d["streams"] == ITL_TARGET_STREAMS), None)
    itl = at["itl_added_p99"] if at else None
    rows = [
        {"target": f"CPU per relayed event ≤ {CPU_TARGET_US:g} µs (every run)", "value": worst_cpu,
         "met": None if worst_cpu is None else worst_cpu <= CPU_TARGET_US},
        {"target": f"added inter-token latency p99 ≤ {ITL_TARGET_MS:g} ms at {ITL_TARGET_STREAMS:,} streams",
         "value": itl, "met": None if itl is None else itl <= ITL_TARGET_MS},
    ]
    check = paced.get("open", {}).get(TARGET_SYSTEM)
    if check and not check.get("error"):
        n = check["streams"]
        all_open = _get(check, "upstream", "max_open")
        rows.append({"target": f"{n:,} open streams on one worker, no errors", "value": check["failed"],
                     "met": check["failed"] == 0 and check["ok"] >= n and (all_open or 0) >= n})
    return rows


def _cell(v: float | None, digits: int = 2) -> str:
    return _n(v, digits)


def paced_rows(paced: dict, derived: dict) -> list[list[str]]:
    head = ["system", "streams × tok/s", "events/s", "CPU µs/event", "× nginx", "CPU ms/stream",
            "kernel", "TTFT added p50 / p99 ms", "ITL added p50 / p99 ms", "transit p50 / p99 ms", "events/read",
            "RSS KB/stream", "failed"]
    rows = [head]
    for key, res in paced.get("systems", {}).items():
        if res.get("error"):
            rows.append([res.get("label", key), f"failed: {res['error'][:60]}"] + [""] * (len(head) - 2))
            continue
        for run_key, d in derived.get(key, {}).items():
            label = f"{res['label']}"
            if d.get("skipped"):
                rows.append([label, run_key.replace("@", " × "), d["skipped"]] + [""] * (len(head) - 3))
                continue
            floor = key == "floor"
            transit = f"{_cell(d['transit_p50'])} / {_cell(d['transit_p99'])}"
            cpu = _cell(d["cpu_us_per_event"], 1) + (" (sat.)" if d["saturated"] and not floor else "")
            rows.append([label, f"{d['streams']:,} × {d['tps']:g}", f"{d['events_per_s']:,}", cpu,
                         "" if floor or key == "nginx-w1" else _x(d["cpu_vs_nginx"]), _cell(d["cpu_ms_per_stream"]),
                         _pct(d["kernel_share"]),
                         f"{_cell(d['ttft_added_p50'])} / {_cell(d['ttft_added_p99'])}",
                         f"{_cell(d['itl_added_p50'])} / {_cell(d['itl_added_p99'])}", transit,
                         _cell(d["events_per_read"]), _cell(d["rss_kb_per_stream"], 1),
                         f"{d['failed']} of {d['ok'] + d['failed']}" if d["failed"] else "0"])
    return rows


def open_rows(paced: dict) -> list[list[str]]:
    head = ["system", "streams (most open at once)", "tok/s", "failed", "RSS idle MB", "RSS peak MB", "KB per open stream",
            "CPU µs/event", "TTFT added p99 ms", "ITL added p99 ms", "open-files limit"]
    rows = [head]
    for key, res in paced.get("open", {}).items():
        if res.get("error"):
            rows.append([res.get("label", key), f"failed: {res['error'][:60]}"] + [""] * (len(head) - 2))
            continue
        asked = res.get("streams_asked", res["streams"])
        streams = f"{res['streams']:,}" + (f" of {asked:,} asked" if asked != res["streams"] else "")
        rows.append([res["label"], f"{streams} ({_get(res, 'upstream', 'max_open') or 0:,})", f"{res['tps']:g}",
                     f"{res['failed']} of {res['ok'] + res['failed']}" if res["failed"] else "0",
                     _cell(res["rss_idle_mb"], 1), _cell(res["rss_peak_mb"], 1), _cell(res["rss_kb_per_stream"], 1),
                     _cell(res["cpu_us_per_event"], 1), _cell(_get(res, "ttft_added_ms", "p99")),
                     _cell(_ms(_get(res, "added_itl_us", "p99"))), str(res.get("open_files_limit", "–"))])
    return rows


def load_rows(paced: dict, derived: dict) -> list[list[str]]:
    """The load side per run: whether the client and the upstream kept up (their core's busy share, the
    upstream's timer lag) and how busy the system was."""
    rows = [["system", "streams × tok/s", "system busy (of 1 core)", "load side busy", "upstream lag p99 ms",
             "streams completed"]]
    for key, res in paced.get("systems", {}).items():
        for run_key, d in derived.get(key, {}).items():
            if d.get("skipped") or res.get("error"):
                continue
            rows.append([res["label"], run_key.replace("@", " × "), _pct(d["cpu_share"]), _pct(d["load_cpu_share"]),
                         _cell(d["upstream_lag_p99_ms"]), f"{d['ok']:,}"])
    return rows


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.0f}%"


def _x(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}×"


def headline(derived: dict) -> str:
    gw, nx, ll = (derived.get(k, {}) for k in (TARGET_SYSTEM, "nginx-w1", "litellm-w1"))
    first = next((k for k, d in gw.items() if not d.get("skipped")), None)
    if first is None:
        return ""
    d = gw[first]
    parts = [f"Relaying {d['streams']:,} streams at {d['tps']:g} tokens/s, the gateway with everything on spent "
             f"{d['cpu_us_per_event']:.1f} µs of CPU per event ({d['cpu_ms_per_stream']:.2f} ms per stream)"]
    if nx.get(first, {}).get("cpu_us_per_event"):
        parts.append(f"nginx {nx[first]['cpu_us_per_event']:.1f} µs")
    if ll.get(first, {}).get("cpu_us_per_event"):
        parts.append(f"LiteLLM {ll[first]['cpu_us_per_event']:.0f} µs")
    return "; ".join(parts) + "."
