"""The pipeline: config validation, commands, and the tiny config end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from comllm.experiments.config import ConfigError, load_config
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
        assert comllm_cmd[comllm_cmd.index("--lacs") + 1] == "sim"
        (grpo_cmd,) = pipe.stage_commands("grpo")
        assert grpo_cmd[grpo_cmd.index("--lacs") + 1] == "off"
        assert len(pipe.stage_commands("dqn")) == len(cfg.dqn.algos) * len(cfg.eval.scenarios)


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
    manifest = json.loads((run / "manifest.json").read_text())
    assert all(s["status"] == "done" for s in manifest["stages"].values())
    assert "accelerate.commands.launch" in (run / "logs" / "sft.log").read_text()
    assert set(manifest["stages"]) == {"data", "sft", "grpo", "comllm", "dqn", "eval", "report"}
    for key in ("config", "seeds", "versions", "git_revision", "total_wall_s"):
        assert key in manifest
    rows = json.loads((run / "eval" / "closed_loop.json").read_text())
    labels = {r["policy"] for r in rows}
    assert {"greedy", "SFT", "GRPO", "COMLLM", "DQN"} <= labels
    report = run / "report"
    for name in ("README.md", "closed_loop.md", "closed_loop.csv", "load_sweep.png", "latency_cdf.png",
                 "zero_shot.png", "training_curves.png", "server_share_paper-6.png"):  # fmt: skip
        assert (report / name).is_file(), name
    # a second run skips every finished stage
    again = run_cli("pipeline", "--config", str(ROOT / "configs" / "tiny.yaml"), "--run-dir", str(run))
    assert again.returncode == 0 and again.stdout.count("done already") == 7
