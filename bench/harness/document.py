"""A run's results as the terminal table, as ``RESULTS.md``, and as the chart."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import paced_report, report

METHOD = """\
- **Floor**: the load generator straight against the mock upstream (nginx {nginx} from Debian returning a
  fixed 617-byte `chat.completion` and a 24-event SSE stream; it reads no body). Every "added" latency is
  the system's percentile minus the floor's at the same rate, in the same run.
- **Saturated throughput**: wrk, keep-alive connections, {duration:g} s per kind after
  {warmup:g} s of warm-up; every body is unique (a nonce in the prompt), so the gateway's cache lookups miss.
  Only 2xx answers count.
- **CPU per request**: utime+stime of the system's whole process tree (from `/proc/<pid>/stat`) over the
  saturated run, divided by the requests served. For the floor that is the mock's own cost. Redis, which
  the "everything on" gateway uses but which is not in its tree, is reported apart in results.json
  (`side_cpu_ms_per_req`).
- **Added latency**: an open-loop generator (Python, uvloop, httptools; one process) sends at a fixed
  schedule ({rates} requests/s, {latency_duration:g} s each) and measures from each request's scheduled send
  time, so a slow system cannot slow the schedule (no coordinated omission). A rate the system could not
  sustain in the saturated run is not attempted and is marked *saturated*.
- **TTFT**: streamed requests at {ttft_rate:g} requests/s (at half its streamed capacity for a system that
  cannot sustain that, marked), time until the first SSE `data:` line.
- **Connections**: wrk uses up to {connections} connections; a slow system gets fewer (about 2% of the
  requests its warm-up rate predicts for the run, at least 8: still saturating it), because answers in
  flight when wrk stops are work done but not counted. The count used is in results.json.
- **RSS**: summed over the process tree (pages shared by forked workers count in each); *idle* after three
  single requests and a one-second pause, *load* the peak sampled every 250 ms during the saturated runs.
- **Pinning**: with one worker, the system under test runs on core {sut_core} and everything else (wrk, the
  open-loop generator, the mock, a Redis the harness started) on the other core(s); with as many workers
  as cores nothing is pinned and all share every core, so on a 2-core machine the 2-worker rows also
  compete with the load generator and the mock (compare with nginx's own 1→2 scaling).
- LiteLLM {litellm} is installed by the harness into its own virtual environment (`pip install
  'litellm[proxy]'`, whatever that resolves to) and runs with a master key (it refuses to start without one) and nothing else: no database, cache,
  rate limits or callbacks, its lightest setup. The gateway's "everything on" policy
  (`bench/policies/everything.yaml`) adds API keys for three teams, eight rules, the sensitive-data scan,
  the cache (lookup miss + store), Redis rate limits and budgets, metrics and the JSON access log.
"""


PACED_METHOD = """\
- **Paced upstream** (`harness/paced_upstream.py`, asyncio on uvloop with httptools, on the load core): each
  stream is a role event, {tokens} content events 1/tps apart ({interval}) after {ttft_ms:g} ms, then the
  finish, usage and `[DONE]` events, each written on its own, as a model server generating token by token
  sends them. Each token's text carries the monotonic time it was written (and the first one the time the
  request arrived). The nginx mock cannot pace; the simulator (aiohttp) costs about twice as much per
  event and cannot stamp. The upstream's own cost per event is the floor row's CPU figure.
- **Paced client** (`harness/paced_client.py`, same stack, on the load core with the upstream): N slots, each
  opening its keep-alive connection at its own moment within one stream's length (the ramp), then
  streaming one answer after the other for the ramp plus {window:g} s: N streams open throughout, their
  tokens interleaved as independent users' are. Plans with more streams pace each one slower, so the
  load core (client and upstream: about 45 µs of its CPU per event together) is never what limits.
- **CPU per event**: utime+stime of the system's process tree over the whole run divided by the SSE events
  the client received (role, tokens, finish, usage, `[DONE]`: {events} per stream), so per-request work is
  included, spread over the stream's events. *sat.*: the system was busy ≥ 90% of its core in the measured
  window; its reads coalesce (events/read above 1) and larger plans are skipped. Redis (everything on) is
  apart, as `side_cpu_us_per_event` in results.json.
- **TTFT added**: the client's time to first token minus the upstream's own (request arrival to first token),
  per stream. **ITL added**: per consecutive pair of tokens, the gap between their arrivals at the client
  minus the gap between their departures at the upstream. **Transit**: arrival minus departure of each
  token. Latency counts tokens arriving after the ramp; the floor's figures are the machine's own noise
  (client and upstream share a core with each other and with whatever else runs).
- **RSS per stream**: the tree's peak RSS during the run minus its idle RSS, over N.
- **Open-streams check**: {open_streams:,} streams at {open_tps:g} token/s ({open_tokens} tokens each), opened over
  {open_ramp:g} s and all open at once (the upstream counts them: *most open at once*), on a freshly
  started system whose connection cap (`GATEWAY_MAX_CONNECTIONS`, nginx `worker_connections`) is raised
  to fit. A relayed stream holds two descriptors (client and upstream): the harness raises the
  system's open-files limit to two per stream plus {reserve} where it may (a deployment sets it the same
  way); where the hard limit cannot be raised (no `CAP_SYS_RESOURCE`), the check runs as many streams as
  that limit leaves room for (*N of M asked*).
"""


def _paced_tables(doc: dict, render) -> list[tuple[str, str, str]]:
    paced = doc.get("paced")
    if not paced:
        return []
    derived = paced["derived"]
    tables = []
    if paced.get("systems"):
        tables += [
            ("Paced streams: relay cost per event",
             "One worker per system. Each row is N concurrent streams at a model's pace, every token its own write "
             "at the upstream. CPU per event of the system's process tree; × nginx: against nginx proxy_pass in the "
             "same run; kernel: the share of that CPU spent in the kernel (socket reads and writes); TTFT and ITL "
             "added: at the client against the upstream, per stream and per token pair; transit: per token, "
             "departure at the upstream to arrival at the client (the floor row: the machine's own). *sat.*: the "
             "system was busy ≥ 90% of its core in the measured window.", render(paced_report.paced_rows(paced, derived))),
            ("Paced streams: the load side kept up",
             "The client and the pacing upstream share the load core; their busy share and the upstream's timer "
             "lag (ms steps: uvloop's clock) show whether they, not the system, set the pace.",
             render(paced_report.load_rows(paced, derived))),
        ]
    if paced.get("open"):
        tables.append(("Open streams on one worker",
                       "Idle-ish streams all open at once on a freshly started system; KB per open stream: peak RSS "
                       "minus idle RSS, over the streams.", render(paced_report.open_rows(paced))))
    if paced.get("targets"):
        tables.append(("Paced targets", "The goals of the paced-stream issue, for the gateway with everything on.",
                       render(report.target_rows(paced["targets"]))))
    return tables


def _tables(doc: dict, rates: tuple[float, ...], render) -> list[tuple[str, str, str]]:
    """(title, caption, rendered table) for each table."""
    systems, derived = doc["systems"], doc["derived"]
    if not systems:
        return _paced_tables(doc, render)
    ttft_rate = float(doc["meta"]["settings"]["ttft_rate"])
    return [
        ("Throughput, CPU and memory",
         "Saturated. × LiteLLM: against LiteLLM with the same number of workers; of floor: share of the mock's "
         "own rate; 1→2 workers: plain throughput with two workers over one; failed: requests without a 2xx "
         "answer over every phase.",
         render(report.throughput_rows(systems, derived))),
        ("Added latency",
         "Open loop, plain requests at fixed rates and streamed ones for time to first token: the system's "
         "percentile minus the floor's at the same rate (the floor row is absolute).",
         render(report.latency_rows(systems, derived, rates, ttft_rate))),
        ("Targets", "The goals of the performance issue, for the gateway with everything on and one worker.",
         render(report.target_rows(doc["targets"]))),
    ] + _paced_tables(doc, render)


def headline(doc: dict) -> str:
    """One sentence with the ratios that matter, when both the gateway and LiteLLM were measured."""
    d = doc["derived"]
    gw, ll = d.get("gateway-everything-w1"), d.get("litellm-w1")
    if not gw or not ll:
        return ""

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f} ms"

    def g(v: float | None) -> str:
        return "–" if v is None else f"{v:.3g}"

    return (f"With everything on and one worker, the gateway served {g(gw['json_vs_litellm'])}× LiteLLM's plain "
            f"and {g(gw['sse_vs_litellm'])}× its streamed requests per second, at 1/{g(gw['cpu_vs_litellm'])} of "
            f"its CPU time per request ({g(gw['cpu_ms_json'])} ms against {g(ll['cpu_ms_json'])} ms), and added "
            f"{ms(gw.get('added_p50_25'))} at p50 and {ms(gw.get('added_p99_25'))} at p99 at 25 requests/s where "
            f"LiteLLM added {ms(ll.get('added_p50_25'))} and {ms(ll.get('added_p99_25'))}; it ran at "
            f"{g((gw['json_vs_floor'] or 0) * 100)}% of the bare mock's rate (nginx proxy_pass: "
            f"{g(((d.get('nginx-w1') or {}).get('json_vs_floor') or 0) * 100)}%).")


def _checks(doc: dict) -> list[str]:
    """What the 'everything on' gateway said it did: a benchmark of features that were silently off is no
    benchmark of them."""
    notes = []
    for key, res in doc["systems"].items():
        if res.get("kind") != "gateway-everything" or res.get("error"):
            continue
        headers = res.get("probe_headers", {})
        cache = {k: v for k, v in headers.items() if "cache" in k and k != "cache-control"}
        limits = {k: v for k, v in headers.items() if "ratelimit" in k or "budget" in k}
        notes.append(f"{key}: rule {headers.get('x-gateway-rule', '?')!r}; cache headers: {cache or 'none'}; "
                     f"rate-limit/budget headers: {limits or 'none'}; keys in the Redis database after the run: "
                     f"{res.get('redis_keys_after')}")
    return notes


def terminal(doc: dict, rates: tuple[float, ...]) -> str:
    out = []
    for title, caption, table in _tables(doc, rates, report.text_table):
        out += ["", f"{title}: {caption}", "", table]
    out += ["", *_checks(doc)]
    for line in (headline(doc), paced_report.headline(doc.get("paced", {}).get("derived", {}))):
        if line:
            out += ["", line]
    for key, res in _all_results(doc):
        if res.get("error"):
            out.append(f"{key} FAILED: {res['error']}")
    return "\n".join(out)


def _all_results(doc: dict) -> list[tuple[str, dict]]:
    paced = doc.get("paced", {})
    return ([(k, r) for k, r in doc["systems"].items()] + [(f"paced {k}", r) for k, r in paced.get("systems", {}).items()]
            + [(f"open streams {k}", r) for k, r in paced.get("open", {}).items()])


def markdown(doc: dict, rates: tuple[float, ...], chart_name: str | None) -> str:
    meta, s = doc["meta"], doc["meta"]["settings"]
    m, v = meta["machine"], meta["versions"]
    lines = ["# Benchmark results", ""]
    if meta["settings"].get("note"):
        lines += [f"**{meta['settings']['note']}**", ""]
    if meta.get("smoke"):
        lines += ["**Smoke run: a few seconds per phase, figures are not meaningful.**", ""]
    lines += [
        f"Measured {meta['started']} with one command:", "", "```", meta["command"], "```", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Linux {m['kernel']} "
        f"(load average at start {', '.join(map(str, m['load_average_at_start']))}).", "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".", "",
    ]
    for line in (headline(doc), paced_report.headline(doc.get("paced", {}).get("derived", {}))):
        if line:
            lines += [line, ""]
    paced_titles = {title for title, _, _ in _paced_tables(doc, report.md_table)}
    for title, caption, table in _tables(doc, rates, report.md_table):
        if chart_name and title in paced_titles:  # the chart belongs to the standard phase's tables
            lines += [f"![throughput and added latency per system]({chart_name})", ""]
            chart_name = None
        lines += [f"## {title}", "", caption, "", table, ""]
    if chart_name:
        lines += [f"![throughput and added latency per system]({chart_name})", ""]
    checks = _checks(doc)
    if checks:
        lines += ["## What the 'everything on' gateway reported", "", *[f"- {c}" for c in checks], ""]
    failed = [f"- {k}: {r['error']}" for k, r in _all_results(doc) if r.get("error")]
    if failed:
        lines += ["## Systems that failed", "", *failed, ""]
    sut = m["usable_cores"][0] if m["usable_cores"] else 0
    lines += ["## Method", ""]
    if doc["systems"]:
        lines += [METHOD.format(
            nginx=v.get("nginx", "?"), connections=s["connections"], duration=s["duration"], warmup=s["warmup"],
            rates=", ".join(f"{float(r):g}" for r in s["rates"].split(",")), latency_duration=s["latency_duration"],
            ttft_rate=s["ttft_rate"], sut_core=sut, litellm=v.get("litellm", "(not in this run)"))]
    if doc.get("paced"):
        c = doc["paced"]["config"]
        first_tps = float(c["plan"][0].split("@")[1]) if c["plan"] else 1.0
        lines += ["### Paced streams", "", PACED_METHOD.format(
            tokens=c["tokens"], interval=f"{1000 / first_tps:g} ms at {first_tps:g} tokens/s",
            ttft_ms=c["ttft_ms"], window=c["window_s"], events=c["tokens"] + 4, open_streams=c["open_streams"],
            open_tps=c["open_tps"], open_tokens=c["open_tokens"], open_ramp=c["open_ramp_s"],
            reserve=c.get("open_files_reserve", 600))]
    lines += ["Raw figures, every percentile and error count: `bench/out/results.json`; logs and configs of the "
              "run: `bench/out/run-*/`.", ""]
    return "\n".join(lines)


def chart(doc: dict, rates: tuple[float, ...], path: Path) -> Path | None:
    try:
        from harness import chart as chart_module
    except ImportError as exc:
        print(f"bench: no chart ({exc}); `bash bench/install-tools.sh` installs matplotlib", file=sys.stderr)
        return None
    chart_module.draw(doc, rates, path)
    return path


KEEP_MARKER = "<!-- Sections below this line are written by hand (or by other scripts) and kept by --publish. -->"


def kept_sections(previous: str) -> str:
    """The hand-written tail of a published RESULTS.md (from ``KEEP_MARKER`` on), to carry over."""
    at = previous.find(KEEP_MARKER)
    return "" if at < 0 else "\n" + previous[at:]
