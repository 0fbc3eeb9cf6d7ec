"""`bench/run.py --publish` rewrites bench/RESULTS.md from a run, and keeps the hand-written sections below the marker."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from harness import document  # noqa: E402


def test_the_hand_written_tail_is_carried_over() -> None:
    previous = "# Benchmark results\n\ngenerated table\n\n" + document.KEEP_MARKER + "\n\n## Upstream HTTP client\n\nfigures\n"
    kept = document.kept_sections(previous)
    assert kept.startswith("\n" + document.KEEP_MARKER) and kept.endswith("figures\n")
    assert "generated table" not in kept
    assert document.kept_sections("# Benchmark results\n\nno marker\n") == ""


def test_the_published_results_carry_the_marker_and_the_client_comparison() -> None:
    text = (BENCH / "RESULTS.md").read_text()
    tail = document.kept_sections(text)
    assert "## Upstream HTTP client" in tail and "compare_revisions.py" in tail
