"""Whether one rule condition matches every request another one matches (``covers``). Pure.

Used by ``lint`` to find rules an earlier ``deny`` always catches first. The answer is conservative:
``True`` only when it follows from the two conditions alone, field by field, the way
``routing.conditions.matches`` evaluates them; when in doubt, ``False`` (no warning).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.policy.conditions import DATA_CLASSES, Condition, HourWindow, Range
from gateway.routing.conditions import data_class_rank


def covers(a: Condition, b: Condition) -> bool:
    """True when every request that matches ``b`` also matches ``a``."""
    if all(check(a, b) for check in _CHECKS):
        return True
    # A request matching b matches each condition under b's `all` as well.
    return any(covers(a, nested) for nested in b.all or ())


def _one_of(name: str) -> Callable[[Condition, Condition], bool]:
    def check(a: Condition, b: Condition) -> bool:
        mine, theirs = getattr(a, name), getattr(b, name)
        return mine is None or (theirs is not None and set(theirs) <= set(mine))

    return check


def _data_class(a: Condition, b: Condition) -> bool:
    if a.data_class is None:
        return True
    return set(_classes(b)) <= set(a.data_class)


def _data_class_at_least(a: Condition, b: Condition) -> bool:
    if a.data_class_at_least is None:
        return True
    floor = data_class_rank(a.data_class_at_least)
    return all(data_class_rank(c) >= floor for c in _classes(b))


def _classes(cond: Condition) -> tuple[str, ...]:
    """The data classes a request matching ``cond`` can have."""
    classes: tuple[str, ...] = tuple(cond.data_class or DATA_CLASSES)
    if cond.data_class_at_least is not None:
        floor = data_class_rank(cond.data_class_at_least)
        classes = tuple(c for c in classes if data_class_rank(c) >= floor)
    return classes


def _sensitive(a: Condition, b: Condition) -> bool:
    if a.sensitive is None:
        return True
    return b.sensitive == a.sensitive or (a.sensitive and b.detected is not None)


def _features(a: Condition, b: Condition) -> bool:
    # `features` needs all of its entries, so b must need at least as many.
    return a.features is None or (b.features is not None and set(a.features) <= set(b.features))


def _stream(a: Condition, b: Condition) -> bool:
    if a.stream is None:
        return True
    return b.stream == a.stream or (a.stream and "stream" in (b.features or ()))


def _prompt_tokens(a: Condition, b: Condition) -> bool:
    if a.prompt_tokens is None:
        return True
    if b.prompt_tokens is None:
        return False
    low_a, high_a = _bounds(a.prompt_tokens)
    low_b, high_b = _bounds(b.prompt_tokens)
    return low_a <= low_b and high_b <= high_a


def _bounds(r: Range) -> tuple[float, float]:
    """Inclusive bounds over whole token counts."""
    low = max([0.0] + [r.gt + 1 if r.gt is not None else 0.0] + [r.gte if r.gte is not None else 0.0])
    high = min([float("inf")] + [r.lt - 1 if r.lt is not None else float("inf")]
               + [r.lte if r.lte is not None else float("inf")])
    return low, high


def _mapping(name: str) -> Callable[[Condition, Condition], bool]:
    def check(a: Condition, b: Condition) -> bool:
        mine: Mapping[str, tuple[str, ...]] | None = getattr(a, name)
        theirs: Mapping[str, tuple[str, ...]] = getattr(b, name) or {}
        return mine is None or all(k in theirs and set(theirs[k]) <= set(v) for k, v in mine.items())

    return check


def _hours(a: Condition, b: Condition) -> bool:
    return a.hours_utc is None or (b.hours_utc is not None and _hour_set(b.hours_utc) <= _hour_set(a.hours_utc))


def _hour_set(window: HourWindow) -> set[int]:
    return {h for h in range(24) if window.contains(h)}


def _nested(a: Condition, b: Condition) -> bool:
    if a.all is not None and not all(covers(nested, b) for nested in a.all):
        return False
    if a.any is not None and not any(covers(nested, b) for nested in a.any):
        return False
    return a.not_ is None or a.not_ == b.not_


_CHECKS: tuple[Callable[[Condition, Condition], bool], ...] = (
    _one_of("team"), _one_of("key"), _one_of("model"), _one_of("endpoint"), _one_of("detected"),
    _one_of("weekdays"), _data_class, _data_class_at_least, _sensitive, _features, _stream, _prompt_tokens,
    _mapping("headers"), _mapping("metadata"), _hours, _nested,
)
