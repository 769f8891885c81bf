"""The error of :mod:`comllm.text`: a prompt, field, answer or template that cannot be used."""

from __future__ import annotations

from comllm.errors import ComllmError


class TextError(ComllmError, ValueError):
    """A prompt or field that cannot be read; ``field`` names the offending field ('' if none)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"field '{field}': {message}" if field else message)
        self.field = field
        self.detail = message
