"""Errors that reach the user as one line (the CLI prints them and exits with code 2)."""

from __future__ import annotations

from typing import Any

#: longest value an error message quotes (longer ones are cut in the middle)
MAX_ECHO = 80


class ComllmError(Exception):
    """A user-facing error whose message names the offending field and value."""


class FieldError(ValueError):
    """Raised inside a pydantic validator that checks several fields: names the one it blames.

    :func:`format_validation_error` reports ``field`` and ``value`` instead of the
    whole object the validator saw.
    """

    def __init__(self, field: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message


def short(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr(value)`` (``str`` for a str, quoted) cut to about ``limit`` characters, one line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    keep = max(limit - 20, 10)
    return f"{text[: keep // 2 + keep % 2]}...{text[-(keep // 2):]} ({len(text)} characters)"


def shorten(message: str, limit: int = 300) -> str:
    """A one-line message of at most about ``limit`` characters: a long middle (an echoed value) is cut."""
    text = " ".join(message.split()) if "\n" in message else message
    if len(text) <= limit:
        return text
    marker = f" ...({len(text)} characters)... "
    room = max(limit - len(marker), 20)
    head = (2 * room) // 3
    return f"{text[:head]}{marker}{text[-(room - head):]}"


# union members, constraints and wrappers pydantic puts into an error's location
_LOC_NOISE = ("literal[", "function-", "constrained-", "lax-", "strict-", "json-or-python", "tagged-union")
_TYPE_WORDS = {"int", "float", "str", "bool", "none", "list", "dict", "tuple", "set", "bytes", "is-instance"}


def _loc(loc: tuple[Any, ...]) -> str:
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts.append(str(p))
            continue
        s = str(p)
        if s.lower() in _TYPE_WORDS or s.lower().startswith(_LOC_NOISE) or "[" in s:
            continue
        parts.append(s)
    return ".".join(parts)


def format_validation_error(
    err: Any, what: str = "scenario", noun: str = "field", known: Any = None, unknown_noun: str = "key"
) -> str:
    """One line for a pydantic ``ValidationError``: the first error, its field and its value.

    ``invalid scenario field 'slot_s' = inf: Input should be a finite number``;
    an unknown key gives ``unknown scenario key 'colour'`` (plus ``(known: ...)``
    if ``known`` lists the keys). A check of several fields that raised
    :class:`FieldError` is reported on the field it names; any other such check
    gives its message without the whole object it saw.
    """
    first = err.errors(include_url=False)[0]
    loc = _loc(tuple(first.get("loc", ())))
    msg = str(first.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        name = ".".join(p for p in (loc, cause.field) if p)
        return f"invalid {what} {noun} '{name}' = {short(cause.value)}: {cause.message}"
    if first.get("type") == "extra_forbidden":
        tail = f" (known: {', '.join(known)})" if known else ""
        return f"unknown {what} {unknown_noun} '{loc}'{tail}"
    if not loc or isinstance(first.get("input"), dict):
        # a check of the whole object (or of a section): its message names the fields
        where = f" {noun} '{loc}'" if loc else ""
        return f"invalid {what}{where}: {msg}"
    return f"invalid {what} {noun} '{loc}' = {short(first.get('input'))}: {msg}"
