"""Shared helpers of the tests/test_safe_*.py modules (no test lives here).

:func:`cli` runs the ``comllm`` entry point in this process, the way the console
command does (``comllm.cli.main``: a user error is one line on stderr, exit 2);
:func:`refused` asserts exactly that and returns the line.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from comllm.cli import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``comllm ARGS`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    old = sys.argv
    sys.argv = ["comllm", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys: pytest.CaptureFixture[str], *args: str, needles: tuple[str, ...] = ()) -> str:
    """Run ``comllm ARGS``; assert exit 2, one stderr line with every needle, no traceback; return the line."""
    code, out, err = cli(capsys, *args)
    # progress bars of libraries (transformers' "Loading weights") may share stderr: they are not messages
    lines = [ln for ln in err.strip().splitlines() if "it/s]" not in ln and ln.strip()]
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def digest(path: Path) -> str:
    """The SHA-256 of a file (to show that an input is left unchanged)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
