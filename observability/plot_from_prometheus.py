"""Draw the gateway's headline series from a live Prometheus into one PNG (the README's picture).

    python observability/plot_from_prometheus.py --prometheus http://127.0.0.1:9090 --out docs/img/dashboard-from-prometheus.png

Queries Prometheus's HTTP API (``/api/v1/query_range``) for the same expressions the Grafana dashboard
uses: the traffic split between self-hosted and vendor deployments, spend against the all-vendor
baseline, and p95 latency per deployment. Exits 1 when a query returns no data, so a caller (the
integration test) learns that the gateway did not export what the picture needs. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL with {w} for the rate window, legend template)
    stacked: bool = False


def charts(window: str) -> list[Chart]:
    w = window
    return [
        Chart("Requests / s by hosting (self-hosted vs vendor)", "req/s",
              ((f'sum by (hosting) (rate(gateway_requests_total{{hosting=~"self|vendor"}}[{w}]))', "{hosting}"),),
              stacked=True),
        Chart("Self-hosted share", "%",
              ((f'100 * sum(rate(gateway_requests_total{{hosting="self"}}[{w}])) '
                f'/ sum(rate(gateway_requests_total{{hosting=~"self|vendor"}}[{w}]))', "of requests"),
               (f'100 * sum(rate(gateway_tokens_total{{hosting="self"}}[{w}])) / sum(rate(gateway_tokens_total[{w}]))',
                "of tokens"))),
        Chart("Spend vs all-vendor baseline", "USD / hour",
              ((f"sum(rate(gateway_cost_usd_total[{w}])) * 3600", "actual spend"),
               (f"sum(rate(gateway_reference_cost_usd_total[{w}])) * 3600", "all-vendor baseline"))),
        Chart("p95 request latency by deployment", "seconds",
              ((f'histogram_quantile(0.95, sum by (le, deployment) '
                f'(rate(gateway_request_duration_seconds_bucket{{deployment!="none"}}[{w}])))', "{deployment}"),)),
    ]


def query_range(base: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    with urllib.request.urlopen(f"{base.rstrip('/')}/api/v1/query_range?{params}", timeout=30) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def _series(result: list[dict], legend: str) -> list[tuple[str, list[datetime], list[float]]]:
    out = []
    for item in result:
        points = [(datetime.fromtimestamp(float(t)), float(v)) for t, v in item["values"]]
        points = [(t, v) for t, v in points if math.isfinite(v)]
        if points:
            name = legend.format_map(_Missing(item["metric"]))
            out.append((name, [t for t, _ in points], [v for _, v in points]))
    return sorted(out)


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return f"<{key}?>"


def plot(base: str, out: str, start: float, end: float, step: float, window: str) -> list[str]:
    """Draw the PNG; returns the queries that had no data (the picture is drawn regardless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    empty = []
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5), constrained_layout=True)
    for ax, chart in zip(axes.flat, charts(window), strict=True):
        drawn = []
        for expr, legend in chart.queries:
            series = _series(query_range(base, expr, start, end, step), legend)
            if not series:
                empty.append(expr)
            drawn.extend(series)
        if chart.stacked and drawn:
            common = drawn[0][1]
            aligned = [[dict(zip(ts, vs, strict=True)).get(t, 0.0) for t in common] for _, ts, vs in drawn]
            ax.stackplot(common, aligned, labels=[name for name, _, _ in drawn], alpha=0.8)
        else:
            for name, ts, vs in drawn:
                ax.plot(ts, vs, label=name, linewidth=1.8)
        if chart.title.startswith("Spend") and len(drawn) == 2:
            (_, ts_a, actual), (_, ts_b, baseline) = sorted(drawn, key=lambda s: s[0] != "actual spend")
            if ts_a == ts_b:
                ax.fill_between(ts_a, actual, baseline, alpha=0.15, color="tab:green", label="saved")
        ax.set_title(chart.title, fontsize=11)
        ax.set_ylabel(chart.unit)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        if drawn:
            ax.legend(fontsize=8, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.suptitle(f"Gateway metrics from Prometheus (rate window {window}, "
                 f"{datetime.fromtimestamp(start):%Y-%m-%d %H:%M:%S} to {datetime.fromtimestamp(end):%H:%M:%S})",
                 fontsize=12)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return empty


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--since", type=float, default=300, help="seconds of history to draw (default 300)")
    parser.add_argument("--start", type=float, help="unix start time (overrides --since)")
    parser.add_argument("--end", type=float, help="unix end time (default now)")
    parser.add_argument("--step", type=float, default=2, help="seconds between points (default 2)")
    parser.add_argument("--window", default="1m", help="rate() window (default 1m)")
    args = parser.parse_args(argv)
    end = args.end or time.time()
    start = args.start or end - args.since
    empty = plot(args.prometheus, args.out, start, end, args.step, args.window)
    for expr in empty:
        print(f"no data: {expr}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
