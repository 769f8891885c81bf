"""The Typer application shared by all command modules, and small CLI helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(
    name="comllm",
    help="LLM-based task offloading in Mobile Edge Computing: simulate, generate data, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# piped output (logs, CI) gets a fixed wide layout instead of rich's 80-column default
console = Console() if sys.stdout.isatty() else Console(width=160)


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` as indented JSON (NaN-free) if a path was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    console.print(f"wrote {path}")
