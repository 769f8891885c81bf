"""The pipeline: config validation, commands, and the tiny config end to end."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from comllm.experiments.config import ConfigError, load_config
from comllm.experiments.evaluation import lm_policies
from comllm.experiments.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "comllm", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("sft:\n  modle: default\n", "unknown config key 'sft.modle'"),
        ("eval:\n  seeds: many\n", "config key 'eval.seeds' = 'many'"),
        ("data:\n  sft_n: -5\n", "config key 'data.sft_n' = -5"),
        ("stages: [data, fly]\n", "unknown stage 'fly'"),
        ("colour: blue\n", "unknown config key 'colour'"),
        ("[1, 2\n", "not valid YAML"),
        ("launcher:\n  accelerate: maybe\n", "config key 'launcher.accelerate' = 'maybe'"),
    ],
)
def test_broken_config_is_one_line_exit_2(tmp_path, text, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        load_config(cfg)
    assert needle in str(err.value)
    proc = run_cli("pipeline", "--config", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_configs_shipped_are_valid_and_commands_are_what_a_user_types(tmp_path):
    for name in ("paper.yaml", "tiny.yaml"):
        cfg = load_config(ROOT / "configs" / name, {"run_dir": str(tmp_path / name)})
        pipe = Pipeline(cfg)
        data = pipe.stage_commands("data")
        assert data[0][:1] == ["data"] and "--out" in data[0]
        assert {f"test-{n}.jsonl.gz" for n in pipe.test_counts()} <= {Path(c[-1]).name for c in data}
        (comllm_cmd,) = pipe.stage_commands("comllm")
        assert comllm_cmd[0] == "improve" and comllm_cmd[comllm_cmd.index("--model") + 1].endswith("sft")
        (grpo_cmd,) = pipe.stage_commands("grpo")
        # both configs run the all-action stage without the look-ahead as the GRPO row
        assert grpo_cmd[0] == "improve" and grpo_cmd[-4:] == ["--lam", "0", "--horizon", "0"]
        assert grpo_cmd[grpo_cmd.index("--out") + 1].endswith("grpo")
        assert comllm_cmd[comllm_cmd.index("--objective") + 1] == "regress"
        (sft_cmd,) = pipe.stage_commands("sft")
        files = [sft_cmd[i + 1] for i, a in enumerate(sft_cmd) if a == "--data"]
        assert len(files) == len(cfg.data.sft_sets) and sft_cmd[sft_cmd.index("--mode") + 1] == "cost"
        assert [c[c.index("--out") + 1] for c in data[: len(files)]] == files  # one data command per set
        assert len(pipe.stage_commands("dqn")) == len(cfg.dqn.algos) * len(cfg.eval.scenarios)


def test_grpo_stage_methods_and_sft_sets(tmp_path):
    """grpo.method trl: TRL's sampled GRPO without the look-ahead; data.sft_sets: a file per set, under its overrides."""
    sets = ["arrival_prob=0.5;decisions=sequential", "arrival_prob=0.3"]
    cfg = load_config(ROOT / "configs" / "tiny.yaml", {"run_dir": str(tmp_path)},
                      ["grpo.method=trl", "grpo.lacs_weight=0.7", "improve.lam=2"])  # fmt: skip
    cfg.data.sft_sets = sets
    pipe = Pipeline(cfg)
    (grpo_cmd,) = pipe.stage_commands("grpo")
    assert grpo_cmd[0] == "grpo" and grpo_cmd[grpo_cmd.index("--lacs") + 1] == "off" and "--lacs-weight" not in grpo_cmd
    cfg.grpo.method = "all-actions"
    (grpo_cmd,) = pipe.stage_commands("grpo")
    assert grpo_cmd.count("--lam") == 1 and grpo_cmd[grpo_cmd.index("--lam") + 1] == "0"  # improve.lam is not the ablation's
    (comllm_cmd,) = pipe.stage_commands("comllm")
    assert float(comllm_cmd[comllm_cmd.index("--lam") + 1]) == 2
    sft_data = [c for c in pipe.stage_commands("data") if c[c.index("--split") + 1] == "sft"]
    assert [c[c.index("--out") + 1] for c in sft_data] == [str(tmp_path / "data" / f"sft-{i}.jsonl.gz") for i in range(2)]
    assert [[c[i + 1] for i, a in enumerate(c) if a == "--set"] for c in sft_data] == [
        ["arrival_prob=0.5", "decisions=sequential"], ["arrival_prob=0.3"]]  # fmt: skip
    assert len({c[c.index("--seed") + 1] for c in sft_data}) == 2
    cfg.data.sft_sets = []
    (only,) = [c for c in pipe.stage_commands("data") if c[c.index("--split") + 1] == "sft"]
    assert only[only.index("--out") + 1].endswith("sft.jsonl.gz") and "--set" not in only
    with pytest.raises(ConfigError, match="grpo.method"):
        load_config(ROOT / "configs" / "tiny.yaml", set_items=["grpo.method=ppo"])
    with pytest.raises(ConfigError, match="eval.lm_options"):
        load_config(ROOT / "configs" / "tiny.yaml", set_items=["eval.lm_options={dqn: threads=1}"])


def test_accelerate_launcher_wraps_training_commands_only(tmp_path):
    cfg = load_config(ROOT / "configs" / "tiny.yaml", {"run_dir": str(tmp_path), "launcher": {"accelerate": True}})
    pipe = Pipeline(cfg)
    assert pipe._comllm(["sft"], train=True)[1:4] == ["-m", "accelerate.commands.launch", "-m"]
    assert pipe._comllm(["data"], train=False)[1:3] == ["-m", "comllm.cli"]


def test_tiny_pipeline_end_to_end_and_resume(tmp_path):
    """The whole tiny pipeline; its training stages go through `accelerate launch` (one CPU process)."""
    run = tmp_path / "run"
    accel = ["--set", "launcher.accelerate=true", "--set", f"launcher.config_file={ROOT / 'configs/accelerate/cpu.yaml'}"]
    proc = run_cli("pipeline", "--config", str(ROOT / "configs" / "tiny.yaml"), "--run-dir", str(run), *accel)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    e = cfg.eval
    stages = {"data", "sft", "grpo", "comllm", "dqn", "eval", "report"}

    # the manifest records every stage as done, with its wall time
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["stages"]) == stages
    for name, stage in manifest["stages"].items():
        assert stage["status"] == "done", name
        assert math.isfinite(stage["wall_s"]) and stage["wall_s"] >= 0, name
    for key in ("config", "seeds", "versions", "git_revision", "total_wall_s"):
        assert key in manifest
    assert manifest["config"]["name"] == "tiny" and manifest["total_wall_s"] > 0
    assert "accelerate.commands.launch" in (run / "logs" / "sft.log").read_text()

    # closed loop: one row per policy and scenario, finite latencies between 0 and the deadline
    labels = {*e.baselines, "SFT", "GRPO", "COMLLM", "DQN"}
    for file, overrides in (("closed_loop.json", []), ("closed_loop_heavy.json", [f"arrival_prob={e.heavy_prob:g}"])):
        rows = json.loads((run / "eval" / file).read_text())
        keys = [(r["policy"], r["scenario"]) for r in rows]
        assert sorted(keys) == sorted((p, sc) for p in labels for sc in e.scenarios), file
        for r in rows:
            what = (file, r["policy"], r["scenario"])
            assert 0 < r["avg_latency"] <= 10 and math.isfinite(r["avg_latency"]), what  # a drop counts D = 10
            assert 0 <= r["drop_rate"] <= 1 and 0 <= r["offload_share"] <= 1, what
            assert r["n_tasks"] > 0 and r["seeds"] == list(range(e.seeds)), what
            assert r["slots"] == e.slots and r["warmup"] == e.warmup and r["overrides"] == overrides, what
        by = {(r["policy"], r["scenario"]): r for r in rows}
        for sc in e.scenarios:
            assert by[("local", sc)]["offload_share"] == 0 and by[("local", sc)]["jain_index"] is None
            assert by[("greedy", sc)]["avg_latency"] < by[("local", sc)]["avg_latency"], (file, sc)
        # same devices and arrivals in both scenarios: running everything locally cannot tell them apart
        assert by[("local", e.scenarios[0])]["avg_latency"] == by[("local", e.scenarios[1])]["avg_latency"]
    closed = {(r["policy"], r["scenario"]): r for r in json.loads((run / "eval" / "closed_loop.json").read_text())}

    # the report's tables hold the same rows: Markdown (a line per row) and CSV (every field)
    lines = [ln for ln in (run / "report" / "closed_loop.md").read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    md = {}
    for ln in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in ln.strip("|").split("|"))))
        md[(cells["policy"], cells["scenario"])] = cells
    assert set(md) == set(closed)
    latency_col = next(h for h in header if h.startswith("latency"))
    for key, cells in md.items():
        assert float(cells[latency_col].split("±")[0]) == pytest.approx(closed[key]["avg_latency"], abs=5e-4), key
    with open(run / "report" / "closed_loop.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert {(r["policy"], r["scenario"]) for r in csv_rows} == set(closed) and len(csv_rows) == len(closed)
    for r in csv_rows:
        assert float(r["avg_latency"]) == pytest.approx(closed[(r["policy"], r["scenario"])]["avg_latency"], rel=1e-9)

    # open loop on the test sets: every policy on every server count; the oracle agrees with itself
    open_rows = json.loads((run / "eval" / "open_loop.json").read_text())
    assert sorted((r["policy"], r["n_servers"]) for r in open_rows) == sorted(
        (p, n) for p in labels - {"DQN"} for n in cfg.data.test_servers
    )
    for r in open_rows:
        assert r["n"] == cfg.data.test_n and 0 <= r["accuracy"] <= 1 and 0 <= r["invalid_rate"] <= 1, r["policy"]
        assert 0 < r["perf_ratio"] <= 1 + 1e-12, r["policy"]  # nothing beats the one-step oracle on its own cost
        if r["policy"] == "greedy":
            assert r["accuracy"] == 1.0 and r["perf_ratio"] == 1.0 and r["drop_rate"] == r["oracle_drop_rate"]
    zero_shot = json.loads((run / "eval" / "zero_shot.json").read_text())
    assert {r["n_servers"] for r in zero_shot} == set(e.server_counts)
    assert all(r["accuracy"] == 1.0 for r in zero_shot if r["policy"] == "greedy")
    assert {r["policy"] for r in zero_shot} == {"SFT", "GRPO", "COMLLM", "greedy"}
    # the SFT model decides by its cost head (sft.mode), the COMLLM row with the stage's lm_options
    assert json.loads((run / "sft" / "comllm.json").read_text())["mode"] == "cost"
    specs = lm_policies(Pipeline(load_config(ROOT / "configs" / "tiny.yaml", {"run_dir": str(run)})))
    assert specs["COMLLM"] == f"llm:{run / 'comllm' / 'final'},cost_temperature=0.03"
    assert specs["SFT"] == f"llm:{run / 'sft'}" and specs["GRPO"] == f"llm:{run / 'grpo' / 'final'}"
    robustness = json.loads((run / "eval" / "robustness.json").read_text())
    assert sorted((r["policy"], r["perturbation"]) for r in robustness) == sorted(
        (p, q) for p in ("SFT", "GRPO", "COMLLM") for q in e.perturbations
    )
    sweep = json.loads((run / "eval" / "load_sweep.json").read_text())
    assert {tuple(r["overrides"]) for r in sweep} == {(f"arrival_prob={p:g}",) for p in e.loads}

    report = run / "report"
    for name in ("README.md", "closed_loop.md", "closed_loop.csv", "load_sweep.png", "latency_cdf.png",
                 "zero_shot.png", "training_curves.png", "server_share_paper-6.png"):  # fmt: skip
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    assert lines[0] in (report / "README.md").read_text()  # the report's page shows the closed-loop table
    # a second run skips every finished stage
    again = run_cli("pipeline", "--config", str(ROOT / "configs" / "tiny.yaml"), "--run-dir", str(run))
    assert again.returncode == 0 and again.stdout.count("done already") == 7


def test_open_loop_rows_against_the_fresh_views_oracle(tmp_path):
    """eval.oracle incoming: greedy:incoming is the reference (accuracy and perf ratio 1), the paper's greedy is not."""
    from comllm.data import generate_records, write_records
    from comllm.experiments.evaluation import _open_loop_rows
    from comllm.scenario import load_scenario

    path = tmp_path / "test-6.jsonl.gz"
    write_records(path, generate_records(load_scenario("paper-6"), 150, split="test", template="lean-v2", seed=4))
    specs = {"greedy": "greedy", "greedy:incoming": "greedy:incoming"}
    fresh = {r["policy"]: r for r in _open_loop_rows(specs, {6: path}, lambda m: None, oracle="incoming")}
    paper = {r["policy"]: r for r in _open_loop_rows(specs, {6: path}, lambda m: None)}
    assert fresh["greedy:incoming"]["accuracy"] == 1.0 and fresh["greedy:incoming"]["perf_ratio"] == 1.0
    assert paper["greedy"]["accuracy"] == 1.0 and fresh["greedy"]["accuracy"] < 1.0
    assert {r["oracle"] for r in fresh.values()} == {"incoming"} and {r["oracle"] for r in paper.values()} == {"paper"}
