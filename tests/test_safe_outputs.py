"""Outputs that never destroy: every output path is checked before any work (README, "What is safe").

An output equal to an input (also through a symbolic or hard link) or to another
output, an existing output that is not a regular file, and an output whose folder
cannot be written are refused in one line naming the option and the path, exit 2;
the input is left as it was and nothing is written. Inputs that are not regular
files are named as what they are.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from comllm.data import generate_records, write_records
from comllm.outputs import PathError, check_paths, input_problem
from comllm.scenario import load_scenario
from tests.safe_support import cli, digest, refused

SIM = ("simulate", "--scenario", "small", "--slots", "5", "--seeds", "1", "--warmup", "0")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "d.jsonl"
    write_records(path, generate_records(load_scenario("small"), 5, split="sft", template="paper", seed=0))
    return path


def test_eval_data_json_onto_its_data_is_refused_and_the_data_kept(capsys, data_file):
    before = digest(data_file)
    refused(capsys, "eval-data", "--data", data_file, "--json", data_file, needles=("--json", str(data_file), "--data"))
    assert digest(data_file) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_output_that_is_the_input_under_another_name_is_refused(capsys, data_file, tmp_path, link):
    other = tmp_path / "alias.jsonl"
    (os.symlink if link == "symlink" else os.link)(data_file, other)
    before = digest(data_file)
    refused(capsys, "eval-data", "--data", data_file, "--json", other, needles=("--json", "alias.jsonl", "--data"))
    assert digest(data_file) == before


@pytest.mark.parametrize("command", [SIM, ("sweep", "--scenario", "small", "--slots", "5", "--seeds", "1", "--warmup", "0")])
def test_two_outputs_naming_one_file_are_refused(capsys, tmp_path, command):
    x = tmp_path / "x"
    refused(capsys, *command, "--json", x, "--markdown", x, needles=("--json", "--markdown", str(x)))
    assert not x.exists()


@pytest.mark.parametrize(
    "target, needle",
    [
        ("/proc/comllm-results.json", "cannot write in '/proc'"),
        ("{file}/x.json", "is a file, not a folder"),
        ("{folder}", "is a folder, not a regular file"),
        ("/dev/null", "is a character device"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_run(capsys, tmp_path, target, needle):
    file, folder = tmp_path / "f.txt", tmp_path / "sub"
    file.write_text("keep me\n")
    folder.mkdir()
    path = target.format(file=file, folder=folder)
    refused(capsys, *SIM, "--json", path, needles=("--json", path, needle))
    assert file.read_text() == "keep me\n" and folder.is_dir() and not any(folder.iterdir())


@pytest.mark.parametrize("kind", ["fifo", "devnull"])
def test_data_out_onto_a_special_file_is_refused_and_the_file_kept(capsys, tmp_path, kind):
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
        check = stat.S_ISFIFO
    else:
        target, check = Path("/dev/null"), stat.S_ISCHR
    refused(capsys, "data", "--scenario", "small", "--n", "3", "--out", target, needles=("--out", str(target)))
    assert check(target.stat().st_mode)


def test_data_out_onto_its_scenario_file_is_refused(capsys, tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text("base: small\narrival_prob: 0.2\n")
    before = digest(sc)
    refused(capsys, "data", "--scenario", sc, "--n", "3", "--out", sc, needles=("--out", "--scenario"))
    assert digest(sc) == before


def test_a_folder_output_that_is_a_file_is_refused(capsys, tmp_path, data_file):
    f = tmp_path / "model.txt"
    f.write_text("x")
    refused(capsys, "benchmark", "--out", f, "--slots", "5", needles=("--out", str(f), "is a file, not a folder"))
    assert f.read_text() == "x"


@pytest.mark.parametrize(
    "kind, needle",
    [("folder", "is a folder, not a file"), ("fifo", "is a FIFO"), ("devnull", "is a character device"),
     ("missing", "does not exist")],
)  # fmt: skip
def test_data_inputs_are_named_as_what_they_are(capsys, tmp_path, kind, needle):
    path = {"folder": tmp_path, "devnull": Path("/dev/null"), "missing": tmp_path / "nope.jsonl"}.get(kind)
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    refused(capsys, "eval-data", "--data", path, needles=("--data", str(path), needle))
    assert input_problem(path) is not None and needle.split(" (")[0] in input_problem(path)


def test_outputs_that_are_fine_pass_and_are_written(capsys, tmp_path):
    out, md = tmp_path / "new" / "deep" / "r.json", tmp_path / "r.md"
    check_paths({"--json": out, "--markdown": md})  # a missing folder is created later: fine
    code, _, err = cli(capsys, *SIM, "--json", out, "--markdown", md)
    assert code == 0, err
    assert out.is_file() and md.read_text().startswith("| policy")


def test_check_paths_compares_every_pair():
    with pytest.raises(PathError, match="--a and --b both name"):
        check_paths({"--a": "x.json", "--b": "./x.json"})
    with pytest.raises(PathError, match="is the --data file"):
        check_paths({"--json": "d.jsonl"}, {"--data": ["other.jsonl", "d.jsonl"]})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_is_refused(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        refused(capsys, *SIM, "--json", ro / "r.json", needles=("--json", "cannot write in"))
    finally:
        ro.chmod(0o700)


def test_the_installed_command_refuses_in_one_line(data_file):
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "comllm"
    before = digest(data_file)
    proc = subprocess.run([str(exe), "eval-data", "--data", str(data_file), "--json", str(data_file)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: --json '{data_file}' is the --data file: writing it would destroy the input"]
    assert digest(data_file) == before
