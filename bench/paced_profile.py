"""Where the gateway's CPU goes per relayed event, and what candidate changes save: measured, not guessed.

    .venv/bin/python bench/paced_profile.py --profile                 # py-spy breakdown, everything on
    .venv/bin/python bench/paced_profile.py --variants baseline,lean-meter,no-inspect+lean-meter+idle-watch,granian --repeat 3
    .venv/bin/python bench/paced_profile.py --variants baseline,baseline/240    # per-stream and per-event cost apart

Same set-up as the paced-stream phase of ``run.py`` (``harness/paced.py``): the pacing upstream and the
client on the load core, one gateway worker on core 0, N streams at a model's pace. Each *variant* is a
``+``-joined list of prototypes from ``paced_variants.py`` (``baseline``: none) and, optionally,
``granian`` (the same app served by granian instead of uvicorn); ``/<tokens>`` runs it with streams of
that many tokens (``baseline/240`` with the baseline splits the CPU per stream into a fixed part and a
part per event). Variants run round-robin ``--repeat``
times, each on a freshly started gateway, so a slow minute of the shared machine hits all of them;
the table gives each one's median CPU per event, its spread, and its gain over the baseline.

``--profile`` samples each variant's first run with py-spy (``pip install py-spy``; non-blocking, 250 Hz)
and attributes each sample of the event-loop thread whose innermost frame is Python code to the
innermost frame of a known part of the stream path (the categories below), in µs per event (samples
÷ rate ÷ events relayed while sampling). What py-spy cannot see (uvloop's C core, the kernel under it,
other threads) is the measured CPU per event minus those parts; the kernel's share comes from /proc.
Writes ``bench/out/paced-profile.json`` (and the raw py-spy stacks next to it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness import machine, paced, procs, redis_server, systems  # noqa: E402

# (category, file pattern, function pattern): the first rule matching a frame, from the leaf outwards,
# takes the sample. Order matters where one file holds several parts.
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("asyncio.timeout per upstream read", r"asyncio/timeouts\.py", r".*"),
    ("relay: text kept for counting", r"pipeline/stream_meters\.py", r"(^|\.)(_count|_add)$"),
    ("relay: meter (JSON parse of events that can carry usage/finish)", r"pipeline/stream_meters\.py", r".*"),
    ("relay: SSE decoder", r"core/sse\.py", r".*"),
    ("relay: iteration", r"pipeline/stream_relay\.py", r".*"),
    ("cache: stream capture and fold", r"state/stream_fold\.py", r".*"),
    ("provider: JSON check per event", r"providers/openai_compat\.py", r"(^|\.)_inspect$"),
    ("provider: SSE cutting, reads", r"providers/openai_compat\.py", r".*"),
    ("upstream connection: aiohttp read, chunk queue, wake-up", r"(providers/transport\.py|aiohttp/)", r".*"),
    ("response loop: ASGI message per write", r"pipeline/responses\.py", r".*"),
    ("server write path (uvicorn send, transport write)", r"uvicorn/protocols/http/.*\.py", r"(^|\.)send$"),
    ("server: client connection, parsing, flow control", r"(uvicorn/|gateway/server_protocol\.py)", r".*"),
    ("metrics", r"(gateway/metrics/|prometheus_client/)", r".*"),
    ("accounting, access log, spend", r"(pipeline/accounting\.py|pipeline/access_log\.py|state/spend\.py)", r".*"),
    ("request path: auth, parse, route, limits, cache lookup, upstream POST",
     r"gateway/(api|pipeline|routing|state|providers|protocols|policy|core)/", r".*"),
    ("granian (Rust server, from Python's side)", r"granian/", r".*"),
    ("event loop: Python parts of asyncio (futures, tasks, handles)", r"(asyncio/|uvloop/)", r".*"),
)
SPY_RATE = 250
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", choices=("minimal", "everything"), default="everything")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--tps", type=float, default=10.0)
    p.add_argument("--tokens", type=int, default=60)
    p.add_argument("--window", type=float, default=10.0, help="seconds measured after the ramp (default 10)")
    p.add_argument("--variants", default="baseline", help="comma-separated; each a +-joined list (see docstring)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="py-spy the first run of each variant")
    p.add_argument("--perf", action="store_true",
                   help="perf record (cpu-clock) the second round of each variant: CPU by shared object and symbol")
    p.add_argument("--spy-blocking", action="store_true",
                   help="let py-spy pause the gateway for each sample (consistent stacks, slower gateway)")
    p.add_argument("--out", type=Path, default=BENCH / "out")
    return p.parse_args()


def _start(variant: str, ctx: systems.Context, kind: str, port: int) -> procs.Server:
    parts = variant.split("+")
    patches = ",".join(p for p in parts if p != "granian") or "baseline"
    env = systems.gateway_env(kind, ctx)
    policy = str(systems.gateway_policy(kind))
    if "granian" in parts:
        granian = Path(sys.executable).parent / "granian"
        if not granian.exists():
            raise SystemExit("bench: granian is not installed: .venv/bin/pip install granian")
        env.update({"GATEWAY_POLICY": policy, "BENCH_VARIANTS": patches, "PYTHONPATH": str(BENCH)})
        argv = [*procs.taskset(ctx.sut_cpus), str(granian), "--interface", "asgi", "--factory", "--loop", "uvloop",
                "--workers", "1", "--runtime-mode", "st", "--no-access-log", "--log-level", "warning",
                "--host", "127.0.0.1", "--port", str(port), "paced_variants:app"]
    else:
        argv = [*procs.taskset(ctx.sut_cpus), sys.executable, str(BENCH / "paced_variants.py"), patches, "serve",
                "--policy", policy, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return procs.Server(f"gateway-{variant}", argv, ctx.run_dir / f"gateway-{variant}.log", env=env, cwd=ctx.run_dir)


def _categorise(raw: Path) -> tuple[Counter[str], int]:
    """Samples of the event-loop thread whose innermost frame is Python code, by part; and the number of
    its samples with no Python frame above the loop (uvloop's C core, the kernel under it, and whatever
    py-spy could not tell from waiting). Other threads (the access-log writer, executors) are left out:
    py-spy here cannot tell their waits from their work."""
    rules = [(name, re.compile(f), re.compile(fn)) for name, f, fn in CATEGORIES]
    counts: Counter[str] = Counter()
    loop_only = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or "threading.py" in stack or "asyncio/runners.py" not in stack:
            continue
        frames = [m for m in (_FRAME.match(f) for f in stack.split(";")) if m]
        if not frames or frames[-1]["file"].endswith("asyncio/runners.py"):
            loop_only += int(n)
            continue
        name = next((cat for m in reversed(frames) for cat, f, fn in rules
                     if f.search(m["file"]) and fn.search(m["func"])), "other Python")
        counts[name] += int(n)
    return counts, loop_only


def _perf_report(data: Path) -> dict:
    """Shares of the sampled CPU by shared object (the kernel, libpython, uvloop, orjson...) and the top
    symbols, from ``perf report``."""
    def report(sort: str) -> list[tuple[float, str]]:
        out = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g", "none",
                              "--sort", sort, "--percent-limit", "0.5"], capture_output=True, text=True, timeout=300)
        rows = []
        for line in out.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
            if m:
                rows.append((float(m[1]), re.sub(r"\s+", " ", m[2])))
        return rows

    return {"by_object": report("dso"), "by_symbol": report("dso,sym")[:40]}


def _thread_cpu(pids: list[int]) -> dict[str, tuple[float, float]]:
    """(CPU seconds, kernel seconds) per thread name, summed over the processes (threads of one name
    added up: ``main`` is each process's first thread)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[float, float]] = {}
    for pid in pids:
        try:
            tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
        for tid in tids:
            try:
                name = "main" if tid == pid else Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            user, kernel = int(fields[11]) / ticks, int(fields[12]) / ticks
            cpu, sys_ = out.get(name, (0.0, 0.0))
            out[name] = (cpu + user + kernel, sys_ + kernel)
    return out


def _one(variant: str, ctx: systems.Context, cfg: paced.PacedConfig, upstream: paced.PacedUpstream,
         args: argparse.Namespace, profile: Path | None, perf: Path | None = None) -> dict:
    variant, _, tokens_text = variant.partition("/")
    tokens = int(tokens_text) if tokens_text else args.tokens
    kind = f"gateway-{args.policy}"
    if args.policy == "everything":
        redis_server.flush(ctx.redis_url)
    port = procs.free_port()
    server = _start(variant, ctx, kind, port)
    spy = None
    try:
        server.wait_ready(f"http://127.0.0.1:{port}/healthz")
        target = systems.System(kind, 1).target(port)
        rss_idle = paced._idle_rss(server, target, upstream, cfg)
        ramp = tokens / args.tps + cfg.ttft_ms / 1000
        if perf is not None:
            # perf sees what py-spy cannot: the interpreter, uvloop's C code, the kernel (cpu-clock: works in VMs).
            spy = subprocess.Popen([*procs.taskset(cfg.load_cpus), "perf", "record", "-e", "cpu-clock", "-F", "999",
                                    "-g", "-p", str(server.pid), "-o", str(perf), "--", "sleep",
                                    str(int(ramp + args.window))], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elif profile is not None:
            # taskset execs the server in place: its pid is the server's (granian's workers are its children).
            spy = subprocess.Popen([*procs.taskset(cfg.load_cpus), str(Path(sys.executable).parent / "py-spy"), "record",
                                    "--pid", str(server.pid), "--rate", str(SPY_RATE),
                                    *([] if args.spy_blocking else ["--nonblocking"]), "--subprocesses", "--format", "raw", "--output", str(profile),
                                    "--duration", str(int(ramp + args.window))],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threads0 = _thread_cpu(server.pids())
        run = paced._run(server, target, upstream, args.streams, args.tps, tokens, args.window, ramp, cfg,
                         f"{variant}-{port}", rss_idle, upstream.server.pids(), [])
        threads = _thread_cpu(server.pids())
        run["thread_us_per_event"] = {
            name: round((threads[name][0] - threads0.get(name, (0, 0))[0]) * 1e6 / run["events"], 2)
            for name in threads} if run["events"] else {}
        run["thread_kernel_us_per_event"] = {
            name: round((threads[name][1] - threads0.get(name, (0, 0))[1]) * 1e6 / run["events"], 2)
            for name in threads} if run["events"] else {}
        if spy is not None:
            spy.wait(60)
            run["spy_s"] = int(ramp + args.window)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        server.stop()
    return run


def main() -> int:
    args = _args()
    if args.profile and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("bench: py-spy is not installed: .venv/bin/pip install py-spy")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (args.out / f"profile-{stamp}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    sut_cpus, load_cpus = machine.cpu_layout(1, True)
    redis_url = f"redis://127.0.0.1:{procs.free_port()}/0"
    redis_own = redis_server.ensure(redis_url, run_dir, load_cpus) if args.policy == "everything" else None
    upstream = paced.PacedUpstream(run_dir, procs.free_port(), load_cpus, None)
    cfg = paced.PacedConfig(run_dir, ((args.streams, args.tps),), args.tokens, args.window, 20.0, stamp, load_cpus)
    ctx = systems.Context(run_dir, upstream.port, redis_url, sut_cpus)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    profiles = {v: run_dir / f"pyspy-{v.replace('/', '-')}.txt" for v in variants} if args.profile else {}
    try:
        for i in range(args.repeat):
            for variant in variants:
                prof = profiles.get(variant) if i == 0 else None
                perf = run_dir / f"perf-{variant.replace('/', '-')}.data" if args.perf and i == 1 % args.repeat else None
                print(f"bench: {variant} (round {i + 1}/{args.repeat}) ...", file=sys.stderr, flush=True)
                run = _one(variant, ctx, cfg, upstream, args, prof, perf)
                if perf is not None:
                    run["perf"] = _perf_report(perf)
                runs[variant].append(run)
                print(f"bench:   {run['cpu_us_per_event']} µs/event, ITL added p99 "
                      f"{(run['added_itl_us'] or {}).get('p99')} µs, failed {run['failed']}", file=sys.stderr, flush=True)
    finally:
        upstream.stop()
        if redis_own:
            redis_own.stop()
    doc = _summarise(runs, args, profiles)
    out = args.out / "paced-profile.json"
    out.write_text(json.dumps(doc, indent=2))
    for raw in profiles.values():
        if raw.exists():
            shutil.copyfile(raw, args.out / f"paced-profile-{raw.name}")
    print(_table(doc))
    print(f"\nbench: wrote {out}")
    return 0


def _summarise(runs: dict[str, list[dict]], args: argparse.Namespace, profiles: dict[str, Path]) -> dict:
    base = statistics.median(r["cpu_us_per_event"] for r in runs.get("baseline", []) or [{"cpu_us_per_event": 0}])
    doc: dict = {"settings": {k: str(v) for k, v in vars(args).items()}, "machine": machine.describe(), "variants": {}}
    for variant, rs in runs.items():
        cpu = [r["cpu_us_per_event"] for r in rs]
        med = statistics.median(cpu)
        doc["variants"][variant] = {
            "cpu_us_per_event": cpu, "median": round(med, 2), "spread": round(max(cpu) - min(cpu), 2),
            "saved_us": round(base - med, 2) if base else None,
            "itl_added_p99_us": [(r["added_itl_us"] or {}).get("p99") for r in rs],
            "ttft_added_p99_ms": [(r["ttft_added_ms"] or {}).get("p99") for r in rs],
            "failed": [r["failed"] for r in rs], "cpu_ms_per_stream": [r["cpu_ms_per_stream"] for r in rs],
            "kernel_share": [r["kernel_share"] for r in rs],
            "perf": next((r["perf"] for r in rs if r.get("perf")), None),
            "thread_us_per_event": rs[0].get("thread_us_per_event"),
            "thread_kernel_us_per_event": rs[0].get("thread_kernel_us_per_event"),
            "rss_kb_per_stream": [r["rss_kb_per_stream"] for r in rs],
        }
    longer = next((v for v in runs if v.startswith("baseline/")), None)
    if longer and "baseline" in runs:
        # CPU per stream = fixed + per_event × events: two lengths of the same stream give both.
        short = statistics.median(r["cpu_ms_per_stream"] for r in runs["baseline"])
        long_ = statistics.median(r["cpu_ms_per_stream"] for r in runs[longer])
        events_short, events_long = args.tokens + 4, int(longer.split("/")[1]) + 4
        per_event = (long_ - short) / (events_long - events_short)
        doc["marginal"] = {"per_event_us": round(per_event * 1000, 2),
                           "per_stream_fixed_ms": round(short - per_event * events_short, 3),
                           "streams_of": [events_short, events_long], "cpu_ms_per_stream": [short, long_]}
    doc["profiles"] = {}
    for variant, raw in profiles.items():
        if not raw.exists():
            continue
        counts, loop_only = _categorise(raw)
        first = runs[variant][0]
        cpu, kernel = first["cpu_us_per_event"], first["kernel_share"] or 0.0
        # py-spy sampled the first SPY_SECONDS of the run: the events relayed in them, assuming an even pace.
        sampled = first["events"] * min(1.0, first["spy_s"] / first["elapsed_s"])
        us = {name: round(n / SPY_RATE / sampled * 1e6, 2) for name, n in counts.most_common()}
        python = sum(us.values())
        doc["profiles"][variant] = {
            "cpu_us_per_event": cpu, "kernel_us_per_event": round(cpu * kernel, 2),
            "python_us_per_event": round(python, 2), "parts_us_per_event": us,
            "rest_us_per_event": round(cpu - python, 2), "loop_only_samples": loop_only,
            "python_samples": sum(counts.values())}
    return doc


def _table(doc: dict) -> str:
    lines = ["variant                                         CPU µs/event (median, spread)   saved   ITL added p99 µs"]
    for name, v in doc["variants"].items():
        lines.append(f"{name:<48}{v['median']:>10.1f} ±{v['spread'] / 2:<6.1f}{'':>12}"
                     f"{v['saved_us'] if v['saved_us'] is not None else '–':>8}   {v['itl_added_p99_us']}")
    if "marginal" in doc:
        m = doc["marginal"]
        lines += ["", f"baseline split by stream length ({m['streams_of'][0]} and {m['streams_of'][1]} events): "
                  f"{m['per_stream_fixed_ms']} ms per stream + {m['per_event_us']} µs per event"]
    for name, v in doc["variants"].items():
        if v.get("thread_us_per_event"):
            threads = ", ".join(f"{t} {us} µs ({v['thread_kernel_us_per_event'].get(t)} kernel)"
                                for t, us in v["thread_us_per_event"].items() if us)
            lines.append(f"  {name}: CPU per event by thread: {threads}")
    for name, v in doc["variants"].items():
        if v.get("perf"):
            cpu = v["median"]
            lines += ["", f"perf, {name}: share of CPU (≈ µs per event at {cpu} µs) by shared object:"]
            lines += [f"  {pct:5.1f}%  {pct * cpu / 100:6.2f} µs  {what}" for pct, what in v["perf"]["by_object"][:12]]
            lines += ["  top symbols:"] + [f"  {pct:5.1f}%  {what}" for pct, what in v["perf"]["by_symbol"][:25]]
    for variant, p in doc.get("profiles", {}).items():
        lines += ["", f"py-spy, {variant}: {p['cpu_us_per_event']} µs of CPU per event (/proc), of which "
                  f"{p['kernel_us_per_event']} µs in the kernel; Python code of the event-loop thread "
                  f"{p['python_us_per_event']} µs:", ""]
        lines += [f"  {v:6.2f} µs  {name}" for name, v in p["parts_us_per_event"].items()]
        lines += [f"  {p['rest_us_per_event']:6.2f} µs  the rest: uvloop's C core and the kernel under it, "
                  "other threads (access-log writer, executors), interpreter start-up of each callback"]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
