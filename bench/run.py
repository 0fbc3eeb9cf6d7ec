"""Gateway benchmark: every system measured in one run on this machine, printed as a table.

    bash bench/run.sh                      # full run (installs nginx, wrk, matplotlib, LiteLLM on first use)
    bash bench/run.sh --smoke              # a few seconds: floor, nginx, gateway; no LiteLLM (what CI runs)
    bash bench/run.sh --systems floor,gateway-everything --workers 1 --duration 5

Writes ``bench/out/results.json``, ``bench/out/results.md`` and ``bench/out/chart.png`` (``--publish``
also writes ``bench/RESULTS.md`` and ``bench/results.png``). See ``bench/README.md`` for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import document, litellm_env, machine, nginx, phases, procs, redis_server, report, systems  # noqa: E402

BENCH = Path(__file__).resolve().parent


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(systems.KINDS),
                   help=f"comma-separated, from {', '.join(systems.KINDS)} (the floor always runs)")
    p.add_argument("--workers", default="1,2", help="worker counts for nginx, gateway and LiteLLM (default 1,2)")
    p.add_argument("--duration", type=float, default=15, help="seconds of each saturated run (default 15)")
    p.add_argument("--latency-duration", type=float, default=20, help="seconds of each open-loop run (default 20)")
    p.add_argument("--rates", default="25,500", help="open-loop rates in requests/s (default 25,500)")
    p.add_argument("--ttft-rate", type=float, default=25, help="open-loop rate of the streamed TTFT run (default 25)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load before measuring (default 3)")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14",
                   help="Redis of the 'everything on' gateway; its database is emptied (default db 14)")
    p.add_argument("--litellm-spec", default="litellm[proxy]", help="what pip installs into bench/.litellm-venv")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--out", type=Path, default=BENCH / "out", help="output folder (default bench/out)")
    p.add_argument("--publish", action="store_true", help="also write bench/RESULTS.md and bench/results.png")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--note", default="", help="a line shown at the top of results.md / RESULTS.md")
    p.add_argument("--smoke", action="store_true",
                   help="a few seconds, 1 worker, no LiteLLM: checks that the harness works (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        args.systems = "floor,nginx,gateway-minimal,gateway-everything"
        args.workers, args.duration, args.latency_duration, args.warmup, args.connections = "1", 1, 0.6, 0, 16
        args.rates = "25,200"
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plan(args: argparse.Namespace) -> list[systems.System]:
    kinds = [k.strip() for k in args.systems.split(",") if k.strip()]
    unknown = set(kinds) - set(systems.KINDS)
    if unknown:
        raise SystemExit(f"bench: unknown systems {sorted(unknown)}; choose from {', '.join(systems.KINDS)}")
    workers = sorted({int(w) for w in args.workers.split(",")})
    plan = [systems.System("floor", 1)]
    plan += [systems.System(k, w) for k in systems.KINDS if k != "floor" and k in kinds for w in workers]
    return plan


def _check_tools() -> None:
    missing = [t for t in ("wrk", "taskset") if not shutil.which(t)]
    try:
        nginx.nginx_binary()
    except RuntimeError:
        missing.append("nginx")
    if missing:
        raise SystemExit(f"bench: missing {', '.join(missing)}: run `bash bench/install-tools.sh`")


def _run_system(system: systems.System, ctx: systems.Context, cfg: phases.PhaseConfig, mock: procs.Server,
                redis_pid: int | None, redis_own: procs.Server | None, args: argparse.Namespace) -> dict:
    sut_cpus, load_cpus = machine.cpu_layout(system.workers, not args.no_pin)
    cfg.load_cpus, ctx.sut_cpus = load_cpus, sut_cpus
    procs.pin(mock.pids(), sut_cpus if system.kind == "floor" else (load_cpus or set(os.sched_getaffinity(0))))
    if redis_own:
        procs.pin(redis_own.pids(), load_cpus or set(os.sched_getaffinity(0)))
    result: dict = {"kind": system.kind, "workers": system.workers, "label": system.label,
                    "cpus": {"system": sorted(sut_cpus) if sut_cpus else "all",
                             "load": sorted(load_cpus) if load_cpus else "all"}}
    uses_redis = system.kind == "gateway-everything"
    if uses_redis:
        redis_server.flush(args.redis_url)
    if system.kind == "floor":
        result.update(phases.measure(mock, system.target(ctx.mock_port), cfg))
        return result
    port = _free_port()
    started = time.monotonic()
    server, ready = systems.start(system, ctx, port)
    try:
        server.wait_ready(ready, expect_workers=system.workers + 1 if system.workers > 1 else 1)
        time.sleep(1.0 if system.workers > 1 else 0.2)
        result["startup_s"] = round(time.monotonic() - started, 2)
        side = [redis_pid] if uses_redis and redis_pid else []
        result.update(phases.measure(server, system.target(port), cfg, side_pids=side))
        if uses_redis:
            result["redis_keys_after"] = redis_server.keys(args.redis_url)
    finally:
        server.stop()
        result["log_tail"] = server.tail(1500) if result.get("saturated_json") is None else ""
    return result


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    _check_tools()
    plan = _plan(args)
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
    if any(s.kind == "litellm" for s in plan):
        litellm_bin = litellm_env.ensure(args.litellm_spec)
        meta["versions"]["litellm"] = litellm_env.version()
    redis_own = None
    redis_pid = None
    if any(s.kind == "gateway-everything" for s in plan):
        _, load_cpus = machine.cpu_layout(1, not args.no_pin)
        redis_own = redis_server.ensure(args.redis_url, run_dir, load_cpus)
        info = redis_server.info(args.redis_url)
        redis_pid, meta["versions"]["redis"] = info["pid"], info["version"]
        meta["redis"] = {"url": args.redis_url, "started_by_bench": redis_own is not None}
    mock_port = _free_port()
    mock = nginx.start("mock", nginx.mock_config(run_dir.resolve(), mock_port), run_dir.resolve())
    results: dict[str, dict] = {}
    try:
        mock.wait_ready(f"http://127.0.0.1:{mock_port}/healthz", timeout=20)
        ctx = systems.Context(run_dir.resolve(), mock_port, args.redis_url, None, litellm_bin)
        cfg = phases.PhaseConfig(run_dir, args.duration, args.latency_duration, rates, args.ttft_rate,
                                 args.connections, args.wrk_threads, args.warmup, stamp, None,
                                 idle_pause=0.3 if args.smoke else 1.0)
        for system in plan:
            print(f"bench: {system.label} ...", file=sys.stderr, flush=True)
            began = time.monotonic()
            try:
                results[system.key] = _run_system(system, ctx, cfg, mock, redis_pid, redis_own, args)
                print(f"bench:   done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
            except Exception as exc:  # noqa: BLE001 - one failed system must not lose the others' figures
                results[system.key] = {"kind": system.kind, "workers": system.workers, "label": system.label,
                                       "error": f"{type(exc).__name__}: {exc}"}
                print(f"bench: {system.label} failed: {exc}", file=sys.stderr, flush=True)
    finally:
        mock.stop()
        if redis_own:
            redis_own.stop()
    derived = report.derive(results, rates)
    doc = {"meta": meta, "systems": results, "derived": derived, "targets": report.targets(derived)}
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    (run_dir / "results.json").write_text(json.dumps(doc, indent=2))
    print(document.terminal(doc, rates))
    chart = None
    if not args.no_chart:
        chart = document.chart(doc, rates, out / "chart.png")
    (out / "results.md").write_text(document.markdown(doc, rates, chart_name="chart.png" if chart else None))
    if args.publish:
        published = BENCH / "RESULTS.md"
        kept = document.kept_sections(published.read_text() if published.exists() else "")
        published.write_text(document.markdown(doc, rates, chart_name="results.png" if chart else None) + kept)
        if chart:
            shutil.copyfile(chart, BENCH / "results.png")
    print(f"\nbench: wrote {out / 'results.json'}, {out / 'results.md'}" + (f", {chart}" if chart else ""))
    failed = [k for k, v in results.items() if v.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
