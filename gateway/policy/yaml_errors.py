"""PyYAML's syntax errors in plain words.

``expected <block end>, but found '?'`` is what PyYAML says about a line indented differently from
its siblings; an author needs to hear that. The common problems are recognised by PyYAML's own
``problem`` and ``context`` phrases (stable across its releases for a decade); anything else is
passed on with its position.
"""

from __future__ import annotations

import yaml


def yaml_problem(exc: yaml.MarkedYAMLError) -> tuple[int, int, str]:
    """(line, column, message) for a YAML syntax error, both 1-based."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    problem, context = exc.problem or "", exc.context or ""
    opened = exc.context_mark.line + 1 if exc.context_mark else None
    return line, col, "YAML syntax: " + _explain(problem, context, opened, str(exc))


def _explain(problem: str, context: str, opened: int | None, raw: str) -> str:
    since = f" (the block starting on line {opened})" if opened else ""
    if problem.startswith("expected <block end>"):
        if "block collection" in context:
            return ("a `key:` at the indentation of the `- item` list above it; indent it under an item, "
                    f"or give it its own parent key{since}")
        return f"this line is not indented like the keys above it; keys of one mapping start in the same column{since}"
    if problem == "mapping values are not allowed here":
        return ("unexpected `:` — this line is indented deeper than the line above, which already has a value "
                "(or a value contains ': ', which needs quotes)")
    if "found character '\\t'" in problem:
        return "a tab character: YAML indentation must use spaces"
    if problem.startswith("expected ',' or ']'"):
        return f"the list opened with `[` on line {opened} is not closed (a missing `]` or `,`)"
    if problem.startswith("expected ',' or '}'"):
        return f"the mapping opened with `{{` on line {opened} is not closed (a missing `}}` or `,`)"
    if "quoted scalar" in context and "end of stream" in problem:
        return f"the quoted text that starts on line {opened} is never closed"
    if problem.startswith("could not find expected ':'"):
        return "a line inside a mapping without `key: value` (a missing colon, or a list item without `- `)"
    if problem.startswith("found undefined alias"):
        return f"{problem} (an `*alias` needs an `&anchor` defined before it)"
    return problem or raw
