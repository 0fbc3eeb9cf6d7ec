"""The chart: throughput (log scale) and added latency per system, from one run's results."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _short(label: str) -> str:
    return (label.replace("floor: wrk → mock (no proxy)", "floor (mock direct)")
            .replace(" (C reference)", "").replace(", everything on", ", all on")
            .replace(" workers", "w").replace(" worker", "w"))


def draw(doc: dict, rates: tuple[float, ...], path: Path) -> None:
    systems, derived = doc["systems"], doc["derived"]
    keys = [k for k in systems if k in derived]
    labels = [_short(systems[k]["label"]) for k in keys]
    y = range(len(keys))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 0.55 * len(keys) + 2.2), sharey=True)
    h = 0.38
    for offset, kind, colour in ((-h / 2, "json", "#1f77b4"), (h / 2, "sse", "#ff7f0e")):
        values = [derived[k][f"{kind}_rps"] or 0 for k in keys]
        bars = ax1.barh([i + offset for i in y], values, height=h, color=colour,
                        label="plain" if kind == "json" else "streamed")
        for bar, value in zip(bars, values, strict=True):
            if value:
                ax1.text(value * 1.05, bar.get_y() + h / 2, f"{value:,.0f}", va="center", fontsize=7)
    ax1.set_xscale("log")
    ax1.set_xlabel("requests/s, saturated (log scale)")
    ax1.set_title("Throughput")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_yticks(list(y), labels)
    ax1.invert_yaxis()

    series = [(r, q) for r in rates for q in ("p50", "p99")]
    width = 0.8 / len(series)
    colours = ["#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5"]
    for n, (rate, q) in enumerate(series):
        r = str(int(rate))
        # A negative difference is noise between two runs of a near-zero overhead: drawn as zero.
        values = [0.0 if k == "floor" else max(0.0, derived[k].get(f"added_{q}_{r}") or 0.0) for k in keys]
        pos = [i - 0.4 + width * (n + 0.5) for i in y]
        ax2.barh(pos, values, height=width, color=colours[n % len(colours)], label=f"{q} @ {rate:g} req/s")
        for i, k in enumerate(keys):
            if q == "p50" and k != "floor" and derived[k].get(f"saturated_{r}"):
                ax2.text(0.05, pos[i] + width / 2, f"{rate:g} req/s: saturated", va="center", fontsize=7, color="#555")
    ax2.axvline(0, color="black", linewidth=0.6)
    ax2.set_xscale("symlog", linthresh=1.0)  # sub-millisecond and hundreds of ms on one axis
    ax2.set_xlim(left=0)
    ax2.set_xlabel("ms added over the floor, open loop (linear below 1 ms, log above)")
    ax2.set_title("Added latency")
    ax2.legend(loc="upper right", fontsize=8)
    m = doc["meta"]["machine"]
    note = doc["meta"]["settings"].get("note", "")
    fig.suptitle(f"Gateway benchmark — {m['cores']} cores, {doc['meta']['started']}"
                 + (" — SMOKE RUN, not meaningful" if doc["meta"].get("smoke") else "")
                 + (f"\n{note[:150]}{'…' if len(note) > 150 else ''}" if note else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
