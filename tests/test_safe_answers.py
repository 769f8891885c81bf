"""Answers: only a whole action number is an action, and reading any text takes linear time (README, "What is safe").

``server -1``, ``-3``, ``server 3.5`` and ``server 1e3`` name no action (``None``);
every answer pattern is linear (no backtracking into runs of spaces), the parser
reads at most the last ``MAX_ANSWER_CHARS`` characters, and an error about a
record quotes at most a few hundred characters of it.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from comllm.data import DataError, read_records
from comllm.text import parse_answer
from comllm.text.answers import MAX_ANSWER_CHARS

FIXTURE = Path(__file__).parent / "fixtures" / "reference_records.json"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("server -1", None),
        ("-3", None),
        ("+2", None),
        ("server 3.5", None),
        ("server 35.5", None),
        ("server 1e3", None),
        ("server 2E1", None),
        ("action -1", None),
        ("服务器3.5", None),
        ("服务器-1", None),
        ("3.5", None),
        # still read as before
        ("server-10", 10),
        ("server - 2", 2),
        ("server 2.", 2),
        ("  3. ", 3),
        ("server #3!", 3),
        ("answer: server 4, because its queue is empty", 4),
        ("卸载到边缘服务器5。", 5),
    ],
)
def test_only_whole_action_numbers_are_actions(text, expected):
    assert parse_answer(text, 12) == expected


ADVERSARIAL = [
    "服务器" + " " * 16_000,
    ("服务器" + " " * 100) * 300,
    "server" + " " * 16_000,
    "edge" + " " * 16_000 + "x",
    "answer" + " " * 16_000,
    "answer is" + " " * 16_000,
    "server " * 5_000,
    "action" + "-" * 16_000,
    "1" * 50_000,
    " " * 200_000 + "local",
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_parsing_is_fast_on_adversarial_text(text):
    t0 = time.perf_counter()
    parse_answer(text, 6)
    assert time.perf_counter() - t0 < 0.5


def test_only_the_tail_is_read():
    assert parse_answer("server 2" + " " * (2 * MAX_ANSWER_CHARS), 3) is None
    assert parse_answer("x" * (2 * MAX_ANSWER_CHARS) + " answer: server 2", 3) == 2


def _official(tmp_path: Path, mutate) -> Path:
    recs = json.loads(FIXTURE.read_text())
    bad = copy.deepcopy(recs[0])
    mutate(bad)
    path = tmp_path / "official.json"
    path.write_text(json.dumps([bad], ensure_ascii=False))
    return path


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.__setitem__("output", {"action_name": "服务器" + " " * 27_000}), "output.action_name"),
        (lambda r: r["input"].__setitem__("任务大小", "4.1 " + " " * 27_000 + "x"), "input.任务大小"),
        (lambda r: r["input"].__setitem__("边缘服务器1", "服务器" + " " * 27_000 + "1"), "input.边缘服务器1"),
    ],
)
def test_a_27_kb_record_is_read_fast_and_quoted_short(tmp_path, mutate, field):
    path = _official(tmp_path, mutate)
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        list(read_records(path))
    assert time.perf_counter() - t0 < 2.0
    msg = str(err.value)
    assert msg.startswith(f"record 1: field '{field}'") and len(msg) <= 300 and "\n" not in msg, msg
