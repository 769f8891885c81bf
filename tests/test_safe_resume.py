"""What the project promises about interruptions (README, "What is safe"): a run killed anywhere resumes.

* Every training (``comllm sft``, ``comllm grpo``, ``comllm dqn train`` for DQN
  and D3QN-LSTM) writes each checkpoint under a temporary name and renames it
  when complete, so a kill (SIGKILL, at any point) never leaves a half-written
  checkpoint under its real name.
* ``--resume`` continues from the newest checkpoint that is whole; one that is
  not (a missing or cut file) is skipped with a warning; a run killed before its
  first checkpoint starts again from step 0 (with ``--resume`` or without).
* Where training is deterministic (SFT, GRPO, D3QN-LSTM) the resumed run ends
  with the very weights of an uninterrupted one; the SB3 DQN starts a new
  episode on resume, so it ends on other (equally valid) weights.
* Logs never repeat a row: they are cut back to the resumed step.
* ``comllm pipeline`` reruns an interrupted training stage with ``--resume``.

The kills here are real SIGKILLs of a forked process running the training, at
a random point of its progress (once its log reaches a step drawn at random,
seeded so that a failure can be replayed); the ``slow`` tests do the same
through the ``comllm`` command line.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file

from comllm.checkpointing import is_temporary
from comllm.drl.config import CheckpointMeta, TrainConfig
from comllm.drl.train import new_meta, read_train_state, train
from comllm.lm.sft import make_config, train_sft
from comllm.locking import LOCK_FILE
from comllm.scenario import load_scenario
from tests.test_lm_support import make_records

ROOT = Path(__file__).resolve().parents[1]
SMALL = load_scenario("small")
QUIET = dict(log=lambda s: None)


# ------------------------------------------------------------------ helpers
def kill_at_random_point(
    target: Callable[[], object], ready: Callable[[], bool], rng: random.Random, window_s: float = 0.05
) -> bool:
    """Run ``target`` in a forked process; once ``ready()`` holds, SIGKILL it after a random delay below ``window_s``.

    Returns whether it was killed (False: it finished first).
    """
    proc = mp.get_context("fork").Process(target=_with_own_tqdm_locks, args=(target,))
    proc.start()
    t0 = time.time()
    while not ready() and proc.is_alive() and time.time() - t0 < 120:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, window_s))
    killed = proc.is_alive()
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=120)
    assert proc.exitcode is not None, "the training process hung"
    assert killed or proc.exitcode == 0, f"the training failed by itself (exit {proc.exitcode})"
    return killed


def _with_own_tqdm_locks(target: Callable[[], object]) -> None:
    """Run ``target`` with process-local progress-bar locks.

    tqdm's default write lock holds a multiprocessing semaphore that a forked child shares with
    its parent. If the child is killed while a progress bar (transformers' loading or saving bars)
    holds it, the parent's next bar waits forever. So the child uses locks of its own.
    """
    import threading

    import tqdm.std

    classes = [tqdm.std.tqdm]
    while classes:
        cls = classes.pop()
        cls._lock = threading.RLock()
        classes.extend(cls.__subclasses__())
    target()


def logged_past(path: Path, step: int) -> Callable[[], bool]:
    """``ready`` for :func:`kill_at_random_point`: the CSV log at ``path`` has a row at ``step`` or later."""

    def ready() -> bool:
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:
            return False
        for line in reversed(lines):
            head = line.split(",", 1)[0]
            if head.isdigit():
                return int(head) >= step
        return False

    return ready


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def log_steps(path: Path, only: Callable[[dict], bool] = lambda r: True) -> list[int]:
    with path.open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if only(r)]


def no_leftovers(out: Path) -> None:
    assert not [p for p in out.iterdir() if is_temporary(p)], sorted(p.name for p in out.iterdir())
    assert not (out / LOCK_FILE).exists()


# ------------------------------------------------------------------ SFT
SFT = dict(model="default", template="estimates-compact", steps=40, save_every=5, keep=2, log_every=2, lr=1e-2,
           hidden=16, layers=1, heads=2, intermediate=32, batch_size=8, progress=False, threads=1)  # fmt: skip


@pytest.fixture(scope="module")
def sft_ref(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted tiny SFT run and its options."""
    d = tmp_path_factory.mktemp("sft-resume")
    opts = {**SFT, "data": [str(make_records(d / "train.jsonl", 64, servers="2-3", seed=1))]}
    train_sft(make_config(out=str(d / "ref"), **opts), **QUIET)
    return d / "ref", opts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sft_killed_at_random_points_resumes_to_the_same_weights(seed: int, sft_ref, tmp_path: Path) -> None:
    ref, opts = sft_ref
    out = tmp_path / "run"
    rng = random.Random(seed)
    first, second = sorted(rng.sample(range(1, 40), 2))
    killed = kill_at_random_point(lambda: train_sft(make_config(out=str(out), **opts), **QUIET),
                                  logged_past(out / "train_log.csv", first), rng)  # fmt: skip
    assert killed
    kill_at_random_point(lambda: train_sft(make_config(out=str(out), resume=True, **opts), **QUIET),
                         logged_past(out / "train_log.csv", second), rng)  # and again while resuming  # fmt: skip
    train_sft(make_config(out=str(out), resume=True, **opts), **QUIET)
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert log_steps(out / "train_log.csv") == log_steps(ref / "train_log.csv")  # no row twice, none lost
    no_leftovers(out)


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", ["state missing", "state cut", "weights cut", "staging left"])
def test_sft_resume_skips_a_damaged_checkpoint(damage: str, sft_ref, tmp_path: Path) -> None:
    """The newest checkpoint is missing its trainer state, or has it or its weights cut short: resume from the one before."""
    ref, opts = sft_ref
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    (out / "model.safetensors").unlink()  # the final model was never written
    newest = out / "checkpoint-40"
    if damage == "state missing":
        (newest / "trainer_state.safetensors").unlink()
    elif damage == "state cut":
        _cut(newest / "trainer_state.safetensors")
    elif damage == "weights cut":
        _cut(newest / "model.safetensors")
    else:  # killed while writing checkpoint-40: its files are still under a temporary name
        os.rename(newest, out / ".checkpoint-40.tmp-12345")
    with (out / "train_log.csv").open("a") as f:
        f.write("42,336,0.5\n")  # a row after the checkpoint, cut by the kill
    said: list[str] = []
    train_sft(make_config(out=str(out), resume=True, **opts), log=said.append)
    if damage != "staging left":
        assert any(s.startswith("warning: skipping checkpoint") and "checkpoint-40" in s for s in said), said
        assert any("resuming from" in s and "checkpoint-35" in s for s in said), said
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert log_steps(out / "train_log.csv") == log_steps(ref / "train_log.csv")
    no_leftovers(out)


def test_sft_killed_before_its_first_checkpoint_starts_again(sft_ref, tmp_path: Path) -> None:
    ref, opts = sft_ref
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(ref / "dataset.safetensors", out)
    shutil.copy(ref / "train_log.csv", out)  # rows of the killed run
    (out / LOCK_FILE).write_text('{"pid": 999999999}')  # its stale lock
    said: list[str] = []
    train_sft(make_config(out=str(out), resume=True, **opts), log=said.append)
    assert any("no complete checkpoint" in s for s in said) and any("stale lock of pid 999999999" in s for s in said)
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert log_steps(out / "train_log.csv") == log_steps(ref / "train_log.csv")


@pytest.mark.slow  # two launches of the command line (its imports take 5 to 15 s on a loaded machine)
def test_sft_command_line_killed_and_resumed(sft_ref, tmp_path: Path) -> None:
    ref, opts = sft_ref
    out = tmp_path / "run"
    flags = ["--data", opts["data"][0], "--out", str(out), "--template", "estimates-compact", "--steps", "40",
             "--save-every", "5", "--log-every", "2", "--lr", "0.01", "--hidden", "16", "--layers", "1", "--heads", "2",
             "--intermediate", "32", "--batch-size", "8", "--threads", "1", "--no-progress"]  # fmt: skip
    cmd = [sys.executable, "-m", "comllm.cli", "sft", *flags]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (out / "train_log.csv").exists() and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(random.Random(7).uniform(0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert log_steps(out / "train_log.csv") == log_steps(ref / "train_log.csv")


# ------------------------------------------------------------------ DQN and D3QN-LSTM
def _drl_cfg(algo: str) -> TrainConfig:
    return TrainConfig(algo=algo, scenario=SMALL.model_dump(mode="json"), steps=400, seed=0, episode_slots=30,
                       eval_every=400, eval_slots=20, eval_seeds=[7], checkpoint_every=40,
                       hyper={"learning_starts": 200, **({"buffer_size": 1000} if algo == "dqn" else {})})  # fmt: skip


@pytest.fixture(scope="module")
def d3qn_ref(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("d3qn-resume") / "ref"
    train(_drl_cfg("d3qn-lstm"), out, progress=False)
    return out


def _rows(path: Path, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    with path.open(newline="") as f:
        return [tuple(r[k] for k in fields) for r in csv.DictReader(f)]


@pytest.mark.parametrize("seed", [0, 1])
def test_d3qn_killed_at_random_points_resumes_to_the_same_weights(seed: int, d3qn_ref: Path, tmp_path: Path) -> None:
    """Checkpoints are taken at episode ends, so the resumed run replays the uninterrupted one exactly."""
    cfg, out, rng = _drl_cfg("d3qn-lstm"), tmp_path / "run", random.Random(seed)
    kills = [kill_at_random_point(lambda: train(cfg, out, resume=(out / "config.json").exists(), progress=False),
                                  logged_past(out / "episodes.csv", step), rng)
             for step in sorted(rng.sample(range(1, 400), 2))]  # fmt: skip
    assert kills[0]
    meta = train(cfg, out, resume=True, progress=False)
    assert meta.steps_done == 400
    assert same_weights(d3qn_ref / "model.safetensors", out / "model.safetensors")
    assert same_weights(d3qn_ref / "best_model.safetensors", out / "best_model.safetensors")
    episode = ("step", "episode", "tasks", "avg_latency", "drop_rate", "epsilon", "loss")
    assert _rows(out / "episodes.csv", episode) == _rows(d3qn_ref / "episodes.csv", episode)
    evals = ("step", "avg_latency", "drop_rate", "jain_index")
    assert _rows(out / "eval.csv", evals) == _rows(d3qn_ref / "eval.csv", evals)
    no_leftovers(out)


def test_dqn_killed_at_a_random_point_resumes_and_finishes(tmp_path: Path) -> None:
    """The SB3 DQN resumes its networks, optimizer, replay, counters and random streams (a new episode begins)."""
    from comllm.drl.sb3 import load_q_function

    cfg, out = _drl_cfg("dqn"), tmp_path / "run"
    kill_at_random_point(lambda: train(cfg, out, progress=False),
                         logged_past(out / "episodes.csv", random.Random(3).randrange(40, 360)), random.Random(3))  # fmt: skip
    state = read_train_state(out)
    done_before = state["progress"]["steps_done"] if state else 0
    meta = train(cfg, out, resume=True, progress=False)
    assert meta.steps_done == 400 and read_train_state(out)["progress"]["steps_done"] == 400
    for name in ("episodes.csv", "eval.csv"):
        steps = log_steps(out / name)
        assert steps == sorted(set(steps)), (name, steps)  # no row twice
    assert log_steps(out / "eval.csv") == [400]
    if state:
        assert read_train_state(out)["model"]["num_timesteps"] == 400 > done_before
    q = load_q_function(out / "model.safetensors", meta.obs_dim, meta.n_servers + 1, meta.train.hyper)
    assert q(torch.zeros(2, meta.obs_dim)).shape == (2, meta.n_servers + 1)
    no_leftovers(out)


@pytest.mark.parametrize("algo", ["dqn", "d3qn-lstm"])
def test_drl_killed_before_its_first_checkpoint_starts_again(algo: str, tmp_path: Path) -> None:
    """The folder holds only config.json and logs: both a plain rerun and ``--resume`` start from step 0."""
    from typer.testing import CliRunner

    from comllm.cli import app

    cfg = _drl_cfg(algo).model_copy(update={"steps": 250, "checkpoint_every": 1000})
    for resume in (False, True):
        out = tmp_path / f"run-{resume}"
        new_meta(cfg).write(out)
        (out / "episodes.csv").write_text("step,episode\n30,1\n")
        meta = train(cfg, out, resume=resume, progress=False)
        assert meta.steps_done == 250 and log_steps(out / "episodes.csv") == sorted(set(log_steps(out / "episodes.csv")))
    out = tmp_path / "cli"
    new_meta(cfg).write(out)
    res = CliRunner().invoke(app, ["dqn", "train", "--algo", algo, "--scenario", "small", "--steps", "250",
                                   "--episode-slots", "30", "--eval-every", "250", "--eval-slots", "20", "--out", str(out),
                                   "--hp", "learning_starts=200", "--resume", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert CheckpointMeta.read(out).steps_done == 250


@pytest.mark.slow  # a launch of the command line, then a resume
def test_d3qn_command_line_killed_and_resumed(d3qn_ref: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "comllm.cli", "dqn", "train", "--algo", "d3qn-lstm", "--scenario", "small", "--steps",
           "400", "--episode-slots", "30", "--eval-every", "400", "--eval-slots", "20", "--checkpoint-every", "40",
           "--hp", "learning_starts=200", "--no-progress", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (out / "episodes.csv").exists() and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(random.Random(5).uniform(0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cfg = _drl_cfg("d3qn-lstm").model_copy(update={"eval_seeds": [1000, 1001]})  # the command line's evaluation seeds
    ref = tmp_path / "ref"
    train(cfg, ref, progress=False)
    done = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")


# ------------------------------------------------------------------ GRPO (TRL)
@pytest.fixture(scope="module")
def grpo_ref(tmp_path_factory) -> tuple[Path, dict, Path]:
    """A tiny SFT model, GRPO options from it, and an uninterrupted GRPO run."""
    from comllm.grpo import make_config as grpo_config
    from comllm.grpo import train_grpo

    d = tmp_path_factory.mktemp("grpo-resume")
    train_sft(make_config(out=str(d / "sft"), data=[str(make_records(d / "sft.jsonl", 64, servers="2", seed=1))],
                          **{**SFT, "steps": 30}), **QUIET)  # fmt: skip
    grpo = make_records(d / "grpo.jsonl", 16, servers="2", seed=3, split="grpo")
    opts = dict(model=str(d / "sft"), data=[str(grpo)], lacs="off", steps=6, prompts_per_step=2, num_generations=2,
                save_every=1, keep=3, log_every=1, threads=1, progress=False, max_completion_length=6)  # fmt: skip
    train_grpo(grpo_config(out=str(d / "ref"), **opts), **QUIET)
    return d / "ref", opts, d / "sft"


def test_grpo_killed_at_a_random_point_resumes_to_the_same_weights(grpo_ref, tmp_path: Path) -> None:
    from comllm.grpo import checkpoints, make_config as grpo_config, train_grpo

    ref, opts, sft = grpo_ref
    assert not same_weights(sft / "model.safetensors", ref / "model.safetensors")  # training moved the weights
    rng = random.Random(11)
    for attempt in range(4):  # a fast machine may finish the 6 tiny steps inside the delay: try again earlier
        out = tmp_path / f"run{attempt}"
        if kill_at_random_point(lambda: train_grpo(grpo_config(out=str(out), **opts), **QUIET),
                                logged_past(out / "train_log.csv", rng.randrange(1, 4)), rng, 0.5 / 4**attempt):
            break  # fmt: skip
    else:
        pytest.fail("the GRPO run finished before every kill")
    summary = train_grpo(grpo_config(out=str(out), resume=True, **opts), **QUIET)
    assert summary["steps"] == 6
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert log_steps(out / "train_log.csv") == [1, 2, 3, 4, 5, 6]
    assert all((ck / "comllm.json").is_file() for ck in checkpoints(out))  # each checkpoint is a loadable model
    no_leftovers(out)


def test_grpo_resume_skips_a_checkpoint_with_a_missing_or_cut_file(grpo_ref, tmp_path: Path) -> None:
    from comllm.grpo import make_config as grpo_config, train_grpo

    ref, opts, _ = grpo_ref
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    (out / "model.safetensors").unlink()
    (out / "checkpoint-6" / "optimizer.pt").unlink()
    _cut(out / "checkpoint-5" / "scheduler.pt")
    said: list[str] = []
    train_grpo(grpo_config(out=str(out), resume=True, **opts), log=said.append)
    skipped = [s for s in said if s.startswith("warning: skipping checkpoint")]
    assert len(skipped) == 2 and "optimizer.pt" in skipped[0] and "scheduler.pt" in skipped[1], said
    assert any("resuming from" in s and s.rstrip().endswith("checkpoint-4") for s in said), said
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert log_steps(out / "train_log.csv") == [1, 2, 3, 4, 5, 6]


# ------------------------------------------------------------------ pipeline
def test_pipeline_resumes_every_training_stage_it_interrupted(tmp_path: Path) -> None:
    from comllm.experiments.pipeline import resumable

    assert not resumable("dqn", tmp_path / "none")
    dqn = tmp_path / "dqn"
    new_meta(_drl_cfg("dqn")).write(dqn)  # dqn train writes config.json as it starts, before any checkpoint
    assert resumable("dqn", dqn)
    grpo = tmp_path / "grpo"
    grpo.mkdir()
    (grpo / LOCK_FILE).write_text("{}")
    assert not resumable("grpo", grpo)  # killed before it wrote anything: a plain rerun
    (grpo / "grpo_config.json").write_text("{}")
    assert resumable("grpo", grpo) and resumable("comllm", grpo)
    sft = tmp_path / "sft"
    (sft / "checkpoint-5").mkdir(parents=True)
    assert resumable("sft", sft)


def test_pipeline_reruns_an_interrupted_dqn_stage_with_resume(tmp_path: Path, monkeypatch) -> None:
    """A DQN stage killed before its first checkpoint (config.json, no checkpoint): the rerun passes --resume."""
    from comllm.experiments import pipeline as P
    from comllm.experiments.config import load_config

    cfg = load_config(ROOT / "configs" / "tiny.yaml", {"run_dir": str(tmp_path / "run")})
    pipe = P.Pipeline(cfg, log=lambda s: None)
    (cmd,) = [c for c in pipe.stage_commands("dqn") if "paper-6" in c]
    out = Path(cmd[cmd.index("--out") + 1])
    new_meta(_drl_cfg("dqn")).write(out)
    ran: list[list[str]] = []
    monkeypatch.setattr(P.subprocess, "run", lambda full, **kw: ran.append(full) or subprocess.CompletedProcess(full, 0))
    pipe._run_command("dqn", cmd)
    assert ran[0][-1] == "--resume"


@pytest.mark.slow  # runs the dqn stage's command for real
def test_pipeline_dqn_stage_rerun_after_interruption(tmp_path: Path) -> None:
    from comllm.experiments.config import load_config
    from comllm.experiments.pipeline import Pipeline

    over = {"run_dir": str(tmp_path / "run"), "eval": {"scenarios": ["small"]},
            "dqn": {"steps": 250, "args": ["--eval-every", "250", "--eval-slots", "20", "--episode-slots", "30"]}}  # fmt: skip
    cfg = load_config(ROOT / "configs" / "tiny.yaml", over)
    out = tmp_path / "run" / "dqn" / "dqn-small"
    new_meta(_drl_cfg("dqn")).write(out)  # interrupted before its first checkpoint
    manifest = Pipeline(cfg, log=lambda s: None).run(["dqn"])
    assert manifest["stages"]["dqn"]["status"] == "done"
    assert "--resume" in (tmp_path / "run" / "logs" / "dqn.log").read_text()
    assert CheckpointMeta.read(out).steps_done == 250


def test_grpo_stopped_after_its_last_checkpoint_resumes_without_an_extra_step(grpo_ref, tmp_path: Path) -> None:
    """Killed between the last checkpoint and the final save: the resume trains nothing more
    (it used to run one step past ``steps``) and writes the checkpoint's weights."""
    import shutil

    from comllm.grpo import make_config as grpo_config, train_grpo

    ref, opts, _ = grpo_ref
    out = tmp_path / "stopped"
    shutil.copytree(ref, out)
    for name in ("model.safetensors", "train_summary.json", "summary.json"):
        (out / name).unlink(missing_ok=True)
    summary = train_grpo(grpo_config(out=str(out), resume=True, **opts), **QUIET)
    assert summary["steps"] == 6
    assert same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert log_steps(out / "train_log.csv") == [1, 2, 3, 4, 5, 6]
