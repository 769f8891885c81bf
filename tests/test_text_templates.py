"""Templates: state -> text -> state round trips (1..16 servers, both languages), the official format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comllm.cost import action_costs
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator
from comllm.state import StateBatch
from comllm.text import (
    INSTRUCTION_ZH,
    TEMPLATES,
    TextError,
    get_template,
    parse_answer,
    parse_field_items,
    parse_prompt,
    reasoning_trace,
)
from tests.fixtures.text_states import random_state

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "MEC_data.json"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
STATEFUL = ["paper", "paper-zh", "annotated"]


@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.parametrize("n_servers", range(1, 17))
def test_state_text_state_round_trip(name: str, n_servers: int) -> None:
    t = get_template(name)
    rng = np.random.default_rng(n_servers)
    for _ in range(5):
        q = t.quantize(random_state(rng, n_servers))
        text = t.render_prompt(q)
        assert t.parse_prompt(text) == q
        assert parse_prompt(text) == q  # the module-level reader detects the language
        assert t.render_prompt(t.parse_prompt(text)) == text


@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("n_servers", [1, 2, 6, 11, 16])
def test_action_text_action_round_trip(name: str, n_servers: int) -> None:
    t = get_template(name)
    answers = t.answers(n_servers)
    assert len(answers) == n_servers + 1 and len(set(answers)) == n_servers + 1
    for a in range(n_servers + 1):
        assert t.render_answer(a) == answers[a]
        assert t.parse_answer(t.render_answer(a), n_servers) == a
    assert t.parse_answer(t.render_answer(n_servers + 1), n_servers) is None


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 16), name=st.sampled_from(STATEFUL))
def test_round_trip_property(seed: int, n: int, name: str) -> None:
    t = get_template(name)
    q = t.quantize(random_state(np.random.default_rng(seed), n))
    assert t.parse_prompt(t.render_prompt(q)) == q


def test_quantize_is_idempotent_and_drops_device_and_slot() -> None:
    s = random_state(np.random.default_rng(0), 4)
    for name in STATEFUL:
        t = get_template(name)
        q = t.quantize(s)
        assert t.quantize(q) == q
        assert (q.device, q.slot) == (-1, -1)
        assert abs(q.task_size - s.task_size) <= 0.5 * 10 ** -t.decimals + 1e-12


def test_simulator_states_round_trip_and_keep_their_oracle() -> None:
    sim = MECSimulator(load_scenario("paper-6"), seed=3)
    states = []
    for _ in range(60):
        b = sim.observe()
        states += b.states()
        sim.step(np.argmin(action_costs(b), axis=1) if len(b) else np.zeros(0, dtype=np.int64))
    assert len(states) > 100
    t = get_template("paper")
    parsed = [t.parse_prompt(t.render_prompt(s)) for s in states]
    a = np.argmin(action_costs(StateBatch.from_states(states)), axis=1)
    b = np.argmin(action_costs(StateBatch.from_states(parsed)), axis=1)
    assert (a == b).mean() > 0.99  # 4 decimals change the argmin only at near-ties


def test_english_prompt_layout() -> None:
    s = get_template("paper").quantize(random_state(np.random.default_rng(1), 3, history_len=10))
    lines = get_template("paper").render_prompt(s).splitlines()
    # header, 7 fields, device, one line per server
    assert len(lines) == 1 + 7 + 1 + 3
    assert lines[1].startswith("task size: ") and lines[1].endswith(" Mbit")
    assert lines[-1].startswith("server 3: type ")
    for line in lines[1:]:
        assert "," not in line.split(":", 1)[1].replace(", ", "|")  # no thousands separators
        assert "e+" not in line and "e-" not in line


def test_annotated_lines_carry_the_cost_model() -> None:
    s = random_state(np.random.default_rng(2), 5)
    text = get_template("annotated").render_prompt(s)
    costs = action_costs(StateBatch.from_states([s]))[0]
    est = [float(line.rsplit("est ", 1)[1].split()[0]) for line in text.splitlines() if line.startswith("if ")]
    assert np.allclose(est, costs, atol=0.005)
    assert len(est) == s.n_actions


def test_estimates_template_is_one_line_per_action_and_cannot_be_parsed() -> None:
    s = random_state(np.random.default_rng(3), 7)
    t = get_template("estimates")
    lines = t.render_prompt(s).splitlines()
    costs = action_costs(StateBatch.from_states([s]))[0]
    assert lines[0].startswith("local: est ") and lines[7].startswith("server 7: est ")
    assert np.allclose([float(x.split()[-1]) for x in lines], costs, atol=0.005)
    with pytest.raises(TextError, match="does not carry the state"):
        t.parse_prompt("\n".join(lines))


def test_reasoning_trace_ends_in_the_oracle_and_parses() -> None:
    rng = np.random.default_rng(4)
    for lang, name in (("en", "paper"), ("zh", "paper-zh")):
        t = get_template(name)
        for n in (1, 3, 12):
            s = random_state(rng, n)
            oracle = int(np.argmin(action_costs(StateBatch.from_states([s]))[0]))
            trace = reasoning_trace(s, lang=lang)
            assert len(trace.splitlines()) == n + 2
            assert parse_answer(trace, n) == oracle  # the trace's last line names the best action
            answer = t.render_answer(oracle, reasoning=t.reasoning_trace(s))
            assert answer.endswith(t.answers(n)[oracle])
            assert t.parse_answer(answer, n) == oracle


def _check_reference_record(record: dict) -> None:
    zh = get_template("paper-zh")
    state = parse_field_items(list(record["input"].items()))
    assert zh.render_fields(state) == record["input"]  # field for field, value string for value string
    costs = action_costs(StateBatch.from_states([state]))[0]
    assert zh.render_answer(int(np.argmin(costs))) == record["output"]["action_name"]


def test_shipped_reference_sample_reproduced_and_labelled_server_1() -> None:
    if not REFERENCE.is_file():
        pytest.skip("shared/reference/MEC_data.json is not present")
    record = json.loads(REFERENCE.read_text())
    _check_reference_record(record)
    assert get_template("paper-zh").instruction == record["instruction"]
    state = parse_field_items(list(record["input"].items()))
    assert parse_answer(record["output"]["action_name"], state.n_servers) == 1


def test_own_reference_fixture_reproduced() -> None:
    records = json.loads((FIXTURES / "reference_records.json").read_text())
    assert len(records) == 3
    for r in records:
        _check_reference_record(r)


def test_chinese_prompt_is_instruction_then_fields() -> None:
    s = random_state(np.random.default_rng(5), 2)
    text = get_template("paper-zh").render_prompt(s)
    assert text.startswith(INSTRUCTION_ZH + "\n\n任务大小: ")
    assert text.splitlines()[-1].startswith("边缘服务器2: 类型 ")


def test_parse_errors_name_the_field() -> None:
    t = get_template("paper")
    text = t.render_prompt(t.quantize(random_state(np.random.default_rng(6), 2)))
    with pytest.raises(TextError, match="'task size'"):
        t.parse_prompt("\n".join(x for x in text.splitlines() if not x.startswith("task size")))
    bad = text.replace("upload rate: ", "upload rate: fast ")
    with pytest.raises(TextError, match="'upload rate'.*not a number"):
        t.parse_prompt(bad)
    with pytest.raises(TextError, match="unknown unit"):
        t.parse_prompt(text.replace(" Mbit/slot", " furlongs"))
    with pytest.raises(TextError, match="numbered 1..N"):
        t.parse_prompt(text.replace("server 2:", "server 5:"))
    with pytest.raises(TextError, match="missing attribute 'queued'"):
        t.parse_prompt(re.sub(r", queued [^,]*", "", text))
    with pytest.raises(TextError, match="unknown key"):
        parse_field_items([("colour", "red")])


def test_unknown_template_is_a_clear_error() -> None:
    with pytest.raises(TextError, match="unknown template 'nope'"):
        get_template("nope")
    assert get_template(None) is TEMPLATES["paper"]


def test_templates_of_before_the_fresh_view_write_their_frozen_text() -> None:
    """Shipped checkpoints keep their prompts: every pre-fresh-view template writes what it wrote at f62985c."""
    from tests.fixtures import frozen_templates

    frozen = frozen_templates.read()
    now = frozen_templates.renderings()
    assert set(now) == set(frozen)
    changed = [k for k in frozen if now[k] != frozen[k]]
    assert not changed, f"{len(changed)} frozen texts changed, e.g. {changed[:3]}"
