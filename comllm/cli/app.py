"""The Typer application shared by all command modules, and small CLI helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from comllm.outputs import write_text_output

app = typer.Typer(
    name="comllm",
    help="LLM-based task offloading in Mobile Edge Computing: simulate, generate data, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# piped output (logs, CI) gets a fixed wide layout instead of rich's 80-column default
console = Console() if sys.stdout.isatty() else Console(width=160)


def write_json(path: Path | None, data: Any, option: str = "--json") -> None:
    """Write ``data`` as indented JSON (NaN-free) if a path was given (whole, or not at all)."""
    if path is None:
        return
    write_text_output(option, path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    console.print(f"wrote {path}")


def write_text(path: Path | None, text: str, option: str) -> None:
    """Write an output text file if a path was given (whole, or not at all)."""
    if path is None:
        return
    write_text_output(option, path, text)
    console.print(f"wrote {path}")


def scenario_files(scenarios: str | list[str]) -> list[str]:
    """The scenario arguments that name files (inputs an output must not overwrite)."""
    from comllm.scenario import PRESETS

    items = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    return [s for s in items if s not in PRESETS and Path(s).exists()]
