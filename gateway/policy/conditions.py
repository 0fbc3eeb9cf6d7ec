"""Rule conditions (``when``) and requirements (``require``) of a policy.

Kept apart from the other policy models because the routing engine evaluates exactly these two.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

DATA_CLASSES = ("public", "internal", "confidential", "restricted")
"""Ordered from least to most sensitive; ``data_class_at_least`` compares on this order."""

SENSITIVE_KINDS = (
    "email", "phone", "payment_card", "us_ssn", "cn_resident_id", "iban", "api_key", "private_key",
)
FEATURES = ("tools", "vision", "json_schema", "json_mode", "logprobs", "stream")
CAPABILITIES = ("tools", "vision", "json_schema", "json_mode", "logprobs", "reasoning", "embeddings")

DataClass = Literal["public", "internal", "confidential", "restricted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """Numeric bounds; both ends optional. ``gt``/``lt`` are strict, ``gte``/``lte`` inclusive."""

    gt: float | None = Field(default=None, description="Greater than.")
    gte: float | None = Field(default=None, description="Greater than or equal.")
    lt: float | None = Field(default=None, description="Less than.")
    lte: float | None = Field(default=None, description="Less than or equal.")

    def contains(self, value: float) -> bool:
        return not (
            (self.gt is not None and value <= self.gt)
            or (self.gte is not None and value < self.gte)
            or (self.lt is not None and value >= self.lt)
            or (self.lte is not None and value > self.lte)
        )


class Membership(_Strict):
    """``in``: the value must be one of these; ``not_in``: it must be none of these."""

    in_: tuple[str, ...] | None = Field(default=None, alias="in", description="Allowed values.")
    not_in: tuple[str, ...] | None = Field(default=None, description="Forbidden values.")

    def allows(self, value: str | None, *, fold_case: bool = False) -> bool:
        """Whether ``value`` passes. ``fold_case``: compare without regard to case (origins, regions)."""
        if fold_case and value is not None:
            value = value.casefold()
            allowed = None if self.in_ is None else {v.casefold() for v in self.in_}
            barred = {v.casefold() for v in self.not_in or ()}
        else:
            allowed = None if self.in_ is None else set(self.in_)
            barred = set(self.not_in or ())
        if allowed is not None and value not in allowed:
            return False
        return value not in barred


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


StrOrList = Annotated[tuple[str, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
"""A value or a list of values: `team: gov` and `team: [gov, defence]` both work."""


class HourWindow(_Strict):
    """Hours of the day in UTC, ``from`` inclusive, ``to`` exclusive; wraps past midnight if from > to."""

    from_: int = Field(alias="from", ge=0, le=23, description="First hour (UTC), inclusive.")
    to: int = Field(ge=0, le=24, description="Last hour (UTC), exclusive.")

    def contains(self, hour: int) -> bool:
        if self.from_ <= self.to:
            return self.from_ <= hour < self.to
        return hour >= self.from_ or hour < self.to


class Condition(_Strict):
    """When a rule applies. Every field given must match (AND); ``all``/``any``/``not`` combine nested conditions.

    Lists mean "one of". An empty condition always matches.
    """

    team: StrOrList | None = Field(default=None, description="The caller's team is one of these.")
    key: StrOrList | None = Field(default=None, description="The caller's API key name is one of these.")
    model: StrOrList | None = Field(default=None, description="The model name the client asked for is one of these.")
    endpoint: tuple[Literal["chat", "completions", "embeddings", "messages", "responses"], ...] | None = Field(
        default=None, description="The API the client called is one of these (`messages`: Anthropic Messages, "
        "`responses`: OpenAI Responses)."
    )
    data_class: tuple[DataClass, ...] | None = Field(
        default=None, description="The request's data class (after sensitive-data detection) is one of these."
    )
    data_class_at_least: DataClass | None = Field(
        default=None, description="The request's data class is this or more sensitive (public < internal < confidential < restricted)."
    )
    detected: tuple[Literal[SENSITIVE_KINDS], ...] | None = Field(  # type: ignore[valid-type]
        default=None, description="Any of these kinds of sensitive data was detected in the request."
    )
    sensitive: bool | None = Field(default=None, description="Some sensitive data was (true) or was not (false) detected.")
    prompt_tokens: Range | None = Field(default=None, description="The estimated prompt size in tokens lies in this range.")
    features: tuple[Literal[FEATURES], ...] | None = Field(  # type: ignore[valid-type]
        default=None, description="The request needs all of these features (tools, vision, json_schema, json_mode, logprobs, stream)."
    )
    stream: bool | None = Field(default=None, description="The request is (true) or is not (false) streamed.")
    headers: dict[str, StrOrList] | None = Field(
        default=None, description="Each named request header (case-insensitive) has one of the given values."
    )
    metadata: dict[str, StrOrList] | None = Field(
        default=None, description="Each named key of the request's `metadata` object has one of the given values."
    )
    hours_utc: HourWindow | None = Field(default=None, description="The request arrives within these UTC hours.")
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] | None = Field(
        default=None, description="The request arrives on one of these days (UTC)."
    )
    all: tuple[Condition, ...] | None = Field(default=None, description="Every nested condition matches.")
    any: tuple[Condition, ...] | None = Field(default=None, description="At least one nested condition matches.")
    not_: Condition | None = Field(default=None, alias="not", description="The nested condition does not match.")

    @model_validator(mode="after")
    def _lower_header_names(self) -> Condition:
        if self.headers:
            object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})
        return self


class Requirement(_Strict):
    """Hard constraints on deployment attributes. A deployment failing any of them is dropped."""

    hosting: Literal["self", "vendor"] | None = Field(default=None, description="Only deployments hosted this way.")
    origin: Membership | None = Field(default=None, description="Constraint on the model's origin (e.g. `not_in: [CN]`); compared without regard to case.")
    region: Membership | None = Field(default=None, description="Constraint on the serving region; compared without regard to case.")
    deployments: Membership | None = Field(default=None, description="Constraint on deployment names.")
    capabilities: tuple[Literal[CAPABILITIES], ...] | None = Field(  # type: ignore[valid-type]
        default=None, description="The deployment must offer all of these capabilities."
    )
    min_context_window: int | None = Field(default=None, ge=1, description="The deployment's context window is at least this.")

    def merged(self, other: Requirement) -> Requirement:
        """Both sets of constraints at once (used when several rules fire)."""
        if self.hosting and other.hosting and self.hosting != other.hosting:
            # Contradictory rules leave no deployment: expressed as an impossible membership.
            return self.model_copy(update={"deployments": Membership(**{"in": ()})})
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        for name, value in other.__dict__.items():
            if value is None:
                continue
            mine = data.get(name)
            if mine is None:
                data[name] = value
            elif isinstance(value, Membership):
                data[name] = _intersect(mine, value, fold_case=name in ("origin", "region"))
            elif name == "capabilities":
                data[name] = tuple(sorted(set(mine) | set(value)))
            elif name == "min_context_window":
                data[name] = max(mine, value)
        return Requirement.model_validate({k: _dump(v) for k, v in data.items()})


def _intersect(a: Membership, b: Membership, *, fold_case: bool = False) -> Membership:
    def key(value: str) -> str:
        return value.casefold() if fold_case else value

    if a.in_ is None or b.in_ is None:
        ins = a.in_ if b.in_ is None else b.in_
    else:
        theirs = {key(x) for x in b.in_}
        ins = tuple(x for x in a.in_ if key(x) in theirs)
    outs = tuple(sorted(set(a.not_in or ()) | set(b.not_in or ()))) or None
    return Membership.model_validate({"in": ins, "not_in": outs})


def _dump(value: object) -> object:
    return value.model_dump(by_alias=True) if isinstance(value, BaseModel) else value
