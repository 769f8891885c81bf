"""The end-to-end pipeline: data → SFT → GRPO (no LACS) → COMLLM (GRPO + LACS) → DQN → evaluation → report.

The ``grpo`` stage is TRL's sampled GRPO without the look-ahead (``grpo.method: trl``) or the
all-action stage without it (``all-actions``: ``comllm improve`` with the ``improve`` section's
keys and ``--lam 0 --horizon 0``, for models that decide by their cost head); the ``comllm``
stage is the all-action LACS stage (``improve.method: all-actions``) or TRL's GRPO + LACS.

Each training stage runs the same ``comllm`` command a user would type (recorded
in the manifest, so every result can be reproduced by hand), in a subprocess,
optionally under ``accelerate launch``. Everything lives under one run
directory::

    RUN/manifest.json          config, seeds, versions, git revision, per-stage status and wall time
    RUN/config.yaml            the config as run
    RUN/data/                  sft / grpo / test-N record files
    RUN/sft, RUN/grpo, RUN/comllm, RUN/dqn/ALGO-SCENARIO   checkpoints and training logs
    RUN/eval/                  evaluation results (JSON)
    RUN/report/                tables (md, csv, json) and plots (png)

A finished stage leaves ``.stage-done`` in its folder and is skipped on the next
run; an interrupted training stage is rerun with ``--resume`` as soon as it left
anything in its folder (:func:`resumable`): the command continues from its
newest whole checkpoint, or starts from step 0 when it had none. The run folder
is locked while the pipeline runs (:mod:`comllm.locking`), and each training
command locks its own folder.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import yaml

from comllm.checkpointing import atomic_write_text
from comllm.errors import ComllmError
from comllm.experiments.config import LACS_KEYS, PipelineConfig
from comllm.experiments.config import section_flags as _flags
from comllm.locking import lock_folder
from comllm.scenario import split_override_set

DONE = ".stage-done"
_PACKAGES = (
    "comllm", "numpy", "numba", "torch", "transformers", "trl", "peft", "datasets", "accelerate",
    "gymnasium", "stable-baselines3", "tokenizers",
)  # fmt: skip


class StageError(ComllmError):
    """A stage's command failed; the message names the stage and the command."""


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision() -> str | None:
    """The checkout's commit (with ``-dirty`` if it has changes), or None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def resumable(stage: str, out: Path) -> bool:
    """Whether the training stage's folder ``out`` holds a started run, so its command needs ``--resume``.

    ``dqn train`` leaves ``config.json`` as it starts; ``comllm grpo`` its
    ``grpo_config.json``; ``comllm sft`` its tokenized data and log. Each
    command resumes from its newest whole checkpoint, or starts from step 0
    when the run was interrupted before its first one.
    """
    if not out.is_dir():
        return False
    if any(p.is_dir() for p in out.glob("checkpoint-*")):
        return True
    if stage == "dqn":
        return (out / "config.json").is_file()
    if stage in ("grpo", "comllm"):
        return (out / "grpo_config.json").is_file()
    if stage == "sft":
        return any((out / name).is_file() for name in ("dataset.safetensors", "train_log.csv", "config.json"))
    return False


class Pipeline:
    """Runs the stages of a :class:`PipelineConfig` (see the module docstring)."""

    def __init__(self, cfg: PipelineConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.log = log
        self.manifest_path = self.run_dir / "manifest.json"

    # ------------------------------------------------------------- manifest
    def _manifest(self) -> dict[str, Any]:
        if self.manifest_path.is_file():
            return json.loads(self.manifest_path.read_text())
        return {"name": self.cfg.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "stages": {}}

    def _save_manifest(self, m: dict[str, Any]) -> None:
        m.update(
            config=self.cfg.model_dump(mode="json"),
            seeds={"pipeline": self.cfg.seed, "eval": list(range(self.cfg.eval.seeds))},
            versions=package_versions(),
            git_revision=git_revision(),
            platform=platform.platform(),
        )
        m["total_wall_s"] = sum(s.get("wall_s", 0.0) for s in m["stages"].values())
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(m, indent=2) + "\n")
        tmp.replace(self.manifest_path)

    # ------------------------------------------------------------- commands
    def _comllm(self, args: list[str], train: bool = False) -> list[str]:
        la = self.cfg.launcher
        if train and la.accelerate:
            cmd = [sys.executable, "-m", "accelerate.commands.launch"]
            if la.config_file:
                cmd += ["--config_file", la.config_file]
            if la.num_processes:
                cmd += ["--num_processes", str(la.num_processes)]
            return cmd + ["-m", "comllm.cli", *args]
        return [sys.executable, "-m", "comllm.cli", *args]

    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def sft_files(self) -> list[tuple[Path, list[str]]]:
        """The SFT record files and the scenario overrides of each: ``sft-I.jsonl.gz`` per entry of
        ``data.sft_sets``, or one ``sft.jsonl.gz`` at the scenario's own settings."""
        sets = self.cfg.data.sft_sets
        if not sets:
            return [(self.data_dir() / "sft.jsonl.gz", [])]
        return [(self.data_dir() / f"sft-{i}.jsonl.gz", split_override_set(s)) for i, s in enumerate(sets)]

    def test_counts(self) -> list[int]:
        e = self.cfg.eval
        return sorted(set(self.cfg.data.test_servers) | set(e.server_counts))

    def stage_commands(self, stage: str) -> list[list[str]]:
        """The ``comllm`` argument lists a stage runs (without the interpreter), for the manifest and tests."""
        c, d, run = self.cfg, self.data_dir(), self.run_dir
        dc = c.data
        common = ["--scenario", dc.scenario, "--template", dc.template, *dc.args]
        if stage == "data":
            cmds = [
                ["data", *common, "--split", "sft", "--n", str(dc.sft_n), "--servers", dc.sft_servers,
                 "--seed", str(c.seed + 10 * i), *sum((["--set", kv] for kv in sets), []), "--out", str(path)]
                for i, (path, sets) in enumerate(self.sft_files())
            ] + [
                ["data", *common, "--split", "grpo", "--n", str(dc.grpo_n), "--servers", dc.grpo_servers,
                 "--seed", str(c.seed + 1), *sum((["--set", s] for s in dc.grpo_set), []), "--out", str(d / "grpo.jsonl.gz")],
            ]  # fmt: skip
            for n in self.test_counts():
                size = dc.test_n if n in dc.test_servers else min(dc.test_n, c.eval.zero_shot_n)
                cmds.append(["data", *common, "--split", "test", "--n", str(size), "--servers", str(n),
                             "--seed", str(c.seed + 100 + n), "--out", str(d / f"test-{n}.jsonl.gz")])  # fmt: skip
            return cmds
        if stage == "sft":
            cmd = ["sft", *_flags(c.sft, always=("model", "template")), *sum((["--data", str(f)] for f, _ in self.sft_files()), []),
                   "--out", str(run / "sft"), "--seed", str(c.seed)]  # fmt: skip
            return [cmd + c.sft.args]
        if stage == "comllm" and c.improve.method == "all-actions":
            cmd = ["improve", "--model", str(run / "sft"), "--out", str(run / stage), "--seed", str(c.seed),
                   *_flags(c.improve, skip=("method", "args"))]  # fmt: skip
            return [cmd + c.improve.args]
        if stage == "grpo" and c.grpo.method == "all-actions":  # the same stage with no look-ahead
            cmd = ["improve", "--model", str(run / "sft"), "--out", str(run / stage), "--seed", str(c.seed),
                   *_flags(c.improve, skip=("method", "args", "lam", "horizon")), "--lam", "0", "--horizon", "0"]  # fmt: skip
            return [cmd + c.improve.args + c.grpo.args]
        if stage in ("grpo", "comllm"):
            g = c.grpo
            cmd = ["grpo", "--model", str(run / "sft"), "--data", str(d / "grpo.jsonl.gz"), "--out", str(run / stage),
                   "--seed", str(c.seed)]  # fmt: skip
            if stage == "grpo":  # the ablation: the look-ahead's keys do not apply
                cmd += ["--lacs", "off", *_flags(g, skip=LACS_KEYS, always=("steps",))]
            else:
                cmd += ["--lacs", "sim", *_flags(g, always=("steps", "lacs_weight", "horizon", "rollouts"))]
            return [cmd + g.args]
        if stage == "dqn":
            return [
                ["dqn", "train", "--algo", algo, "--scenario", sc, *_flags(c.dqn, always=("steps",)), "--seed", str(c.seed),
                 "--out", str(run / "dqn" / f"{algo}-{sc}"), *c.dqn.args]  # fmt: skip
                for algo in c.dqn.algos
                for sc in c.eval.scenarios
            ]
        return []

    def _out_dir(self, cmd: list[str]) -> Path | None:
        return Path(cmd[cmd.index("--out") + 1]) if "--out" in cmd else None

    def _run_command(self, stage: str, args: list[str]) -> None:
        out = self._out_dir(args)
        if stage in ("sft", "grpo", "comllm", "dqn") and out is not None and resumable(stage, out):
            args = [*args, "--resume"]
        full = self._comllm(args, train=stage in ("sft", "grpo", "comllm"))
        self.log(f"[{stage}] $ comllm {' '.join(args)}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        log_path = self.run_dir / "logs" / f"{stage}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as f:
            f.write(f"$ {' '.join(full)}\n")
            f.flush()
            proc = subprocess.run(full, stdout=f, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0:
            tail = log_path.read_text().splitlines()[-1:] or [""]
            raise StageError(
                f"stage '{stage}' failed (exit {proc.returncode}) running 'comllm {' '.join(args)}': {tail[0]} "
                f"(full log: {log_path})"
            )

    # ---------------------------------------------------------------- stages
    def stage_dir(self, stage: str) -> Path:
        return {"data": self.data_dir(), "dqn": self.run_dir / "dqn"}.get(stage, self.run_dir / stage)

    def is_done(self, stage: str) -> bool:
        return (self.stage_dir(stage) / DONE).is_file()

    def enabled(self, stage: str) -> bool:
        if stage in ("grpo", "comllm"):
            return self.cfg.grpo.enabled
        if stage == "dqn":
            return self.cfg.dqn.enabled
        return True

    def run(self, stages: list[str] | None = None, force: bool = False) -> dict[str, Any]:
        """Run the configured stages (or ``stages``); finished ones are skipped unless ``force``.

        The run folder is locked meanwhile: a second pipeline on it stops with a
        :class:`~comllm.locking.LockError` naming this one's pid.
        """
        with lock_folder(self.run_dir, "pipeline", log=self.log):
            return self._run(stages, force)

    def _run(self, stages: list[str] | None, force: bool) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False))
        manifest = self._manifest()
        for stage in stages or self.cfg.stages:
            if not self.enabled(stage):
                continue
            if self.is_done(stage) and not force:
                self.log(f"[{stage}] done already, skipped")
                continue
            entry = manifest["stages"].setdefault(stage, {})
            entry.update(status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"))
            self._save_manifest(manifest)
            t0 = time.perf_counter()
            try:
                if stage == "eval":
                    from comllm.experiments.evaluation import run_evaluation

                    run_evaluation(self, log=self.log)
                elif stage == "report":
                    from comllm.report.build import build_report

                    build_report(self.run_dir, log=self.log)
                else:
                    cmds = self.stage_commands(stage)
                    entry["commands"] = ["comllm " + " ".join(c) for c in cmds]
                    for cmd in cmds:
                        self._run_command(stage, cmd)
            except BaseException:
                entry.update(status="interrupted", wall_s=entry.get("wall_s", 0.0) + time.perf_counter() - t0)
                self._save_manifest(manifest)
                raise
            wall = time.perf_counter() - t0
            entry.update(status="done", wall_s=entry.get("wall_s", 0.0) + wall, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
            self.stage_dir(stage).mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.stage_dir(stage) / DONE, json.dumps({"wall_s": wall}) + "\n")
            self._save_manifest(manifest)
            self.log(f"[{stage}] finished in {wall:.1f} s")
        return manifest
