"""Gateway benchmark: every system measured in one run on this machine, printed as a table.

    bash bench/run.sh                      # full run (installs nginx, wrk, matplotlib, LiteLLM on first use)
    bash bench/run.sh --smoke              # a few seconds: floor, nginx, gateway; no LiteLLM (what CI runs)
    bash bench/run.sh --systems floor,gateway-everything --workers 1 --duration 5
    bash bench/run.sh --phases paced,open   # only the paced-stream phase and the open-streams check

Writes ``bench/out/results.json``, ``bench/out/results.md`` and ``bench/out/chart.png`` (``--publish``
also writes ``bench/RESULTS.md`` and ``bench/results.png``). See ``bench/README.md`` for the method.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    document,
    litellm_env,
    machine,
    nginx,
    paced,
    paced_report,
    phases,
    procs,
    redis_server,
    report,
    systems,
)

BENCH = Path(__file__).resolve().parent
PHASES = ("standard", "paced", "open")
OPEN_FILES_RESERVE = 1000
"""Descriptors a relay needs besides two per stream (listening socket, logs, Redis, idle keep-alive
connections to the upstream: nginx keeps up to 256)."""


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(systems.KINDS),
                   help=f"comma-separated, from {', '.join(systems.KINDS)} (the floor always runs; "
                        f"{', '.join(systems.PACED_ONLY)} in the paced phase only)")
    p.add_argument("--workers", default="1,2", help="worker counts for nginx, gateway and LiteLLM (default 1,2)")
    p.add_argument("--duration", type=float, default=15, help="seconds of each saturated run (default 15)")
    p.add_argument("--latency-duration", type=float, default=20, help="seconds of each open-loop run (default 20)")
    p.add_argument("--rates", default="25,500", help="open-loop rates in requests/s (default 25,500)")
    p.add_argument("--ttft-rate", type=float, default=25, help="open-loop rate of the streamed TTFT run (default 25)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load before measuring (default 3)")
    p.add_argument("--redis-url", default="",
                   help="Redis of the 'everything on' gateway; its database is emptied before each system (default: "
                        "a redis-server the harness starts on a free loopback port, so no one else's data is touched)")
    p.add_argument("--litellm-spec", default="litellm[proxy]", help="what pip installs into bench/.litellm-venv")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--out", type=Path, default=BENCH / "out", help="output folder (default bench/out)")
    p.add_argument("--publish", action="store_true", help="also write bench/RESULTS.md and bench/results.png")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--note", default="", help="a line shown at the top of results.md / RESULTS.md")
    p.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                   help="measure nothing: write the tables of a saved run's results.json again (with --publish: "
                        "RESULTS.md, its chart kept)")
    p.add_argument("--smoke", action="store_true",
                   help="a few seconds, 1 worker, no LiteLLM: checks that the harness works (CI)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help="comma-separated, from standard (saturated, latency, TTFT), paced (streams at a model's "
                        "pace) and open (the open-streams check); default all")
    g = p.add_argument_group("paced-stream phase (one worker per system; see harness/paced.py)")
    g.add_argument("--paced-streams", default="200,1000,2000", help="concurrent streams of each run (default 200,1000,2000)")
    g.add_argument("--paced-tps", default="20,5,2.5",
                   help="tokens/s per stream: one value, or one per --paced-streams entry (default 20,5,2.5: "
                        "about 4,300, 5,300 and 5,300 events/s: the load side's one core keeps up with room to "
                        "spare, and so does the gateway's)")
    g.add_argument("--paced-tokens", type=int, default=60, help="content tokens per stream (default 60)")
    g.add_argument("--paced-window", type=float, default=10, help="seconds measured after the ramp (default 10)")
    g.add_argument("--paced-ttft-ms", type=float, default=20, help="the upstream's time to first token (default 20)")
    g.add_argument("--open-streams", type=int, default=10_000, help="streams of the open-streams check (default 10000)")
    g.add_argument("--open-tps", type=float, default=0.2,
                   help="their tokens/s (default 0.2: idle-ish; 8 tokens each, opened over 30 s)")
    g.add_argument("--open-systems", default="nginx,gateway-minimal,gateway-everything",
                   help="systems of the open-streams check (default nginx,gateway-minimal,gateway-everything)")
    args = p.parse_args(argv)
    if args.smoke:
        args.systems = "floor,nginx,pypipe,gateway-minimal,gateway-everything"
        args.workers, args.duration, args.latency_duration, args.warmup, args.connections = "1", 1, 0.6, 0, 16
        args.rates = "25,200"
        args.paced_streams, args.paced_tps, args.paced_tokens, args.paced_window = "30", "20", 10, 1.0
        args.open_streams, args.open_tps, args.open_systems = 300, 5.0, "gateway-everything"
    if not args.redis_url:
        args.redis_url = f"redis://127.0.0.1:{procs.free_port()}/0"  # nothing answers there: the harness starts it
    unknown = {p.strip() for p in args.phases.split(",") if p.strip()} - set(PHASES)
    if unknown:
        raise SystemExit(f"bench: unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    return args


def _paced_config(args: argparse.Namespace, run_dir: Path, stamp: str) -> paced.PacedConfig:
    streams = [int(n) for n in args.paced_streams.split(",")]
    tps = [float(t) for t in args.paced_tps.split(",")]
    if len(tps) == 1:
        tps *= len(streams)
    if len(tps) != len(streams):
        raise SystemExit("bench: --paced-tps takes one value or one per --paced-streams entry")
    cfg = paced.PacedConfig(run_dir, tuple(zip(streams, tps, strict=True)), args.paced_tokens, args.paced_window,
                            args.paced_ttft_ms, stamp, None, open_streams=args.open_streams, open_tps=args.open_tps,
                            idle_pause=0.3 if args.smoke else 1.0)
    if args.smoke:
        cfg.open_tokens, cfg.open_ramp, cfg.open_hold = 10, 1.0, 0.5  # 2 s streams: all open from 1 s on
    return cfg


def _plan(args: argparse.Namespace) -> list[systems.System]:
    kinds = [k.strip() for k in args.systems.split(",") if k.strip()]
    unknown = set(kinds) - set(systems.KINDS)
    if unknown:
        raise SystemExit(f"bench: unknown systems {sorted(unknown)}; choose from {', '.join(systems.KINDS)}")
    workers = sorted({int(w) for w in args.workers.split(",")})
    plan = [systems.System("floor", 1)]
    plan += [systems.System(k, w) for k in systems.KINDS if k != "floor" and k in kinds for w in workers]
    return plan


def _standard(plan: list[systems.System]) -> list[systems.System]:
    return [s for s in plan if s.kind not in systems.PACED_ONLY]


def _check_tools() -> None:
    missing = [t for t in ("wrk", "taskset") if not shutil.which(t)]
    try:
        nginx.nginx_binary()
    except RuntimeError:
        missing.append("nginx")
    if missing:
        raise SystemExit(f"bench: missing {', '.join(missing)}: run `bash bench/install-tools.sh`")


def _layout(system: systems.System, ctx: systems.Context, upstream: procs.Server, redis_own: procs.Server | None,
            args: argparse.Namespace) -> tuple[dict, set[int] | None]:
    """Pin the upstream and the harness's Redis for this system; its result's head and the load-side CPUs."""
    sut_cpus, load_cpus = machine.cpu_layout(system.workers, not args.no_pin)
    ctx.sut_cpus = sut_cpus
    procs.pin(upstream.pids(), sut_cpus if system.kind == "floor" else (load_cpus or set(os.sched_getaffinity(0))))
    if redis_own:
        procs.pin(redis_own.pids(), load_cpus or set(os.sched_getaffinity(0)))
    if system.kind == "gateway-everything":
        redis_server.flush(args.redis_url)
    return ({"kind": system.kind, "workers": system.workers, "label": system.label,
             "cpus": {"system": sorted(sut_cpus) if sut_cpus else "all", "load": sorted(load_cpus) if load_cpus else "all"}},
            load_cpus)


@contextlib.contextmanager
def _running(system: systems.System, ctx: systems.Context, result: dict) -> Iterator[tuple[procs.Server, int]]:
    """The system started on a free port and ready; stopped on leaving (its log's tail kept on failure)."""
    port = procs.free_port()
    started = time.monotonic()
    server, ready = systems.start(system, ctx, port)
    failed = True
    try:
        server.wait_ready(ready, expect_workers=system.workers + 1 if system.workers > 1 else 1)
        time.sleep(1.0 if system.workers > 1 else 0.2)
        result["startup_s"] = round(time.monotonic() - started, 2)
        yield server, port
        failed = False
    finally:
        server.stop()
        result["log_tail"] = server.tail(1500) if failed else ""


def _run_system(system: systems.System, ctx: systems.Context, cfg: phases.PhaseConfig, mock: procs.Server,
                redis_pid: int | None, redis_own: procs.Server | None, args: argparse.Namespace) -> dict:
    result, cfg.load_cpus = _layout(system, ctx, mock, redis_own, args)
    if system.kind == "floor":
        result.update(phases.measure(mock, system.target(ctx.mock_port), cfg))
        return result
    uses_redis = system.kind == "gateway-everything"
    with _running(system, ctx, result) as (server, port):
        side = [redis_pid] if uses_redis and redis_pid else []
        result.update(phases.measure(server, system.target(port), cfg, side_pids=side))
        if uses_redis:
            result["redis_keys_after"] = redis_server.keys(args.redis_url)
    return result


def _run_paced(system: systems.System, ctx: systems.Context, cfg: paced.PacedConfig, upstream: paced.PacedUpstream,
               redis_pid: int | None, redis_own: procs.Server | None, args: argparse.Namespace) -> dict:
    result, cfg.load_cpus = _layout(system, ctx, upstream.server, redis_own, args)
    if system.kind == "floor":
        result["label"] = "floor: client → paced upstream (no proxy)"
        result.update(paced.measure(upstream.server, system.target(upstream.port), upstream, cfg, floor=True))
        return result
    with _running(system, ctx, result) as (server, port):
        side = [redis_pid] if system.kind == "gateway-everything" and redis_pid else []
        result.update(paced.measure(server, system.target(port), upstream, cfg, side_pids=side))
    return result


def _run_open(system: systems.System, ctx: systems.Context, cfg: paced.PacedConfig, upstream: paced.PacedUpstream,
              redis_own: procs.Server | None, args: argparse.Namespace) -> dict:
    result, cfg.load_cpus = _layout(system, ctx, upstream.server, redis_own, args)
    # A relayed stream holds two descriptors (client and upstream): the limit a deployment would set, or
    # as many streams as the limit this machine allows leaves room for.
    ctx.open_files = procs.file_limit(2 * args.open_streams + OPEN_FILES_RESERVE)
    cfg.open_streams = min(args.open_streams, (ctx.open_files - OPEN_FILES_RESERVE) // 2)
    ctx.max_connections = cfg.open_streams
    result["open_files_limit"] = ctx.open_files
    result["streams_asked"] = args.open_streams
    try:
        with _running(system, ctx, result) as (server, port):
            result.update(paced.open_check(server, system.target(port), upstream, cfg))
    finally:
        ctx.open_files = ctx.max_connections = None
    return result


def _each(plan: list[systems.System], what: str, run: Callable[[systems.System], dict]) -> dict[str, dict]:
    """Run every system; one that fails is recorded with its error and does not lose the others' figures."""
    results: dict[str, dict] = {}
    for system in plan:
        print(f"bench: {what}{system.label} ...", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            results[system.key] = run(system)
            print(f"bench:   done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - one failed system must not lose the others' figures
            results[system.key] = {"kind": system.kind, "workers": system.workers, "label": system.label,
                                   "error": f"{type(exc).__name__}: {exc}"}
            print(f"bench: {what}{system.label} failed: {exc}", file=sys.stderr, flush=True)
    return results


def _render(args: argparse.Namespace) -> int:
    doc = json.loads(args.render.read_text())
    rates = tuple(float(r) for r in doc["meta"]["settings"]["rates"].split(","))
    print(document.terminal(doc, rates))
    if args.publish:
        chart = "results.png" if doc["systems"] and (BENCH / "results.png").exists() else None
        (BENCH / "RESULTS.md").write_text(document.markdown(doc, rates, chart_name=chart))
        print(f"\nbench: wrote {BENCH / 'RESULTS.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.render:
        return _render(args)
    phases_on = {p.strip() for p in args.phases.split(",") if p.strip()}
    _check_tools()
    plan = _standard(_plan(args)) if "standard" in phases_on else []
    kinds = [k for k in systems.KINDS if k in {s.kind for s in _plan(args)}]
    paced_plan = [systems.System(k, 1) for k in kinds] if "paced" in phases_on else []
    open_kinds = [k.strip() for k in args.open_systems.split(",") if k.strip()]
    if set(open_kinds) - set(systems.KINDS):
        raise SystemExit(f"bench: unknown --open-systems {sorted(set(open_kinds) - set(systems.KINDS))}")
    open_plan = [systems.System(k, 1) for k in open_kinds if k != "floor"] if "open" in phases_on else []
    everything = plan + paced_plan + open_plan
    rates = tuple(float(r) for r in args.rates.split(","))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out: Path = args.out
    run_dir = out / f"run-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(out.glob("run-*"))[:-5]:  # keep the logs of the last five runs
        shutil.rmtree(old, ignore_errors=True)
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": args.smoke,
            "command": "bash bench/run.sh" + "".join(" " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "machine": machine.describe(), "versions": machine.versions(),
            "settings": {k: v for k, v in vars(args).items() if k not in ("out",)}}
    meta["settings"]["plan"] = [s.key for s in plan]
    litellm_bin = None
    if any(s.kind == "litellm" for s in everything):
        litellm_bin = litellm_env.ensure(args.litellm_spec)
        meta["versions"]["litellm"] = litellm_env.version()
    redis_own = None
    redis_pid = None
    if any(s.kind == "gateway-everything" for s in everything):
        _, load_cpus = machine.cpu_layout(1, not args.no_pin)
        redis_own = redis_server.ensure(args.redis_url, run_dir, load_cpus)
        info = redis_server.info(args.redis_url)
        redis_pid, meta["versions"]["redis"] = info["pid"], info["version"]
        meta["redis"] = {"url": args.redis_url, "started_by_bench": redis_own is not None}
    results: dict[str, dict] = {}
    paced_doc: dict = {}
    try:
        if plan:
            results = _standard_phase(plan, args, run_dir.resolve(), stamp, rates, litellm_bin, redis_pid, redis_own)
        if paced_plan or open_plan:
            paced_doc = _paced_phases(paced_plan, open_plan, args, run_dir.resolve(), stamp, litellm_bin, redis_pid,
                                      redis_own)
    finally:
        if redis_own:
            redis_own.stop()
    derived = report.derive(results, rates)
    doc = {"meta": meta, "systems": results, "derived": derived, "targets": report.targets(derived) if results else []}
    if paced_doc:
        doc["paced"] = paced_doc
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    (run_dir / "results.json").write_text(json.dumps(doc, indent=2))
    print(document.terminal(doc, rates))
    chart = None
    if not args.no_chart and results:
        chart = document.chart(doc, rates, out / "chart.png")
    (out / "results.md").write_text(document.markdown(doc, rates, chart_name="chart.png" if chart else None))
    if args.publish:
        published = BENCH / "RESULTS.md"
        kept = document.kept_sections(published.read_text() if published.exists() else "")
        published.write_text(document.markdown(doc, rates, chart_name="results.png" if chart else None) + kept)
        if chart:
            shutil.copyfile(chart, BENCH / "results.png")
    print(f"\nbench: wrote {out / 'results.json'}, {out / 'results.md'}" + (f", {chart}" if chart else ""))
    failed = [k for group in (results, paced_doc.get("systems", {}), paced_doc.get("open", {}))
              for k, v in group.items() if v.get("error")]
    return 1 if failed else 0


def _standard_phase(plan: list[systems.System], args: argparse.Namespace, run_dir: Path, stamp: str,
                    rates: tuple[float, ...], litellm_bin: Path | None, redis_pid: int | None,
                    redis_own: procs.Server | None) -> dict[str, dict]:
    mock_port = procs.free_port()
    mock = nginx.start("mock", nginx.mock_config(run_dir, mock_port), run_dir)
    try:
        mock.wait_ready(f"http://127.0.0.1:{mock_port}/healthz", timeout=20)
        ctx = systems.Context(run_dir, mock_port, args.redis_url, None, litellm_bin)
        cfg = phases.PhaseConfig(run_dir, args.duration, args.latency_duration, rates, args.ttft_rate,
                                 args.connections, args.wrk_threads, args.warmup, stamp, None,
                                 idle_pause=0.3 if args.smoke else 1.0)
        return _each(plan, "", lambda system: _run_system(system, ctx, cfg, mock, redis_pid, redis_own, args))
    finally:
        mock.stop()


def _paced_phases(paced_plan: list[systems.System], open_plan: list[systems.System], args: argparse.Namespace,
                  run_dir: Path, stamp: str, litellm_bin: Path | None, redis_pid: int | None,
                  redis_own: procs.Server | None) -> dict:
    cfg = _paced_config(args, run_dir, stamp)
    _, load_cpus = machine.cpu_layout(1, not args.no_pin)
    upstream = paced.PacedUpstream(run_dir, procs.free_port(), load_cpus, None)
    out: dict = {"config": {"plan": [f"{n}@{t:g}" for n, t in cfg.plan], "tokens": cfg.tokens, "window_s": cfg.window,
                            "ttft_ms": cfg.ttft_ms, "open_streams": cfg.open_streams, "open_tps": cfg.open_tps,
                            "open_tokens": cfg.open_tokens, "open_ramp_s": cfg.open_ramp, "open_hold_s": cfg.open_hold,
                            "open_files_reserve": OPEN_FILES_RESERVE}}
    try:
        ctx = systems.Context(run_dir, upstream.port, args.redis_url, None, litellm_bin)
        out["systems"] = _each(paced_plan, "paced: ", lambda system: _run_paced(system, ctx, cfg, upstream, redis_pid,
                                                                                 redis_own, args))
        out["open"] = _each(open_plan, "open streams: ", lambda system: _run_open(system, ctx, cfg, upstream, redis_own,
                                                                                   args))
    finally:
        upstream.stop()
    out["derived"] = paced_report.derive(out)
    out["targets"] = paced_report.targets(out, out["derived"])
    return out


if __name__ == "__main__":
    sys.exit(main())
