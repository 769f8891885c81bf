"""GRPO of a tiny embedded model through TRL: each LACS mode trains into a loadable policy, logs every reward term,
resumes where it stopped, and the command line refuses bad input with one line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from typer.testing import CliRunner

from comllm.cli import app
from comllm.data import read_records
from comllm.errors import ComllmError
from comllm.grpo import GRPOError, build_dataset, checkpoints, decision_metrics, export_model, make_config, train_grpo
from comllm.lm.loading import load_lm
from comllm.lm.sft import make_config as sft_config
from comllm.lm.sft import train_sft
from comllm.policies import make_policy
from comllm.state import StateBatch, group_by_servers
from tests.test_lm_support import make_records

FAST = dict(steps=3, prompts_per_step=2, num_generations=4, save_every=2, log_every=1, threads=1, progress=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """GRPO records (with snapshots) and a tiny SFT model on the ``estimates-compact`` template."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("grpo")
    train = make_records(d / "sft.jsonl", 320, servers="2-3", seed=1)
    grpo = make_records(d / "grpo.jsonl", 24, servers="2-3", seed=3, split="grpo")
    cfg = sft_config(model="default", template="estimates-compact", data=[str(train)], out=str(d / "sft"), steps=60,
                     lr=3e-3, hidden=32, layers=1, heads=2, intermediate=64, batch_size=16, progress=False,
                     threads=1)  # fmt: skip
    train_sft(cfg, log=lambda s: None)
    return {"dir": d, "sft": d / "sft", "grpo": grpo}


MODES = ("sim", "reference", "off")


@pytest.fixture(scope="module")
def runs(base) -> dict[str, tuple[Path, dict]]:
    """Three steps of GRPO from the tiny SFT model in each LACS mode: ``{mode: (out, summary)}``."""
    done = {}
    for mode in MODES:
        out = base["dir"] / f"run-{mode}"
        cfg = make_config(model=str(base["sft"]), data=[str(base["grpo"])], out=str(out), lacs=mode,
                          horizon=3, rollouts=4, **FAST)  # fmt: skip
        done[mode] = (out, train_grpo(cfg, log=lambda s: None))
    return done


def _log(out: Path) -> list[dict[str, str]]:
    with open(out / "train_log.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_gives_a_loadable_policy_with_valid_actions(mode, runs, base) -> None:
    out, summary = runs[mode]
    assert summary["steps"] == 3 and summary["config"]["lacs"] == mode
    meta = json.loads((out / "comllm.json").read_text())
    assert meta["template"] == "estimates-compact" and meta["training"]["stage"] == "grpo"
    states = [r.task_state() for r in read_records(base["grpo"])]
    for spec in (f"llm:{out}", f"llm:{out},mode=sample,seed=1", f"llm:{checkpoints(out)[0]}"):
        policy = make_policy(spec)
        for n, idx in group_by_servers(states).items():
            batch = StateBatch.from_states([states[i] for i in idx])
            actions = policy.act(batch)
            assert len(actions) == len(batch) and ((actions >= 0) & (actions <= n)).all()
    # training changed the weights, and only by a little (three steps at lr 1e-4)
    before = load_lm(base["sft"]).model.state_dict()
    after = load_lm(out).model.state_dict()
    diffs = [float((after[k] - before[k]).abs().max()) for k in before]
    assert 0 < max(diffs) < 0.05


@pytest.mark.parametrize("mode", MODES)
def test_every_reward_term_is_logged(mode, runs) -> None:
    out, summary = runs[mode]
    rows = _log(out)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for r in rows:
        total = sum(float(r[f"rewards/{n}/mean"]) for n in ("format", "task", "lacs"))
        assert float(r["reward"]) == pytest.approx(total, abs=1e-4)  # TRL's reward is the sum of the terms
        assert 0 <= float(r["decisions/valid"]) <= 1
        assert float(r["kl"]) >= 0 and r["learning_rate"]
    lacs = [float(r["rewards/lacs/mean"]) for r in rows]
    if mode == "off":
        assert lacs == [0.0, 0.0, 0.0]
    assert summary["last_rewards"]["reward"] == pytest.approx(float(rows[-1]["reward"]), abs=1e-3)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(out / "tb")).Reload().Tags()["scalars"]
    assert {"train/rewards/task/mean", "train/rewards/lacs/mean", "train/rewards/format/mean"} <= set(tags)


def test_lacs_term_is_live_when_on(base, tmp_path: Path) -> None:
    # a lambda-only reward (task and format weighted 0) with many steps of data: the LACS term carries the signal
    cfg = make_config(model=str(base["sft"]), data=[str(base["grpo"])], out=str(tmp_path / "l"), lacs="reference",
                      task_weight=0.8, format_weight=0.0, unparseable=0.0, lacs_weight=1.0, **{**FAST, "steps": 2})  # fmt: skip
    train_grpo(cfg, log=lambda s: None)
    rows = _log(tmp_path / "l")
    assert any(float(r["rewards/lacs/mean"]) < 0 for r in rows)  # the future cost is positive: its reward negative


def test_resume_continues_the_global_step(runs, base, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(runs["off"][0], out)
    last = checkpoints(out)[-1]
    state = json.loads((last / "trainer_state.json").read_text())
    summary = train_grpo(make_config(model="ignored", data=["ignored.jsonl"], out=str(out), resume=True, steps=5,
                                     threads=1, progress=False), log=lambda s: None)  # fmt: skip
    assert summary["steps"] == 5 and state["global_step"] < 5
    assert summary["config"]["model"] == str(base["sft"])  # the saved run's options win
    steps = [int(r["step"]) for r in _log(out)]
    assert steps == list(range(1, 6))
    assert json.loads((checkpoints(out)[-1] / "trainer_state.json").read_text())["global_step"] == 5
    shipped = export_model(out, tmp_path / "ship")
    assert {"model.safetensors", "comllm.json", "config.json", "train_log.csv"} <= {p.name for p in shipped.iterdir()}
    assert not any(p.name.startswith("checkpoint") for p in shipped.iterdir())
    assert len(make_policy(f"llm:{shipped}").act(StateBatch.from_states([r.task_state() for r in read_records(base["grpo"])][:4]))) == 4


def test_dataset_rows_come_from_the_records(base) -> None:
    lm = load_lm(base["sft"])
    ds = build_dataset(lm, [str(base["grpo"])], limit=10)
    recs = list(read_records(base["grpo"]))[:10]
    assert len(ds) == 10
    for row, rec in zip(ds, recs):
        assert row["prompt"] == lm.prompt_text(rec.task_state()) and row["prompt"].endswith("answer:")
        assert json.loads(row["snapshot"]) == rec.snapshot
        assert row["device"] == rec.device and row["n_servers"] == rec.n_servers
        assert json.loads(row["costs"]) == rec.costs


def test_decision_metrics_by_hand() -> None:
    costs = [[3.0, 1.0, 2.0], [1.0, 4.0, 4.0], [2.0, 2.5, 5.0], [1.0, 1.0, 1.0]]
    out = decision_metrics([" server 1", "local", "server 2", "banana"], [2, 2, 2, 2], [json.dumps(c) for c in costs])
    assert out["decisions/valid"] == 0.75
    assert out["decisions/greedy_agree"] == pytest.approx(2 / 3)
    assert out["decisions/local"] == pytest.approx(1 / 3)
    assert out["decisions/cost_ratio"] == pytest.approx((1 + 1 + 2) / (1 + 1 + 5))
    assert decision_metrics(["??"], [2], [costs[0]]) == {"decisions/valid": 0.0}


def test_refusals(base, runs, tmp_path: Path) -> None:
    out = runs["sim"][0]
    with pytest.raises(GRPOError, match="already holds a run"):
        train_grpo(make_config(model=str(base["sft"]), data=[str(base["grpo"])], out=str(out), **FAST))
    with pytest.raises(GRPOError, match="no checkpoint"):
        train_grpo(make_config(data=[str(base["grpo"])], out=str(tmp_path / "x"), resume=True, **FAST))
    with pytest.raises(GRPOError, match="does not exist"):
        train_grpo(make_config(model=str(base["sft"]), data=[str(tmp_path / "none.jsonl")], out=str(tmp_path / "y"), **FAST))
    official = Path(__file__).parent / "fixtures" / "reference_records.json"
    with pytest.raises(GRPOError, match="no simulator snapshot"):
        train_grpo(make_config(model=str(base["sft"]), data=[str(official)], out=str(tmp_path / "z"), **FAST))
    with pytest.raises(GRPOError, match="'lacs' = 'foo'"):
        make_config(data=["x.jsonl"], out="o", lacs="foo")
    with pytest.raises(GRPOError, match="num_generations"):
        make_config(data=["x.jsonl"], out="o", num_generations=1)


def test_command_line_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "g.jsonl").write_text("")  # the data file exists: the bad option is what is refused
    proc = subprocess.run(
        [sys.executable, "-c", "from comllm.cli import main; main()", "grpo", "--data", str(tmp_path / "g.jsonl"),
         "--out", str(tmp_path / "o"), "--lacs", "foo"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "'lacs' = 'foo'" in lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--horizon", "-1"], "'horizon' = -1"),
        (["--drop-cost", "soon"], "'drop_cost' = 'soon'"),
        (["--num-generations", "1"], "'num_generations' = 1"),
        ([], "does not exist"),  # --data names a missing file
    ],
)
def test_command_line_errors_are_user_errors(args: list[str], message: str, tmp_path: Path) -> None:
    if args:  # a data file that exists, so the bad option is what is refused
        (tmp_path / "missing.jsonl").write_text("")
    res = CliRunner().invoke(app, ["grpo", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"),
                                   "--no-progress", *args])  # fmt: skip
    assert res.exit_code != 0 and isinstance(res.exception, ComllmError), res.output  # main() prints it as one line
    assert message in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_trl_arguments_follow_the_options(tmp_path: Path) -> None:
    from comllm.grpo.train import grpo_args

    cfg = make_config(data=["x.jsonl"], out=str(tmp_path), prompts_per_step=3, num_generations=4, temperature=1.3,
                      top_p=0.95, max_completion_length=15, beta=0.005, entropy_coef=0.01, steps=7, schedule="cosine")  # fmt: skip
    args = grpo_args(cfg, tmp_path, lr=1e-4, device="cpu", bf16=False)
    assert args.per_device_train_batch_size == 12 and args.num_generations == 4  # completions, a multiple of G
    assert (args.temperature, args.top_p, args.max_completion_length) == (1.3, 0.95, 15)
    assert (args.beta, args.entropy_coef, args.learning_rate, args.max_steps) == (0.005, 0.01, 1e-4, 7)
    assert args.use_cpu and not args.bf16 and not args.gradient_checkpointing
    assert args.lr_scheduler_type == "cosine"  # a str enum
