"""The package's structure, as the layout promises it: no import
cycles, the library never imports the command line, no long functions but compiled kernels."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_import_cycles_and_the_library_never_imports_the_cli():
    res = subprocess.run([sys.executable, "scripts/import_cycles.py", "--lazy"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout


def test_every_policy_registers_where_it_lives_through_an_entry_point():
    from importlib.metadata import entry_points

    from comllm.policies.base import _REGISTRY, available_policies

    eps = {ep.name: ep.value for ep in entry_points(group="comllm.policies")}
    assert set(available_policies()) == set(eps)
    for name, module in eps.items():
        assert _REGISTRY[name].__module__ == module  # the factory lives in the module its entry point names
