"""Did the model refuse? The API's own word first, else the opening words of the answer.

An explicit refusal (OpenAI's ``refusal`` field, a ``content_filter`` or ``refusal`` finish, Anthropic's
``refusal`` stop reason) always counts. Otherwise the first sentence is matched against the phrases
assistant models open a refusal with, in English and Chinese. This misses refusals worded otherwise
(other languages, a lecture instead of an apology) and can flag an answer that apologises for a
limitation and then helps ("Sorry, I can't browse, but here is..."): read the flag as a rate to
compare between the two sides, not as a verdict on one answer.
"""

from __future__ import annotations

import regex

from gateway.shadow.answers import Answer

_OPENING = 240  # characters: a refusal says so at once
_CANNOT = r"(?:can(?:no|')?t|can ?not|won'?t|will not|am (?:not able|unable)|'m (?:not able|unable)|unable)"
_PHRASES = regex.compile(
    r"^\W*(?:"
    rf"(?:i'?m|i am) (?:sorry|afraid)\b.{{0,80}}?\b{_CANNOT}"
    rf"|(?:sorry|unfortunately|apologies)\b.{{0,40}}?\bi {_CANNOT}"
    rf"|i {_CANNOT} (?:help|assist|provide|comply|do that|fulfil|fulfill|support|answer|share|create|generate|write)"
    r"|i must (?:decline|refuse)"
    rf"|as an ai\b.{{0,60}}?\b{_CANNOT}"
    r"|(?:抱歉|对不起|很抱歉)[，,。 ]*(?:我)?(?:无法|不能|不可以)"
    r"|我(?:无法|不能)(?:提供|帮助|协助|回答|完成)"
    r")",
    regex.IGNORECASE | regex.DOTALL,
)


def refused(answer: Answer) -> bool:
    if answer.refused:
        return True
    opening = answer.text[:_OPENING]
    try:
        return bool(opening) and _PHRASES.search(opening, timeout=0.05) is not None
    except TimeoutError:
        return False
