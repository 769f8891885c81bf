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


def test_v2_templates_and_the_other_surfaces_write_their_frozen_text() -> None:
    """The -v2 templates, the text-level perturbations, perturbed field forms and read-backs, instructions, answers."""
    from tests.fixtures import frozen_templates

    frozen = frozen_templates.read(frozen_templates.PATH_V2)
    now = frozen_templates.renderings_v2()
    assert set(now) == set(frozen)
    changed = [k for k in frozen if now[k] != frozen[k]]
    assert not changed, f"{len(changed)} frozen texts changed, e.g. {changed[:3]}"


# ------------------------------------------------------------ the fresh view (-v2 templates)
V2_STATEFUL = ["paper-v2", "paper-zh-v2", "annotated-v2"]
V2 = [*V2_STATEFUL, "estimates-v2", "estimates-compact-v2", "annotated-compact-v2", "raw-compact-v2", "lean-v2"]


def _fresh_example():
    """The state of the docstring examples: 3 servers, traffic in flight to servers 1 and 3."""
    from dataclasses import replace

    from tests.test_text_perturb import _example_state

    s = _example_state()
    servers = tuple(
        replace(v, incoming_mbit=m, incoming_tasks=k) for v, m, k in zip(s.servers, (3.2, 0.0, 12.5), (2, 0, 3))
    )
    return replace(s, servers=servers, slot_arrivals=4, slot_pending=3)


def test_lean_sharing_is_lean_v2_printing_greedy_sharings_estimate() -> None:
    """The docstring's example; every line as ``lean-v2``'s but the estimate, which is ``greedy:sharing``'s."""
    from comllm.cost import ESTIMATES, estimate_costs
    from comllm.policies import make_policy
    from comllm.state import StateBatch

    s = _fresh_example()
    lean, sharing = get_template("lean-v2"), get_template("lean-sharing")
    assert (lean.printed_estimate, sharing.printed_estimate) == ("incoming", "sharing")
    a, b = lean.render_prompt(s).splitlines(), sharing.render_prompt(s).splitlines()
    assert b[2:5] == [
        "server 1: est 3.52 active 0 queue 0 incoming 3.2",
        "server 2: est 4.13 active 2 queue 7.27 incoming 0",
        "server 3: est 23.59 active 5 queue 31.5 incoming 12.5",
    ]
    drop_est = lambda line: re.sub(r"est [0-9.]+", "est", line)  # noqa: E731
    assert [drop_est(x) for x in a] == [drop_est(x) for x in b] and a != b
    batch = StateBatch.from_states([s])
    est = [float(x.split("est ")[1].split()[0]) for x in b[1:5]]
    assert est == pytest.approx(estimate_costs(batch, "sharing")[0], abs=0.005)
    assert np.array_equal(sharing.estimate_costs(batch), estimate_costs(batch, "sharing"))
    # each named estimate is its greedy policy's cost: the argmin is the policy's action
    from tests.fixtures.text_states import random_fresh_state

    rng = np.random.default_rng(5)
    many = StateBatch.from_states([random_fresh_state(rng, 6, history_len=10) for _ in range(200)])
    picks = {}
    for name in ESTIMATES:
        policy = make_policy("greedy" if name == "paper" else f"greedy:{name}")
        picks[name] = policy.act(many)
        assert np.array_equal(picks[name], np.argmin(estimate_costs(many, name), axis=1))
    assert (picks["sharing"] != picks["incoming"]).any() and (picks["incoming"] != picks["paper"]).any()
    with pytest.raises(ValueError, match="estimate 'nope' is not one of paper, incoming, sharing"):
        estimate_costs(batch, "nope")


def test_every_template_has_a_v2_and_the_v2_carry_the_fresh_view() -> None:
    from comllm.text.template import ALL_FIELDS, FRESH_VIEW_FIELDS

    born_fresh = {"lean-v2"}  # templates made for the fresh view, without an older twin
    named_fresh = {"lean-sharing"}  # fresh-view templates named for the estimate they print, not by the suffix
    old = [n for n in TEMPLATES if not n.endswith("-v2") and n not in named_fresh]
    assert sorted([f"{n}-v2" for n in old] + sorted(born_fresh)) == sorted(V2)
    assert sorted(V2) == sorted(n for n in TEMPLATES if n.endswith("-v2"))
    for name in (*V2, *named_fresh):
        t = get_template(name)
        assert t.fresh_view and t.carried == ALL_FIELDS
        if name not in born_fresh | named_fresh:
            assert t.lang == get_template(name[:-3]).lang and t.decimals == get_template(name[:-3]).decimals
    for name in old:
        assert not get_template(name).fresh_view and not get_template(name).carried & FRESH_VIEW_FIELDS


@pytest.mark.parametrize("name", V2_STATEFUL)
@pytest.mark.parametrize("n_servers", [1, 2, 3, 6, 11, 16])
def test_v2_state_text_state_round_trip_keeps_the_fresh_view(name: str, n_servers: int) -> None:
    from tests.fixtures.text_states import random_fresh_state

    t = get_template(name)
    rng = np.random.default_rng(100 + n_servers)
    for _ in range(5):
        s = random_fresh_state(rng, n_servers)
        q = t.quantize(s)
        assert q.slot_arrivals == s.slot_arrivals and q.slot_pending == s.slot_pending
        assert [v.incoming_tasks for v in q.servers] == [v.incoming_tasks for v in s.servers]
        assert all(abs(a.incoming_mbit - b.incoming_mbit) <= 0.5 * 10**-t.decimals + 1e-12
                   for a, b in zip(q.servers, s.servers))  # fmt: skip
        text = t.render_prompt(q)
        assert t.parse_prompt(text) == q == parse_prompt(text)
        assert t.render_prompt(t.parse_prompt(text)) == text
        assert t.quantize(q) == q
        # the template of before reads the same prompt without the fresh view (it ignores nothing else)
        assert get_template(name[:-3]).quantize(q) == get_template(name[:-3]).quantize(parse_prompt(text))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 16), name=st.sampled_from(V2_STATEFUL))
def test_v2_round_trip_property(seed: int, n: int, name: str) -> None:
    from tests.fixtures.text_states import random_fresh_state

    t = get_template(name)
    q = t.quantize(random_fresh_state(np.random.default_rng(seed), n))
    assert t.parse_prompt(t.render_prompt(q)) == q


def test_templates_of_before_drop_the_fresh_view_and_read_it_as_zero() -> None:
    from dataclasses import replace

    from tests.fixtures.text_states import random_fresh_state

    s = random_fresh_state(np.random.default_rng(13), 4)
    assert s.slot_arrivals > 0 and any(v.incoming_tasks for v in s.servers)
    for name in STATEFUL:
        t = get_template(name)
        q = t.quantize(s)
        assert (q.slot_arrivals, q.slot_pending) == (0, 0)
        assert all((v.incoming_mbit, v.incoming_tasks) == (0.0, 0) for v in q.servers)
        assert parse_prompt(t.render_prompt(q)) == q
        no_fresh = replace(
            s, servers=tuple(replace(v, incoming_mbit=0.0, incoming_tasks=0) for v in s.servers),
            slot_arrivals=0, slot_pending=0,
        )  # fmt: skip
        assert t.render_prompt(s) == t.render_prompt(no_fresh)  # the fresh view changes nothing in the text


def test_official_records_without_the_fresh_view_read_it_as_zero() -> None:
    """The official format has no fresh-view field: our fixture in that format reads 0 for each."""
    records = json.loads((FIXTURES / "reference_records.json").read_text())
    for r in records:
        assert not any(k.startswith(("本时间槽", "在途")) or "在途" in str(v) for k, v in r["input"].items())
        s = parse_field_items(list(r["input"].items()))
        assert (s.slot_arrivals, s.slot_pending) == (0, 0)
        assert all((v.incoming_mbit, v.incoming_tasks) == (0.0, 0) for v in s.servers)
    if REFERENCE.is_file():
        s = parse_field_items(list(json.loads(REFERENCE.read_text())["input"].items()))
        assert s.slot_arrivals == 0 and all(v.incoming_mbit == 0.0 for v in s.servers)


def test_paper_zh_v2_is_the_official_format_plus_chinese_labelled_fields() -> None:
    from tests.fixtures.text_states import random_fresh_state

    zh, zh2 = get_template("paper-zh"), get_template("paper-zh-v2")
    q = zh2.quantize(random_fresh_state(np.random.default_rng(14), 3, history_len=10))
    old, new = zh.render_fields(q), zh2.render_fields(q)
    assert list(new)[: len(old) - 3] == list(old)[: len(old) - 3]  # the official fields first, in order
    assert new["本时间槽到达任务数"] == q.slot_arrivals and new["本时间槽未决任务数"] == q.slot_pending
    assert set(new) - set(old) == {"本时间槽到达任务数", "本时间槽未决任务数"}
    for j, v in enumerate(q.servers, start=1):
        fresh = f"在途任务量{v.incoming_mbit:.4f} Mbits, 在途任务数{v.incoming_tasks}, "
        assert fresh in new[f"边缘服务器{j}"]
        assert new[f"边缘服务器{j}"].replace(fresh, "") == old[f"边缘服务器{j}"]
    for k in old:
        if not k.startswith("边缘服务器"):
            assert new[k] == old[k]
    assert parse_field_items(list(new.items()), strict=True) == q  # the fields read back (strict: every key known)
    assert zh2.instruction == INSTRUCTION_ZH


def test_v2_docstring_examples() -> None:
    """The example prompts the v2 templates' docstrings show are what they write."""
    import inspect

    from comllm.text import chinese, compact, english

    s = _fresh_example()
    docs = inspect.getdoc(english) + inspect.getdoc(compact) + inspect.getdoc(chinese)
    for name in V2:
        lines = get_template(name).render_prompt(s).splitlines()
        if name == "annotated-v2":  # shown as "paper-v2 with 2 decimals and no header, then" its own lines
            from dataclasses import replace

            head = replace(get_template("paper-v2"), decimals=2).with_style(header=None).render_prompt(s)
            assert lines[: len(head.splitlines())] == head.splitlines()
            lines = lines[len(head.splitlines()) :]
        for line in lines:
            if line and line not in INSTRUCTION_ZH and line != get_template("paper").instruction:
                assert line in docs, (name, line)


def test_v2_estimates_are_the_incoming_aware_ones_and_say_so() -> None:
    from tests.fixtures.text_states import random_fresh_state

    rng = np.random.default_rng(15)
    for n in (1, 3, 7):
        s = random_fresh_state(rng, n)
        b = StateBatch.from_states([s])
        paper, incoming = action_costs(b)[0], action_costs(b, incoming=True)[0]
        ann = get_template("annotated-v2").render_prompt(s).splitlines()
        assert "estimates: one-step latency in slots, each server's incoming Mbit counted as queued" in ann
        est = [float(x.rsplit("est ", 1)[1].split()[0]) for x in ann if x.startswith("if ")]
        assert np.allclose(est, incoming, atol=0.005) and len(est) == n + 1
        old = get_template("annotated").render_prompt(s).splitlines()
        assert np.allclose([float(x.rsplit("est ", 1)[1].split()[0]) for x in old if x.startswith("if ")], paper,
                           atol=0.005)  # fmt: skip
        lines = get_template("estimates-v2").render_prompt(s).splitlines()
        assert lines[0].startswith("estimates: ") and "incoming" in lines[0]
        assert lines[1] == f"slot: {s.slot_arrivals} tasks arriving, {s.slot_pending} undecided"
        assert np.allclose([float(x.split("est ")[1].split(",")[0]) for x in lines[2:]], incoming, atol=0.005)
        for j, v in enumerate(s.servers, start=1):
            assert lines[2 + j].endswith(f", incoming {v.incoming_mbit:.2f} Mbit, {v.incoming_tasks} tasks")
        for name in ("estimates-compact-v2", "annotated-compact-v2"):
            t = get_template(name)
            out = t.render_prompt(s).splitlines()
            assert out[0] == "est = one-step latency, incoming counted in queue"
            k = t.action_line_start
            got = [float(x.split(": est ")[1].split()[0]) for x in out[k : k + n + 1]]
            assert np.allclose(got, incoming, atol=0.0051)


@pytest.mark.parametrize("name", ["estimates-compact-v2", "annotated-compact-v2", "raw-compact-v2"])
def test_compact_v2_lines(name: str) -> None:
    from tests.fixtures.text_states import random_fresh_state

    t = get_template(name)
    s = t.quantize(random_fresh_state(np.random.default_rng(16), 5))
    lines = t.render_prompt(s).splitlines()
    k = t.action_line_start
    assert lines[k].startswith("local:") and lines[-1] == "answer:"
    assert [x.split(":")[0] for x in lines[k + 1 : -1]] == [f"server {j}" for j in range(1, 6)]
    assert lines[k - 1].endswith(f"arrivals {s.slot_arrivals} unseen {s.slot_pending}")
    for line, v in zip(lines[k + 1 : -1], s.servers):
        from comllm.text.units import compact

        assert f"incoming {compact(v.incoming_mbit, 2)} Mbit uploading {v.incoming_tasks}" in line
    assert t.quantize(s) == s and s.slot_arrivals > 0


def test_v2_parse_errors_name_the_field() -> None:
    from tests.fixtures.text_states import random_fresh_state

    t = get_template("paper-v2")
    text = t.render_prompt(t.quantize(random_fresh_state(np.random.default_rng(17), 2)))
    with pytest.raises(TextError, match="'server 1.incoming tasks'.*not a whole number"):
        t.parse_prompt(re.sub(r"(server 1:.*incoming tasks )\d+", r"\g<1>2.5", text))
    with pytest.raises(TextError, match="'tasks arriving this slot'.*not a number"):
        t.parse_prompt(re.sub(r"tasks arriving this slot: \d+", "tasks arriving this slot: many", text))
    with pytest.raises(TextError, match="'undecided tasks this slot'.*negative"):
        t.parse_prompt(re.sub(r"undecided tasks this slot: \d+", "undecided tasks this slot: -1", text))
    with pytest.raises(TextError, match="unknown unit"):
        t.parse_prompt(text.replace(" Mbit, incoming tasks", " furlongs, incoming tasks", 1))
    # a server line without the incoming attributes reads 0 for them (optional, like the slot counts)
    s = parse_prompt(re.sub(r", incoming [^,]*, incoming tasks \d+", "", text))
    assert all((v.incoming_mbit, v.incoming_tasks) == (0.0, 0) for v in s.servers)
