import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from comllm.cli import app
from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.evaluate.metrics import ROW_KEYS
from comllm.policies import make_policy
from comllm.report.tables import json_rows
from comllm.scenario import load_scenario

runner = CliRunner()


def _md_rows(text):
    """A Markdown table as {title: cell} dicts."""
    head, _, *body = [[c.strip() for c in line.strip("|").split("|")] for line in text.strip().splitlines()]
    return [dict(zip(head, cells)) for cells in body]


def test_simulate_prints_and_writes_the_evaluated_values(tmp_path):
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = ["simulate", "--scenario", "small", "--policy", "greedy", "--policy", "local", "--slots", "100",
            "--seeds", "2", "--warmup", "20", "--json", str(out), "--markdown", str(md)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert [r["policy"] for r in rows] == ["greedy", "local"]
    sc = load_scenario("small")
    for row, name in zip(rows, ("greedy", "local")):
        want, _ = evaluate_closed_loop(sc, make_policy(name), slots=100, seeds=2, warmup=20)
        assert list(row) == list(json_rows([row])[0]) and set(row) == set(ROW_KEYS)
        assert {k: row[k] for k in want if k not in ("slots", "warmup", "wall_s")} == {
            k: v for k, v in want.items() if k not in ("slots", "warmup", "wall_s")
        }
        assert row["seeds"] == [0, 1] and row["slots"] == 100 and row["warmup"] == 20 and row["overrides"] == []
    g, loc = rows
    table = {r["policy"]: r for r in _md_rows(md.read_text())}
    assert list(table["greedy"]) == ["policy", "scenario", "latency (slots)", "drops", "Jain (offloads)",
                                     "Jain (util.)", "p95 latency", "offloaded"]  # fmt: skip
    cells = table["greedy"]
    assert cells["scenario"] == "small"
    assert cells["latency (slots)"] == f"{g['avg_latency']:.3f} ± {g['avg_latency_ci']:.3f}"
    assert cells["Jain (util.)"] == f"{g['jain_utilization']:.3f} ± {g['jain_utilization_ci']:.3f}"
    assert cells["offloaded"] == f"{100 * g['offload_share']:.2f} % ± {100 * g['offload_share_ci']:.2f}"
    assert 0 < g["offload_share"] <= 1 and g["avg_latency"] < loc["avg_latency"]
    # local never offloads: no fairness to measure, 0 % offloaded (no CI: the same every seed)
    assert loc["offload_share"] == 0 and loc["jain_index"] is None and loc["jain_utilization"] is None
    cells = table["local"]
    assert (cells["Jain (offloads)"], cells["Jain (util.)"], cells["offloaded"]) == ("–", "–", "0.00 %")
    assert cells["drops"] == f"{100 * loc['drop_rate']:.2f} % ± {100 * loc['drop_rate_ci']:.2f}"
    # the terminal shows the same cells in the same order
    printed = next(line for line in res.output.splitlines() if line.startswith("│ greedy"))
    assert [c.strip() for c in printed.strip("│").split("│")] == list(table["greedy"].values())


def test_simulate_and_sweep_give_the_same_row(tmp_path):
    common = ["--scenario", "small", "--policy", "greedy", "--policy", "random", "--slots", "60", "--seeds", "2",
              "--warmup", "10", "--set", "arrival_prob=0.4"]  # fmt: skip
    sim, sweep = tmp_path / "sim.json", tmp_path / "sweep.json"
    res = runner.invoke(app, ["simulate", *common, "--json", str(sim)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["sweep", *common, "--workers", "1", "--json", str(sweep)])
    assert res.exit_code == 0, res.output
    a, b = json.loads(sim.read_text()), json.loads(sweep.read_text())
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert list(x) == list(y)
        assert x.pop("wall_s") > 0 and y.pop("wall_s") > 0
        assert x == y
    assert a[0]["overrides"] == ["arrival_prob=0.4"] and a[1]["policy"] == "random"


def test_first_seed_runs_the_named_seeds(tmp_path):
    out = tmp_path / "r.json"
    args = ["simulate", "--scenario", "small", "--policy", "greedy", "--slots", "50", "--seeds", "2",
            "--first-seed", "100", "--warmup", "10", "--json", str(out)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    row = json.loads(out.read_text())
    assert row["seeds"] == [100, 101] and "seeds 100–101" in res.output
    want, _ = evaluate_closed_loop(load_scenario("small"), make_policy("greedy"), slots=50, seeds=[100, 101], warmup=10)
    assert row["avg_latency"] == want["avg_latency"]
    zero, _ = evaluate_closed_loop(load_scenario("small"), make_policy("greedy"), slots=50, seeds=2, warmup=10)
    assert row["avg_latency"] != zero["avg_latency"]  # not seeds 0-1 relabelled


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
        (["--first-seed", "-1"], "first_seed"),
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
