"""The ``gateway`` command: serve, simulate, and policy tooling (check, test, explain)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from gateway.settings import Settings, SettingsError, default_policy_path

EPILOG = """\
Every `serve` flag can also be set by environment: GATEWAY_POLICY, GATEWAY_HOST, GATEWAY_PORT,
GATEWAY_WORKERS, GATEWAY_REDIS_URL, GATEWAY_ALLOW_UNAUTHENTICATED, GATEWAY_ADMIN_KEY,
GATEWAY_MAX_BODY_BYTES, GATEWAY_ACCESS_LOG, GATEWAY_LOG_LEVEL, GATEWAY_POLICY_RELOAD.

Quick start:  gateway serve            (embedded default policy, simulated upstreams, 127.0.0.1:8080)
              then point the OpenAI SDK at http://127.0.0.1:8080/v1 with any api_key.
"""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="OpenAI-compatible model-routing gateway: sends each request to a self-hosted open model "
        "or a proprietary API by cost, measured latency and policy rules.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway", description="Run the gateway HTTP server.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--policy", help="policy YAML file (default: policies/default.yaml, else the packaged default)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.add_argument("--redis-url", help="shared state in Redis, e.g. redis://127.0.0.1:6379/0")
    serve.add_argument("--allow-unauthenticated", action="store_true", default=None,
                       help="serve without API keys on a non-loopback address")
    serve.set_defaults(func=_serve)

    sim = sub.add_parser("simulate", help="run the upstream simulator (OpenAI, Anthropic and Gemini wire protocols)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9000)
    sim.add_argument("--ttft-ms", type=float, help="time to first token (default 20)")
    sim.add_argument("--tps", type=float, help="stream pacing in tokens per second (default: unpaced)")
    sim.add_argument("--output-tokens", type=int, help="answer length in tokens (default 16)")
    sim.add_argument("--fault", help="default fault for every request, e.g. 'status=503' (see docs)")
    sim.add_argument("--slots", type=int, help="generations at once; more wait in line (default: no limit)")
    sim.set_defaults(func=_simulate)

    demo = sub.add_parser("demo", help="a real open model (llama-server) and a simulated vendor behind the gateway",
                          description="Build or reuse llama-server, start SmolLM2-135M on it, a simulated vendor "
                          "and the gateway in front of both; Ctrl-C stops everything.")
    demo.add_argument("--port", type=int, default=8080, help="the gateway's port (default 8080)")
    demo.set_defaults(func=_demo)

    policy = sub.add_parser("policy", help="check, test and explain policy files")
    psub = policy.add_subparsers(title="policy commands", metavar="ACTION")
    check = psub.add_parser("check", help="validate policy files; prints file:line:column for every problem")
    check.add_argument("paths", nargs="+")
    check.set_defaults(func=_policy_check)
    test = psub.add_parser("test", help="run the golden cases of policy files")
    test.add_argument("paths", nargs="+")
    test.set_defaults(func=_policy_test)
    explain = psub.add_parser("explain", help="show the routing decision for a request body, calling no upstream")
    explain.add_argument("path")
    explain.add_argument("--request", required=True, help="JSON file with a chat completion body ('-' for stdin)")
    explain.add_argument("--team")
    explain.add_argument("--key", help="API key name (as in the policy) the request comes with")
    explain.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    explain.set_defaults(func=_policy_explain)
    schema = psub.add_parser("schema", help="print the policy JSON schema")
    schema.set_defaults(func=_policy_schema)
    reference = psub.add_parser("reference", help="print the policy reference (Markdown)")
    reference.set_defaults(func=_policy_reference)

    keys = sub.add_parser("keys", help="API key helpers")
    ksub = keys.add_subparsers(title="key commands", metavar="ACTION")
    khash = ksub.add_parser("hash", help="print the sha256 to put in a policy's keys for a secret")
    khash.add_argument("secret", nargs="?", help="the key (read from stdin when omitted)")
    khash.set_defaults(func=_keys_hash)
    return parser


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(
            policy=args.policy, host=args.host, port=args.port, workers=args.workers,
            redis_url=args.redis_url, allow_unauthenticated=args.allow_unauthenticated,
        )
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    from gateway.policy.loader import PolicyError, load_policy

    try:
        loaded = load_policy(settings.policy)
    except PolicyError as exc:
        print(f"gateway: the policy cannot be used:\n{exc}", file=sys.stderr)
        return 1
    if not loaded.policy.keys and not settings.loopback and not settings.allow_unauthenticated:
        print(f"gateway: refusing to serve without API keys on {settings.host}: define `keys` in the policy, bind a "
              "loopback address, or set GATEWAY_ALLOW_UNAUTHENTICATED=true to accept that risk.", file=sys.stderr)
        return 2
    # Workers are separate processes: they read their settings from the environment.
    env = {
        "GATEWAY_POLICY": settings.policy, "GATEWAY_HOST": settings.host, "GATEWAY_PORT": str(settings.port),
        "GATEWAY_WORKERS": str(settings.workers),
    }
    if settings.redis_url:
        env["GATEWAY_REDIS_URL"] = settings.redis_url
    if settings.allow_unauthenticated:
        env["GATEWAY_ALLOW_UNAUTHENTICATED"] = "true"
    if settings.workers > 1 and not settings.metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ.update(env)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    import uvicorn

    print(f"gateway: serving policy {loaded.policy.name!r} ({settings.policy}, version {loaded.version}) on "
          f"http://{settings.host}:{settings.port}/v1", file=sys.stderr)
    uvicorn.run(
        "gateway.server:app_from_env", factory=True, host=settings.host, port=settings.port,
        workers=settings.workers, loop="uvloop", http="httptools", access_log=False,
        log_level=settings.log_level, timeout_graceful_shutdown=int(settings.shutdown_grace), lifespan="on",
        proxy_headers=False, server_header=False,
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gateway.simulator.server import run_simulator

    config = {k: v for k, v in (("ttft_ms", args.ttft_ms), ("tokens_per_second", args.tps),
                                ("output_tokens", args.output_tokens), ("fault", args.fault),
                                ("slots", args.slots)) if v is not None}
    print(f"gateway simulate: OpenAI-compatible upstream on http://{args.host}:{args.port}/v1", file=sys.stderr)
    run_simulator(args.host, args.port, **config)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(args.port)


def _policy_check(args: argparse.Namespace) -> int:
    from gateway.policy.loader import PolicyError, load_policy

    failed = False
    for path in args.paths:
        try:
            loaded = load_policy(path)
        except PolicyError as exc:
            failed = True
            print(exc)
            continue
        p = loaded.policy
        from gateway.routing.lint import unsatisfiable

        for warning in unsatisfiable(p):
            print(f"{path}: warning: {warning}")
        print(f"{path}: ok — policy {p.name!r} version {loaded.version}: {len(p.deployments)} deployments, "
              f"{len(p.models)} models, {len(p.rules)} rules, {len(p.keys)} keys, {len(p.tests)} golden cases")
    return 1 if failed else 0


def _policy_test(args: argparse.Namespace) -> int:
    from gateway.policy.loader import PolicyError, load_policy
    from gateway.routing.golden import run_golden

    failed = 0
    total = 0
    for path in args.paths:
        try:
            loaded = load_policy(path)
        except PolicyError as exc:
            print(exc)
            failed += 1
            continue
        for result in run_golden(loaded.policy):
            total += 1
            if result.passed:
                print(f"PASS {path} :: {result.case.name}")
            else:
                failed += 1
                print(f"FAIL {path} :: {result.case.name}")
                for problem in result.problems:
                    print(f"     - {problem}")
    print(f"{total - failed if total >= failed else 0} passed, {failed} failed")
    return 1 if failed else 0


def _policy_explain(args: argparse.Namespace) -> int:
    from gateway.core.errors import GatewayError
    from gateway.policy.loader import PolicyError, load_policy
    from gateway.policy.models import GoldenCase
    from gateway.routing.golden import decide_case

    try:
        loaded = load_policy(args.path)
    except PolicyError as exc:
        print(exc)
        return 1
    raw = sys.stdin.read() if args.request == "-" else Path(args.request).read_text()
    headers = dict(h.split(":", 1) for h in args.header)
    case = GoldenCase(name="explain", request=json.loads(raw), team=args.team, key=args.key,
                      headers={k.strip(): v.strip() for k, v in headers.items()})
    try:
        decision = decide_case(loaded.policy, case, version=loaded.version)
    except GatewayError as exc:
        print(json.dumps(exc.to_dict(), indent=2))
        return 1
    print(json.dumps(decision.to_dict(), indent=2))
    return 0


def _policy_schema(args: argparse.Namespace) -> int:
    from gateway.policy.models import Policy

    print(json.dumps(Policy.model_json_schema(by_alias=True), indent=2))
    return 0


def _policy_reference(args: argparse.Namespace) -> int:
    from gateway.policy.reference import render

    sys.stdout.write(render())
    return 0


def _keys_hash(args: argparse.Namespace) -> int:
    secret = args.secret if args.secret is not None else sys.stdin.readline().strip()
    print(hashlib.sha256(secret.encode()).hexdigest())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["main", "default_policy_path"]
