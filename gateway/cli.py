"""The ``gateway`` command: serve, simulate, and policy tooling (check, test, explain, simulate)."""

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
Every `serve` flag can also be set by environment (GATEWAY_POLICY, GATEWAY_HOST, GATEWAY_PORT,
GATEWAY_WORKERS, GATEWAY_REDIS_URL, GATEWAY_ALLOW_UNAUTHENTICATED), and more: `gateway settings`
prints every GATEWAY_* variable.

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
    check = psub.add_parser("check", help="find every mistake in policy files, each as file:line:column",
                            description="Validate policy files: schema, environment, every name a rule mentions, rules "
                                        "that never match or are shadowed, requirements that change nothing. Exit 0: no "
                                        "errors (warnings and notes are printed apart); 1: errors.")
    check.add_argument("paths", nargs="+")
    check.add_argument("--strict", action="store_true", help="warnings fail the check too (exit 1)")
    check.set_defaults(func=_policy_check)
    test = psub.add_parser("test", help="run the golden cases of policy files")
    test.add_argument("paths", nargs="+")
    test.set_defaults(func=_policy_test)
    explain = psub.add_parser("explain", help="show the routing decision for a request body, calling no upstream")
    explain.add_argument("path")
    explain.add_argument("--request", required=True,
                         help="JSON file with a chat completion body, e.g. {\"model\": \"auto\", \"messages\": "
                              "[{\"role\": \"user\", \"content\": \"Hi\"}]} ('-' for stdin)")
    explain.add_argument("--team", help="the caller's team (must exist in the policy)")
    explain.add_argument("--key", help="API key name (as in the policy) the request comes with; implies its team")
    explain.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    explain.set_defaults(func=_policy_explain)
    simulate = psub.add_parser(
        "simulate", help="replay recorded traffic through a candidate policy: routes, denials, cost, SLOs",
        description="Replay recorded traffic through CANDIDATE with the routing engine, calling no upstream, and "
                    "report per team, model and rule: route changes, requests denied or left without a route, "
                    "recorded vs projected cost vs the all-vendor baseline (reference_model), and latency SLOs.")
    simulate.add_argument("candidate", metavar="CANDIDATE.yaml")
    simulate.add_argument("--traffic", required=True, metavar="FILE",
                          help="the gateway's JSON access log, or JSONL of OpenAI request bodies "
                               "(optionally {\"request\": {...}, \"team\": ..., \"key\": ...})")
    simulate.add_argument("--baseline", metavar="CURRENT.yaml",
                          help="compare with this policy's decisions instead of the recorded routes")
    simulate.add_argument("--json", action="store_true", help="the same report as one JSON object")
    simulate.add_argument("--shadow", metavar="SHADOW.json",
                          help="shadow evaluation results (the answer of GET /v1/gateway/shadow, saved): each route "
                          "the candidate changes is shown with the agreement observed between its two deployments")
    simulate.set_defaults(func=_policy_simulate)
    schema = psub.add_parser("schema", help="print the policy JSON schema")
    schema.set_defaults(func=_policy_schema)
    reference = psub.add_parser("reference", help="print the policy reference (Markdown)")
    reference.set_defaults(func=_policy_reference)

    settings = sub.add_parser("settings", help="print the settings reference (every GATEWAY_* variable, Markdown)")
    settings.set_defaults(func=_settings_reference)

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
    from gateway.pipeline.auth import require_keys_off_loopback

    try:
        require_keys_off_loopback(loaded.policy, settings.policy, host=settings.host, loopback=settings.loopback,
                                  allow_unauthenticated=settings.allow_unauthenticated)
    except PolicyError as exc:
        print(f"gateway: refusing to serve: {exc}", file=sys.stderr)
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

    from gateway.server_protocol import SlowClientGuardProtocol, raise_file_limit

    raise_file_limit()

    print(f"gateway: serving policy {loaded.policy.name!r} ({settings.policy}, version {loaded.version}) on "
          f"http://{settings.host}:{settings.port}/v1", file=sys.stderr)
    uvicorn.run(
        "gateway.server:app_from_env", factory=True, host=settings.host, port=settings.port,
        workers=settings.workers, loop="uvloop", http=SlowClientGuardProtocol, access_log=False,
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
    from gateway import policy_commands

    return policy_commands.check(args.paths, strict=args.strict)


def _policy_test(args: argparse.Namespace) -> int:
    from gateway import policy_commands

    return policy_commands.test(args.paths)


def _policy_explain(args: argparse.Namespace) -> int:
    from gateway import policy_commands

    return policy_commands.explain(args.path, args.request, team=args.team, key=args.key, headers=args.header)


def _policy_simulate(args: argparse.Namespace) -> int:
    from gateway import policy_commands

    return policy_commands.simulate(args.candidate, args.traffic, baseline=args.baseline, as_json=args.json,
                                    shadow=args.shadow)


def _policy_schema(args: argparse.Namespace) -> int:
    from gateway.policy.models import Policy

    print(json.dumps(Policy.model_json_schema(by_alias=True), indent=2))
    return 0


def _policy_reference(args: argparse.Namespace) -> int:
    from gateway.policy.reference import render
    from gateway.providers.registry import DEFAULT_API_BASES

    sys.stdout.write(render(DEFAULT_API_BASES))
    return 0


def _settings_reference(args: argparse.Namespace) -> int:
    from gateway.settings import reference

    sys.stdout.write(reference())
    return 0


def _keys_hash(args: argparse.Namespace) -> int:
    secret = args.secret if args.secret is not None else sys.stdin.readline().strip()
    print(hashlib.sha256(secret.encode()).hexdigest())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["main", "default_policy_path"]
