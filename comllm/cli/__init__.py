"""The ``comllm`` command line. Each command group lives in its own module of this package."""

from __future__ import annotations

import sys

from comllm.cli.app import app
from comllm.errors import ComllmError

# command modules register themselves on `app` when imported
from comllm.cli import sim as _sim  # noqa: F401,E402
from comllm.cli import data as _data  # noqa: F401,E402
from comllm.cli import drl as _drl  # noqa: F401,E402
from comllm.cli import grpo as _grpo  # noqa: F401,E402
from comllm.cli import lm as _lm  # noqa: F401,E402
from comllm.cli import pipeline as _pipeline  # noqa: F401,E402
from comllm.cli import improve as _improve  # noqa: F401,E402


def main() -> None:
    """Entry point: user errors print one line and exit with code 2, no traceback."""
    try:
        app()
    except ComllmError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


__all__ = ["app", "main"]
