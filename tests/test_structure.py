"""The package's structure, as the layout promises it: no import
cycles, the library never imports the command line, no long functions but compiled kernels."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_import_cycles_and_the_library_never_imports_the_cli():
    res = subprocess.run([sys.executable, "scripts/import_cycles.py", "--lazy"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout
