"""The ``comllm data`` and ``comllm eval-data`` commands on small n."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comllm.cli import app
from comllm.data import DataError, read_records
from comllm.errors import ComllmError

runner = CliRunner()
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reference_records.json"


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_data_jsonl_deterministic_and_readable(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        res = _run("data", "--scenario", "small", "--n", "40", "--split", "test", "--seed", "3", "--servers", "2-4",
                   "--out", str(out))  # fmt: skip
        assert res.exit_code == 0, res.output
    assert a.read_bytes() == b.read_bytes()
    recs = list(read_records(a))
    assert len(recs) == 40 and {r.split for r in recs} == {"test"} and {r.template for r in recs} == {"paper"}
    assert {r.n_servers for r in recs} <= {2, 3, 4}
    assert "bytes/record" in res.output and "records/s" in res.output


def test_data_reference_in_chinese(tmp_path: Path) -> None:
    out = tmp_path / "ref.json"
    res = _run("data", "--n", "25", "--lang", "zh", "--format", "reference", "--out", str(out))
    assert res.exit_code == 0, res.output
    objs = json.loads(out.read_text())
    assert len(objs) == 25 and objs[0]["input"]["任务大小"].endswith(" Mbits")
    assert all(o["output"]["action_name"].startswith(("本地执行", "卸载到边缘服务器")) for o in objs)
    recs = list(read_records(out))
    assert [r.source_action for r in recs] == [r.oracle_action for r in recs]


def test_data_reference_in_chinese_with_the_fresh_view(tmp_path: Path) -> None:
    out = tmp_path / "ref2.json"
    res = _run("data", "--n", "25", "--template", "paper-zh-v2", "--format", "reference", "--out", str(out))
    assert res.exit_code == 0, res.output
    objs = json.loads(out.read_text())
    assert all("本时间槽到达任务数" in o["input"] and "在途任务量" in o["input"]["边缘服务器1"] for o in objs)
    recs = list(read_records(out))
    assert {r.template for r in recs} == {"paper-zh-v2"} and max(r.task_state().slot_arrivals for r in recs) > 0


def test_data_reasoning_and_templates(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    res = _run("data", "--n", "5", "--template", "annotated", "--reasoning", "--split", "grpo", "--out", str(out))
    assert res.exit_code == 0, res.output
    recs = list(read_records(out))
    assert all(r.template == "annotated" and "\nanswer: " in r.answer for r in recs)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lang", "zh", "--template", "paper"], "--template 'paper' is en"),
        (["--format", "reference", "--template", "estimates"], "--format reference"),
        (["--split", "train"], "--split 'train'"),
        (["--servers", "7-3"], "--servers '7-3'"),
        (["--template", "fancy"], "unknown template 'fancy'"),
    ],
)
def test_data_bad_options(tmp_path: Path, args: list[str], needle: str) -> None:
    res = _run("data", "--n", "3", "--out", str(tmp_path / "x.jsonl"), *args)
    assert res.exit_code != 0 and isinstance(res.exception, ComllmError)  # main() prints it as one line
    assert needle in str(res.exception)


def test_eval_data_json_and_skip_bad(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    assert _run("data", "--n", "30", "--scenario", "small", "--out", str(data)).exit_code == 0
    lines = data.read_text().splitlines()
    lines.insert(3, '{"broken": ')
    lines.insert(7, json.dumps({"instruction": "x", "input": {"任务大小": "1 Mbits"}}, ensure_ascii=False))
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval.json"
    res = _run("eval-data", "--data", str(data), "--policy", "greedy", "--json", str(out), "--skip-bad")
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    for key in ("n", "accuracy", "perf_ratio", "avg_cost", "oracle_avg_cost", "drop_rate", "invalid_rate", "jain_index"):
        assert key in r
    assert r["n"] == 30 and r["skipped"] == 2 and r["accuracy"] == 1.0 and r["perf_ratio"] == 1.0
    assert "skipped 2 malformed" in res.output
    res = _run("eval-data", "--data", str(data), "--policy", "local")
    assert isinstance(res.exception, DataError) and str(res.exception).startswith("record 4: invalid JSON")


def test_eval_data_on_the_official_format_and_several_policies(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    res = _run("eval-data", "--data", str(FIXTURE), "--policy", "greedy", "--policy", "local", "--json", str(out))
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert [r["policy"] for r in rows] == ["greedy", "local"]
    assert rows[0]["accuracy"] == 1.0 and rows[1]["accuracy"] == pytest.approx(1 / 3)


def test_user_error_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 0, "prompt": "x"}\n')
    proc = subprocess.run(
        [sys.executable, "-c", "from comllm.cli import main; main()", "eval-data", "--data", str(bad)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "record 1: missing field 'split'" in lines[0]
