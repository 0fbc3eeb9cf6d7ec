"""`gateway policy explain|test`: a user's mistake is a message and exit 1, never a traceback or a guess."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests import servers

DEFAULT = str(servers.ROOT / "policies" / "default.yaml")
CURRENT = str(servers.ROOT / "bench" / "traffic" / "current.yaml")
BODY = {"model": "auto", "messages": [{"role": "user", "content": "Summarise our Q3 roadmap."}]}


def explain(capsys: pytest.CaptureFixture[str], policy: str, body: object, *args: str,
            tmp_path: Path) -> tuple[int, str, str]:
    path = tmp_path / "body.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    code = main(["policy", "explain", policy, "--request", str(path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_shows_the_decision_and_the_facts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = explain(capsys, DEFAULT, BODY, tmp_path=tmp_path)
    assert code == 0
    shown = json.loads(out)
    assert shown["decision"]["targets"][0]["deployment"] == "qwen-self"
    assert shown["facts"]["team"] == "default" and shown["facts"]["model"] == "auto"


@pytest.mark.parametrize("body, args, message", [
    (BODY, ["--team", "nope"], "the policy has no team 'nope' (known: default)"),
    (BODY, ["--key", "nobody"], "the policy has no key named 'nobody' (known: eng-ci, payments-api, support-bot, "
                                "support-console)"),
    (BODY, ["--key", "support-bot", "--team", "payments"], "key 'support-bot' belongs to team 'support', not 'payments'"),
    (BODY, ["--team", "suport"], "the policy has no team 'suport' (did you mean 'support'?)"),
    (BODY, ["--header", "x-data-class restricted"], "expected NAME:VALUE"),
    ('{"model": "auto", "messages": [', [], "is not a valid chat completion body: We could not parse the JSON body"),
    ({"model": "auto"}, [], "(param messages): Missing required parameter: 'messages'."),
    ([1, 2], [], "The request body must be a JSON object, not an array."),
])
def test_explain_refuses_what_it_cannot_use(capsys: pytest.CaptureFixture[str], tmp_path: Path, body: object,
                                            args: list[str], message: str) -> None:
    policy = CURRENT if "--key" in args or "suport" in args else DEFAULT
    code, out, err = explain(capsys, policy, body, *args, tmp_path=tmp_path)
    assert code == 1 and out == ""
    assert message in err


def test_a_key_implies_its_team(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = {"model": "support-assistant", "messages": [{"role": "user", "content": "Where is my order?"}]}
    code, out, _ = explain(capsys, CURRENT, body, "--key", "support-bot", tmp_path=tmp_path)
    assert code == 0 and json.loads(out)["facts"]["team"] == "support"


def test_a_missing_request_file_is_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "explain", DEFAULT, "--request", "/nonexistent/body.json"]) == 1
    assert "cannot read the request body from /nonexistent/body.json: No such file or directory" in capsys.readouterr().err


def test_the_readme_explain_example_runs() -> None:
    """The README says what body.json holds; the command it shows works on it, from stdin too."""
    readme = (servers.ROOT / "README.md").read_text()
    match = re.search(r"cat > body.json <<'EOF'\n(.*?)\nEOF\n", readme, re.S)
    assert match, "the README shows how to write body.json"
    assert "gateway policy explain policies/default.yaml --request body.json" in readme
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "explain", "policies/default.yaml", "--request", "-"],
                         input=match.group(1), capture_output=True, text=True, cwd=servers.ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    decision = json.loads(run.stdout)["decision"]
    # What the README says the example shows: the e-mail address keeps gpt-4o's request in-house.
    assert [t["deployment"] for t in decision["targets"]] == ["qwen-self"]
    assert decision["rule"] == "sensitive-stays-self-hosted"
    assert "# → qwen-self, rule sensitive-stays-self-hosted" in readme


def test_policy_test_reports_failures_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text(Path(DEFAULT).read_text().replace("expect_deployment: qwen-self", "expect_deployment: vendor-gpt-4o", 1))
    out = io.StringIO()
    from gateway import policy_commands

    assert policy_commands.test([str(bad)], out=out) == 1
    assert "FAIL" in out.getvalue() and "deployment: expected vendor-gpt-4o, got qwen-self" in out.getvalue()
    assert "4 passed, 1 failed" in out.getvalue()
