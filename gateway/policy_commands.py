"""``gateway policy check|test|explain|simulate``: the platform engineer's tools, no upstream called.

Every mistake a user can make here (a missing file, invalid JSON, an unknown team) ends in a message
and an exit status, never a traceback. Exit status: 0 fine, 1 the policy or input has errors (or, with
``check --strict``, warnings), 2 the command line itself is wrong (argparse).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from gateway.core.errors import GatewayError
from gateway.core.types import Endpoint
from gateway.policy.loader import LoadedPolicy, PolicyError, PolicyIssue, load_policy
from gateway.policy.models import GoldenCase, Policy
from gateway.policy.suggestions import did_you_mean, one_of
from gateway.protocols.openai import parse_json_object, validate


class InputError(Exception):
    """A command-line input the command cannot use; the message says why, in plain words."""


def check(paths: Sequence[str], *, strict: bool = False, out: TextIO | None = None) -> int:
    from gateway.routing.lint import check_file

    errors = warnings = 0
    for path in paths:
        inspection = check_file(path)
        found = {kind: [i for i in inspection.issues if i.severity == kind] for kind in ("error", "warning", "note")}
        for kind in ("error", "warning", "note"):  # errors first: they are what stops the policy loading
            for issue in found[kind]:
                print(issue, file=out or sys.stdout)
        errors += len(found["error"])
        warnings += len(found["warning"])
        print(_summary(path, inspection.loaded, found), file=out or sys.stdout)
    return 1 if errors or (strict and warnings) else 0


def _summary(path: str, loaded: LoadedPolicy | None, found: dict[str, list[PolicyIssue]]) -> str:
    counts = ", ".join(f"{len(v)} {k}{'s' if len(v) != 1 else ''}" for k, v in found.items() if v)
    if loaded is None:
        return f"{path}: cannot be used — {counts}"
    p = loaded.policy
    verdict = "ok" if not found["warning"] else "ok with warnings"
    return (f"{path}: {verdict} — policy {p.name!r} version {loaded.version}: {len(p.deployments)} deployments, "
            f"{len(p.models)} models, {len(p.rules)} rules, {len(p.keys)} keys, {len(p.tests)} golden cases"
            + (f" ({counts})" if counts else ""))


def test(paths: Sequence[str], out: TextIO | None = None) -> int:
    from gateway.routing.golden import run_golden

    passed = failed = 0
    for path in paths:
        try:
            loaded = load_policy(path)
        except PolicyError as exc:
            print(exc, file=out or sys.stdout)
            failed += 1
            continue
        for result in run_golden(loaded.policy):
            if result.passed:
                passed += 1
                print(f"PASS {path} :: {result.case.name}", file=out or sys.stdout)
                continue
            failed += 1
            print(f"FAIL {path} :: {result.case.name}", file=out or sys.stdout)
            for problem in result.problems:
                print(f"     - {problem}", file=out or sys.stdout)
    print(f"{passed} passed, {failed} failed", file=out or sys.stdout)
    return 1 if failed else 0


def explain(path: str, request: str, *, team: str | None, key: str | None, headers: Sequence[str],
            out: TextIO | None = None) -> int:
    """The decision for one chat body, validated exactly as ``POST /v1/gateway/explain`` validates it."""
    from gateway.routing.golden import explain_case

    try:
        loaded = load_policy(path)
    except PolicyError as exc:
        print(exc, file=out or sys.stdout)
        return 1
    try:
        body = read_chat_body(request)
        case = GoldenCase(name="explain", request=body, team=caller_team(loaded.policy, team, key), key=key,
                          headers=parse_headers(headers))
    except InputError as exc:
        print(f"gateway policy explain: {exc}", file=sys.stderr)
        return 1
    try:
        explained = explain_case(loaded.policy, case, version=loaded.version)
    except GatewayError as exc:
        print(json.dumps(exc.to_dict(), indent=2), file=out or sys.stdout)
        return 1
    print(json.dumps(explained, indent=2), file=out or sys.stdout)
    return 0


def read_chat_body(source: str) -> dict[str, object]:
    """A chat completion body from a file (``-``: stdin), checked like the HTTP endpoint checks it."""
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the request body from {source}: {exc.strerror or exc}") from None
    try:
        body = parse_json_object(raw)
        validate(Endpoint.CHAT, body)
    except GatewayError as exc:
        where = f" (param {exc.param})" if exc.param else ""
        name = "the body on stdin" if source == "-" else source
        raise InputError(f"{name} is not a valid chat completion body{where}: {exc.message}") from None
    return body


def caller_team(policy: Policy, team: str | None, key: str | None) -> str | None:
    """The caller's team, from ``--team`` or the key's; unknown names are refused, never defaulted."""
    key_team = None
    if key is not None:
        names = {k.name: k.team for k in policy.keys}
        if key not in names:
            raise InputError(f"the policy has no key named {key!r}{did_you_mean(key, names)} ({one_of(names)})")
        key_team = names[key]
    if team is not None:
        teams = {*policy.teams, "default"}
        if team not in teams:
            raise InputError(f"the policy has no team {team!r}{did_you_mean(team, teams)} ({one_of(teams)})")
        if key_team is not None and key_team != team:
            raise InputError(f"key {key!r} belongs to team {key_team!r}, not {team!r}")
    return team or key_team


def parse_headers(pairs: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise InputError(f"--header {pair!r}: expected NAME:VALUE, e.g. x-data-class:restricted")
        headers[name.strip().lower()] = value.strip()
    return headers


def read_shadow_evidence(path: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The pairs of a saved ``GET /v1/gateway/shadow`` answer, by (model, primary, shadow)."""
    try:
        doc = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read the shadow results {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise InputError(f"{path} is not JSON: save the answer of GET /v1/gateway/shadow there") from None
    pairs = doc.get("pairs") if isinstance(doc, dict) else None
    if not isinstance(pairs, list):
        raise InputError(f"{path} has no `pairs`: save the answer of GET /v1/gateway/shadow there")
    evidence: dict[tuple[str, str, str], dict[str, Any]] = {}
    for pair in pairs:
        if isinstance(pair, dict) and all(isinstance(pair.get(k), str) for k in ("model", "primary", "shadow")):
            evidence[(pair["model"], pair["primary"], pair["shadow"])] = pair
    return evidence


def simulate(candidate: str, traffic: str, *, baseline: str | None = None, as_json: bool = False,
             shadow: str | None = None, out: TextIO | None = None) -> int:
    """Replay ``traffic`` through ``candidate`` (and ``baseline``, if given) and report the difference; with
    ``shadow`` (a saved ``GET /v1/gateway/shadow`` answer), the observed agreement of each changed route."""
    from gateway.routing.replay import replay
    from gateway.routing.replay_report import render
    from gateway.routing.traffic import read_traffic

    try:
        loaded = load_policy(candidate)
        current = load_policy(baseline) if baseline is not None else None
    except PolicyError as exc:
        print(exc, file=out or sys.stdout)
        return 1
    try:
        with open(traffic, "rb") as lines:
            recorded = read_traffic(lines, validate)
    except OSError as exc:
        print(f"gateway policy simulate: cannot read {traffic}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        evidence = read_shadow_evidence(shadow) if shadow is not None else None
    except InputError as exc:
        print(f"gateway policy simulate: {exc}", file=sys.stderr)
        return 1
    if not recorded.records:
        reasons = "; ".join(f"line {n}: {why}" for n, why in recorded.skipped[:5])
        print(f"gateway policy simulate: {traffic} holds no request to replay"
              + (f" ({reasons})" if reasons else " (it is empty)"), file=sys.stderr)
        return 1
    report = replay(recorded, loaded.policy, candidate_name=_described(loaded),
                    baseline=current.policy if current else None, baseline_name=_described(current) if current else "")
    if as_json:
        doc = report.to_dict()
        if evidence is not None:
            for change in doc["changes"]:
                change["shadow"] = evidence.get((change["model"], change["from"], change["to"]))
        print(json.dumps(doc, indent=2), file=out or sys.stdout)
    else:
        (out or sys.stdout).write(render(report, source=traffic, evidence=evidence, evidence_source=shadow or ""))
    return 0


def _described(loaded: LoadedPolicy) -> str:
    return f"{loaded.path} (policy {loaded.policy.name!r}, version {loaded.version})"
