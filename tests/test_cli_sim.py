import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from comllm.cli import app

runner = CliRunner()


def test_simulate_writes_json(tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["simulate", "--scenario", "small", "--slots", "100", "--seeds", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    for key in ("avg_latency", "drop_rate", "jain_index", "n_tasks", "latency_p95", "offload_share",
                "per_server_share", "policy", "scenario", "seeds"):  # fmt: skip
        assert key in data
    assert data["policy"] == "greedy" and data["seeds"] == [0, 1]


def test_scenarios_lists_presets():
    res = runner.invoke(app, ["scenarios"])
    assert res.exit_code == 0 and "paper-11" in res.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "arrival_prob=2"], "arrival_prob"),
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--set", "servers=[]"], "servers"),
        (["--set", "servers=[{type: standard, ghz: -1}]"], "servers.0.ghz"),
        (["--set", "wat=1"], "unknown scenario key 'wat'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    proc = subprocess.run(
        [sys.executable, "-c", "from comllm.cli import main; main()", "simulate", "--slots", "5", *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
