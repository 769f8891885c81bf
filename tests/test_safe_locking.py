"""What the project promises about two runs in one folder (README, "What is safe").

* Every training command (``comllm sft``, ``comllm grpo``, ``comllm dqn train``)
  and ``comllm pipeline`` locks its output folder: a second run into the same
  folder stops at once, exit 2, with one line naming the first run's pid.
* A lock left by a run that was killed (SIGKILL) is stale: the next run takes
  it over and says whose it was.
* A clean exit removes the lock (and the folder, if the run created it and
  wrote nothing into it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comllm.cli import app
from comllm.locking import LOCK_FILE, FolderLock, LockError, lock_folder
from tests.test_lm_support import make_records

ROOT = Path(__file__).resolve().parents[1]
HOLD = "import sys, time; from comllm.locking import FolderLock; FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def held(tmp_path: Path):
    folder = tmp_path / "out"
    proc = _holder(folder)
    yield folder, proc.pid
    if proc.poll() is None:
        _kill(proc)


def test_a_second_lock_is_refused_naming_the_holder(held) -> None:
    folder, pid = held
    with pytest.raises(LockError, match=rf"'{folder}' is in use by another run \(pid {pid}"):
        FolderLock(folder).acquire()


def test_a_second_sft_exits_2_with_one_line_naming_the_pid(held, tmp_path: Path) -> None:
    folder, pid = held
    data = make_records(tmp_path / "d.jsonl", 8, servers="2", seed=1)
    proc = subprocess.run(
        [sys.executable, "-m", "comllm.cli", "sft", "--data", str(data), "--out", str(folder), "--template",
         "estimates-compact", "--steps", "1", "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"pid {pid}" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]  # the refused run wrote nothing


@pytest.mark.parametrize("command", [
    ["dqn", "train", "--scenario", "small", "--steps", "300", "--no-progress"],
    ["grpo", "--data", "DATA", "--steps", "1", "--no-progress"],
])  # fmt: skip
def test_every_training_command_refuses_a_held_folder(command: list[str], held, tmp_path: Path) -> None:
    folder, pid = held
    data = make_records(tmp_path / "g.jsonl", 4, servers="2", seed=3, split="grpo")
    args = [str(data) if a == "DATA" else a for a in command] + ["--out", str(folder)]
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, LockError), res.output
    assert f"pid {pid}" in str(res.exception)


def test_the_pipeline_refuses_a_held_run_folder(held) -> None:
    from comllm.experiments.config import load_config
    from comllm.experiments.pipeline import Pipeline

    folder, pid = held
    cfg = load_config(ROOT / "configs" / "tiny.yaml", {"run_dir": str(folder)})
    with pytest.raises(LockError, match=f"pid {pid}"):
        Pipeline(cfg, log=lambda s: None).run(["data"])
    assert not (folder / "manifest.json").exists()


def test_a_stale_lock_after_sigkill_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    proc = _holder(folder)
    _kill(proc)
    assert (folder / LOCK_FILE).is_file()  # the killed holder could not clean up
    said: list[str] = []
    with FolderLock(folder, log=said.append) as lock:
        assert lock.held
        assert f"pid {os.getpid()}" in (folder / LOCK_FILE).read_text().replace('"pid": ', "pid ")
    assert len(said) == 1 and f"stale lock of pid {proc.pid}" in said[0] and "not running" in said[0]


def test_a_clean_exit_removes_the_lock_and_an_empty_folder_it_created(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "out"
    with FolderLock(folder):
        assert (folder / LOCK_FILE).is_file()
    assert not folder.exists()
    kept = tmp_path / "kept"
    with FolderLock(kept):
        (kept / "result.txt").write_text("x")
    assert sorted(p.name for p in kept.iterdir()) == ["result.txt"]
    with FolderLock(kept), pytest.raises(LockError, match="in use"):  # the same process twice: refused too
        FolderLock(kept).acquire()


@pytest.mark.slow  # two real trainings (about 25 s on a loaded 2-core machine); the refusal itself is tested above
def test_two_sft_runs_started_together_one_refused(tmp_path: Path) -> None:
    """Two ``comllm sft`` with the same --out, started together: one trains, the other exits 2 naming it."""
    data = make_records(tmp_path / "d.jsonl", 64, servers="2", seed=1)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "comllm.cli", "sft", "--data", str(data), "--out", str(out), "--template",
           "estimates-compact", "--steps", "5", "--hidden", "16", "--layers", "1", "--heads", "2",
           "--intermediate", "32", "--batch-size", "8", "--threads", "1", "--no-progress"]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    results = [(p.pid, *p.communicate(timeout=300), p.returncode) for p in procs]
    codes = sorted(r[3] for r in results)
    assert codes == [0, 2], results
    (winner,) = [r for r in results if r[3] == 0]
    (loser,) = [r for r in results if r[3] == 2]
    assert loser[2].strip().splitlines() == [loser[2].strip()] and f"pid {winner[0]}" in loser[2]
    assert not (out / LOCK_FILE).exists()


def test_other_ranks_of_a_launcher_take_no_lock(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    with lock_folder(tmp_path / "x"):
        assert not (tmp_path / "x").exists()


def test_lock_folder_nests_within_one_process(tmp_path: Path) -> None:
    """The command line locks before its slow imports, the training function again: one hold, released once."""
    folder = tmp_path / "out"
    (folder).mkdir()
    with lock_folder(folder):
        with lock_folder(folder):
            assert (folder / LOCK_FILE).is_file()
        assert (folder / LOCK_FILE).is_file()
    assert not (folder / LOCK_FILE).exists()
