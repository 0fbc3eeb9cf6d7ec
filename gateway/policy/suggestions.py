"""Suggest the name an author probably meant ("did you mean …?"): keys, teams, deployments, values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to ``name``, if one is near enough to be a likely typo.

    Case differences and one-letter slips (``paymnets``, ``gtp-4o``, ``CNN``) are caught; names that
    merely share a few letters are not suggested.
    """
    choices = sorted({str(k) for k in known if str(k) != name})
    if not choices:
        return None
    by_fold = {c.casefold(): c for c in choices}
    if name.casefold() in by_fold:
        return by_fold[name.casefold()]
    match = difflib.get_close_matches(name.casefold(), list(by_fold), n=1, cutoff=0.75 if len(name) > 3 else 0.6)
    return by_fold[match[0]] if match else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    near = closest(name, known)
    return f" (did you mean {near!r}?)" if near is not None else ""


def one_of(known: Iterable[str]) -> str:
    names = sorted({str(k) for k in known})
    if not names:
        return "none are defined"
    if len(names) > 12:
        return "known: " + ", ".join(names[:12]) + f", … ({len(names)} in all)"
    return "known: " + ", ".join(names)
