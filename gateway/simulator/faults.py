"""The fault grammar: what can go wrong with one simulated request, and how to ask for it.

A fault spec is a ``;``-separated list of clauses (whitespace ignored), e.g. ``status=429;retry_after=2``
or ``fail_first=2;status=500``. It comes from the ``x-sim-fault`` header, a per-model override, the
server-wide default, or keywords in the model name (see ``fault_from_model_name``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

DEFAULT_FAIL_STATUS = 503
DEFAULT_SLOW_TPS = 5.0


class FaultSpecError(ValueError):
    """A fault spec that does not follow the grammar (answered with a 400, never ignored)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One request's faults. The default instance means "behave normally"."""

    status: int | None = None
    """Answer with this HTTP error status. With ``flaky``/``fail_first`` it is the status used when they fire."""
    retry_after: float | None = None
    message: str | None = None
    hang: bool = False
    hang_after: int | None = None
    truncate_after: int | None = None
    reset: bool = False
    reset_after: int | None = None
    malformed: bool = False
    malformed_after: int | None = None
    slow_tps: float | None = None
    flaky: float | None = None
    fail_first: int | None = None

    @property
    def conditional(self) -> bool:
        """True when the error status only applies sometimes (``flaky`` or ``fail_first``)."""
        return self.flaky is not None or self.fail_first is not None

    @property
    def fail_status(self) -> int:
        return self.status or DEFAULT_FAIL_STATUS

    def describe(self) -> str:
        """The fault back in the grammar (stable order), e.g. for stats and error messages."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value is False:
                continue
            if value is True:
                parts.append(f.name)
            elif f.name == "slow_tps":
                parts.append(f"slow={value:g}")
            else:
                parts.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
        return ";".join(parts) or "none"


NO_FAULT = Fault()

_FLAGS = {"hang": "hang", "reset": "reset", "malformed": "malformed"}
_COUNTS = ("hang_after", "truncate_after", "reset_after", "malformed_after", "fail_first")


def parse_fault(spec: str | None) -> Fault:
    """Parse a fault spec. ``None``, ``""`` and ``"none"`` mean no fault; unknown clauses raise."""
    if not spec or spec.strip().lower() in ("none", "off"):
        return NO_FAULT
    values: dict[str, object] = {}
    for raw in spec.split(";"):
        clause = raw.strip()
        if not clause:
            continue
        key, has_value, value = (part.strip() for part in clause.partition("="))
        key = key.lower()
        if key == "message" and has_value:
            values["message"] = value
        elif key in _FLAGS and not has_value:
            values[_FLAGS[key]] = True
        elif key == "slow":
            values["slow_tps"] = _number(key, value, positive=True) if has_value else DEFAULT_SLOW_TPS
        elif key == "status" and has_value:
            status = int(_number(key, value))
            if not 400 <= status <= 599:
                raise FaultSpecError(f"status must be an HTTP error status (400-599), got {value!r}")
            values["status"] = status
        elif key == "retry_after" and has_value:
            values["retry_after"] = _number(key, value)
        elif key == "flaky":
            probability = _number(key, value) if has_value else 0.5
            if not 0.0 <= probability <= 1.0:
                raise FaultSpecError(f"flaky is a probability between 0 and 1, got {value!r}")
            values["flaky"] = probability
        elif key in _COUNTS and has_value:
            values[key] = int(_number(key, value))
        else:
            raise FaultSpecError(f"unknown fault clause {clause!r}; see gateway.simulator for the grammar")
    return Fault(**values)  # type: ignore[arg-type]


def _number(key: str, value: str, *, positive: bool = False) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FaultSpecError(f"{key} needs a number, got {value!r}") from None
    if number < 0 or (positive and number == 0):
        raise FaultSpecError(f"{key} must be {'positive' if positive else 'non-negative'}, got {value!r}")
    return number


_SEP = r"(?:^|(?<=[-_/:.]))"
_END = r"(?=$|[-_/:.])"
_MODEL_KEYWORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(_SEP + r"fail-first-(\d+)" + _END), "fail_first={0}"),
    (re.compile(_SEP + r"(?:error|fail|status)-([45]\d\d)" + _END), "status={0}"),
    (re.compile(_SEP + r"rate-?limit(?:ed)?" + _END), "status=429;retry_after=1"),
    (re.compile(_SEP + r"flaky" + _END), "flaky=0.5"),
    (re.compile(_SEP + r"hang" + _END), "hang"),
    (re.compile(_SEP + r"slow" + _END), "slow"),
    (re.compile(_SEP + r"reset" + _END), "reset"),
    (re.compile(_SEP + r"malformed" + _END), "malformed"),
    (re.compile(_SEP + r"truncated?" + _END), "truncate_after=3"),
)


def fault_from_model_name(model: str) -> Fault | None:
    """Faults named by keywords in a model id, or ``None`` when it names none.

    Keywords are whole words between ``-``, ``_``, ``/``, ``:`` or ``.``: ``error-503`` /
    ``fail-503`` / ``status-503``, ``ratelimit``, ``flaky``, ``fail-first-2``, ``hang``, ``slow``,
    ``reset``, ``malformed``, ``truncate``. Several may combine: ``sim-slow-fail-first-1``.
    """
    lowered = model.lower()
    clauses = []
    for pattern, template in _MODEL_KEYWORDS:
        match = pattern.search(lowered)
        if match:
            clauses.append(template.format(*match.groups()))
    return parse_fault(";".join(clauses)) if clauses else None
