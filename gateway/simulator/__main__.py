"""``python -m gateway.simulator --port 8001 --ttft-ms 50 --tps 40 --fault 'flaky=0.1'``."""

from __future__ import annotations

import argparse
import json

from gateway.simulator.server import run_simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="time to first token")
    parser.add_argument(
        "--tps", type=float, default=None, help="stream pacing in tokens/s (default: unpaced)"
    )
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument("--models", default=None, help="comma-separated ids for /v1/models")
    parser.add_argument("--fault", default=None, help="default fault spec, e.g. 'status=503' or 'flaky=0.1'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require this key")
    parser.add_argument("--slots", type=int, default=None, help="generations at once; more wait in line")
    parser.add_argument("--model-overrides", default=None, help='JSON, e.g. \'{"slow-m": {"ttft_ms": 500}}\'')
    args = parser.parse_args(argv)
    config = {
        "ttft_ms": args.ttft_ms,
        "tokens_per_second": args.tps,
        "output_tokens": args.output_tokens,
        "embedding_dim": args.embedding_dim,
        "fault": args.fault,
        "seed": args.seed,
        "api_key": args.api_key,
        "slots": args.slots,
    }
    if args.models:
        config["models"] = args.models
    if args.model_overrides:
        config["model_overrides"] = json.loads(args.model_overrides)
    run_simulator(args.host, args.port, **config)


if __name__ == "__main__":
    main()
