"""SFT of a tiny embedded model: the loss falls, decisions are valid in both modes, resume continues exactly."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from comllm.cli import app
from comllm.data import read_records
from comllm.lm.loading import load_lm
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.lm.sft import SFTError, bucketed_batches, make_config, train_sft
from comllm.state import StateBatch
from tests.test_lm_support import make_records

TINY = dict(hidden=32, layers=1, heads=2, intermediate=64, batch_size=16, progress=False, threads=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sftdata")
    return {
        "train": make_records(d / "train.jsonl", 320, servers="2-3", seed=1),
        "test": make_records(d / "test.jsonl", 60, servers="2-3", seed=2, split="test"),
    }


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft") / "run"
    cfg = make_config(model="default", template="estimates-compact", data=[str(data["train"])], out=str(out),
                      steps=120, lr=1e-2, log_every=5, save_every=60, eval_data=str(data["test"]), **TINY)  # fmt: skip
    train_sft(cfg, log=lambda s: None)
    return out


def _log(out: Path) -> list[dict]:
    with open(out / "train_log.csv") as f:
        return [r for r in csv.DictReader(f) if r["loss"]]


def test_loss_falls_and_logs_are_written(run: Path) -> None:
    rows = _log(run)
    assert [int(r["step"]) for r in rows] == list(range(5, 121, 5))
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert last < 0.5 * first
    assert any(p.name.startswith("events") for p in (run / "tb").iterdir())
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 120 and summary["samples"] == 120 * 16
    assert 0 <= summary["eval"]["perf_ratio"] <= 1


def test_trained_model_decides_validly_in_both_modes(run: Path, data) -> None:
    lm = load_lm(run)
    assert lm.is_embedded and lm.meta.template == "estimates-compact"
    states = [r.task_state() for r in read_records(data["test"])]
    for mode in ("score", "sample"):
        policy = LMPolicy(lm, DecodeOptions(mode=mode))
        actions = policy.decide(states)
        ns = np.array([s.n_servers for s in states])
        assert ((actions >= 0) & (actions <= ns)).all()
        assert policy.stats["decisions"] == len(states)
    assert policy.stats["invalid_rate"] <= 1.0
    # after training nearly all probability mass sits on the valid answers, and score mode takes the best one
    policy = LMPolicy(lm)
    group = [s for s in states if s.n_servers == states[0].n_servers]
    scores = policy.scores(group)
    mass = torch.logsumexp(scores, dim=1).exp()
    assert (mass > 0.5).all() and (mass <= 1.0 + 1e-5).all()
    assert policy.decide(group).tolist() == scores.argmax(dim=1).tolist()


def test_resume_continues_exactly(run: Path, data, tmp_path: Path) -> None:
    # cut the finished run back to its mid checkpoint, resume, and land on the same weights
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    for p in cut.glob("checkpoint-*"):
        if p.name != "checkpoint-60":
            shutil.rmtree(p)
    (cut / "model.safetensors").unlink()
    cfg = make_config(model="default", template="estimates-compact", data=[str(data["train"])], out=str(cut),
                      resume=True, **{**TINY, "steps": 1})  # the saved schedule wins over new flags  # fmt: skip
    summary = train_sft(cfg, log=lambda s: None)
    assert summary["steps"] == 120
    a = load_file(run / "model.safetensors")
    b = load_file(cut / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_refusals(data, tmp_path: Path, run: Path) -> None:
    with pytest.raises(SFTError, match="already holds a run"):
        train_sft(make_config(template="estimates-compact", data=[str(data["train"])], out=str(run), **TINY))
    with pytest.raises(SFTError, match="no checkpoint"):
        train_sft(make_config(template="estimates-compact", data=[str(data["train"])], out=str(tmp_path / "x"),
                              resume=True, **TINY))  # fmt: skip
    with pytest.raises(SFTError, match="template"):
        make_config(model="default", data=["x.jsonl"], out="o")
    with pytest.raises(SFTError, match="batch_size"):
        make_config(template="estimates-compact", data=["x.jsonl"], out="o", batch_size=0)
    with pytest.raises(SFTError, match="does not exist"):
        train_sft(make_config(template="estimates-compact", data=[str(tmp_path / "none.jsonl")], out=str(tmp_path / "y"), **TINY))


def test_bucketed_batches_cover_the_epoch_and_group_lengths() -> None:
    lengths = np.repeat([40, 60, 80], 100)
    batches = bucketed_batches(lengths, 16, seed=0)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(300))
    mixed = sum(len(set(lengths[b].tolist())) > 1 for b in batches)
    assert mixed <= 3  # only batches at a length boundary mix lengths
    assert [b.tolist() for b in bucketed_batches(lengths, 16, 0)] == [b.tolist() for b in batches]


def test_sft_command_line(data, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["sft", "--data", str(data["train"]), "--out", str(out), "--template",
                                   "estimates-compact", "--steps", "4", "--batch-size", "8", "--hidden", "32",
                                   "--layers", "1", "--heads", "2", "--intermediate", "64", "--no-progress",
                                   "--threads", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").is_file() and (out / "train_log.csv").is_file()
    lm = load_lm(out)
    acts = LMPolicy(lm).act(StateBatch.from_states([r.task_state() for r in read_records(data["test"])][:5]))
    assert len(acts) == 5


@pytest.mark.parametrize("template,extra", [("estimates-compact", {"listwise": 1.0}), ("raw-compact", {"cost_head": 1.0})])
def test_auxiliary_losses_train_and_are_logged(data, tmp_path: Path, template: str, extra: dict) -> None:
    out = tmp_path / "aux"
    cfg = make_config(model="default", template=template, data=[str(data["train"])], out=str(out), steps=30, lr=1e-2,
                      log_every=10, save_every=1000, **TINY, **extra)  # fmt: skip
    train_sft(cfg, log=lambda s: None)
    rows = _log(out)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert float(rows[-1]["aux_loss"]) < float(rows[0]["aux_loss"])
    lm = load_lm(out)
    assert (lm.model.cost_head is not None) == ("cost_head" in extra)
    acts = LMPolicy(lm).decide([r.task_state() for r in read_records(data["test"])][:8])
    assert len(acts) == 8


def test_cost_head_needs_one_line_per_action(data, tmp_path: Path) -> None:
    cfg = make_config(model="default", template="paper", data=[str(data["train"])], out=str(tmp_path / "p"), steps=2,
                      cost_head=1.0, **TINY)  # fmt: skip
    with pytest.raises(SFTError, match="one line per action"):
        train_sft(cfg, log=lambda s: None)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_data_parallel_sft_under_torchrun_matches_one_process(data, tmp_path: Path) -> None:
    """Two CPU processes (gloo) share each global batch; the result is the one-process run's.

    ``torchrun`` sets the variables that ``accelerate launch --multi_gpu`` sets on GPUs (on CPUs
    accelerate starts one process unless through MPI).
    """
    import subprocess
    import sys

    args = ["sft", "--model", "default", "--template", "estimates-compact", "--data", str(data["train"]),
            "--steps", "12", "--batch-size", "16", "--lr", "1e-2", "--hidden", "32", "--layers", "1", "--heads", "2",
            "--intermediate", "64", "--threads", "1", "--no-progress", "--log-every", "4", "--save-every", "6"]  # fmt: skip
    one = tmp_path / "one"
    two = tmp_path / "two"
    proc = subprocess.run([sys.executable, "-m", "comllm.cli", *args, "--out", str(one)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port())]
    proc = subprocess.run([*launch, "-m", "comllm.cli", *args, "--out", str(two)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 data-parallel processes" in proc.stdout + proc.stderr
    summary = json.loads((two / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["samples"] == 12 * 16
    w1, w2 = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert w1.keys() == w2.keys()
    # the same global batches, gradients averaged over the halves: equal up to the per-half loss means
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=5e-3, rtol=0), k
    assert len(_log(two)) == 3 and [p.name for p in sorted(two.glob("checkpoint-*"))] == ["checkpoint-12", "checkpoint-6"]
