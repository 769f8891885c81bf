"""Records: JSONL and the official format in and out, malformed records, snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from comllm.cost import action_costs
from comllm.data import DataError, Record, generate_records, read_records, write_records
from comllm.data.records import record_to_reference, state_from_dict, state_to_dict
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator
from comllm.state import StateBatch
from comllm.text import get_template
from tests.fixtures.text_states import random_state

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "MEC_data.json"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reference_records.json"


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return list(generate_records(load_scenario("small"), 40, "test", "paper", seed=5, servers="2-4"))


def _keys(r: Record) -> dict:
    return r.to_dict()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_jsonl_round_trip(tmp_path: Path, records: list[Record], suffix: str) -> None:
    path = tmp_path / f"d{suffix}"
    assert write_records(path, iter(records)) == len(records)
    back = list(read_records(path))
    assert back == records
    assert [_keys(r) for r in back] == [_keys(r) for r in records]
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
@pytest.mark.parametrize("template", ["paper-zh", "paper", "paper-zh-v2", "paper-v2"])
def test_reference_written_by_us_reads_back_equal(tmp_path: Path, records: list[Record], suffix, template) -> None:
    path = tmp_path / f"ref{suffix}"
    write_records(path, records, format="reference", template=template)
    back = list(read_records(path))
    assert len(back) == len(records)
    t = get_template(template)
    for orig, got in zip(records, back):
        assert got.task_state() == t.quantize(orig.task_state())
        assert got.source_action == orig.oracle_action  # the label we wrote
        assert got.oracle_action == int(np.argmin(got.costs))
        assert got.template == template and got.snapshot is None and got.scenario == "reference"
        assert got.prompt == t.render_prompt(got.task_state())
    # what we write is the official layout
    first = json.loads(path.read_text())[0] if suffix == ".json" else json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"instruction", "input", "output"} and set(first["output"]) == {"action_name"}


def test_shipped_reference_sample_is_labelled_server_1() -> None:
    if not REFERENCE.is_file():
        pytest.skip("shared/reference/MEC_data.json is not present")
    (rec,) = list(read_records(REFERENCE))
    assert rec.oracle_action == 1 and rec.source_action == 1
    assert rec.answer == "卸载到边缘服务器1" and rec.template == "paper-zh"
    assert rec.n_servers == 3 and rec.task_state().task_size == 4.1934
    (en,) = list(read_records(REFERENCE, template="paper"))
    assert en.answer == "server 1" and en.prompt.splitlines()[1] == "task size: 4.1934 Mbit"


def test_own_reference_fixture_is_labelled_like_the_file() -> None:
    recs = list(read_records(FIXTURE))
    assert [r.oracle_action for r in recs] == [0, 3, 1]
    assert [r.source_action for r in recs] == [0, 3, 1]
    assert [r.n_servers for r in recs] == [2, 4, 1]
    assert recs[2].task_state().servers[0].history == (1.0, 0.0, 2.0, 1.0, 1.0)


def _reference_obj(**input_changes) -> dict:
    obj = json.loads(FIXTURE.read_text())[1]
    for k, v in input_changes.items():
        if v is None:
            del obj["input"][k]
        else:
            obj["input"][k] = v
    return obj


def _malformed_lines(good: Record) -> list[tuple[str, str]]:
    """(JSONL line, what the error must name) for each kind of malformed record."""
    d = good.to_dict()
    no_costs = {k: v for k, v in d.items() if k != "costs"}
    bad_num = json.loads(json.dumps(d))
    bad_num["state"]["servers"][1]["queued_mbit"] = "lots"
    return [
        ('{"id": 1, "prompt": ', "invalid JSON"),
        (json.dumps(no_costs), "missing field 'costs'"),
        (json.dumps(bad_num), "state.servers[1].queued_mbit"),
        (json.dumps(_reference_obj(**{"边缘服务器X": "类型 标准型"})), "input.边缘服务器X"),
        (json.dumps(_reference_obj(**{"任务大小": "big Mbits"})), "input.任务大小"),
        (json.dumps(_reference_obj(**{"网络上传速率": None})), "missing field 'input.网络上传速率'"),
        (json.dumps({"instruction": "x"}), "missing field 'input'"),
    ]


def test_malformed_records_name_record_and_field(tmp_path: Path, records: list[Record]) -> None:
    good = json.dumps(records[0].to_dict())
    for line, needle in _malformed_lines(records[0]):
        path = tmp_path / "bad.jsonl"
        path.write_text(good + "\n\n" + line + "\n" + good + "\n")
        with pytest.raises(DataError) as err:
            list(read_records(path))
        assert str(err.value).startswith("record 2: "), str(err.value)
        assert needle in str(err.value)


def test_skip_bad_skips_and_counts(tmp_path: Path, records: list[Record]) -> None:
    bad = _malformed_lines(records[0])
    lines = []
    for i, r in enumerate(records[:10]):
        lines.append(json.dumps(r.to_dict()))
        if i < len(bad):
            lines.append(bad[i][0])
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    reader = read_records(path, skip_bad=True)
    got = list(reader)
    assert got == records[:10]
    assert reader.n_read == 10 and reader.n_bad == len(bad)
    assert reader.errors[0].startswith("record 2: invalid JSON")


def test_json_array_with_a_bad_record(tmp_path: Path) -> None:
    objs = json.loads(FIXTURE.read_text())
    objs.insert(1, _reference_obj(**{"丢弃惩罚": "a lot"}))
    path = tmp_path / "arr.json"
    path.write_text(json.dumps(objs, ensure_ascii=False, indent=1))
    with pytest.raises(DataError, match=r"record 2: field 'input.丢弃惩罚'"):
        list(read_records(path))
    reader = read_records(path, skip_bad=True)
    assert [r.oracle_action for r in reader] == [0, 3, 1] and reader.n_bad == 1
    path.write_text(path.read_text()[:-40])  # cut: the array is no longer valid JSON
    with pytest.raises(DataError, match="record 4: invalid JSON"):
        list(read_records(path, skip_bad=True))


def test_output_label_that_is_no_action_is_an_error(tmp_path: Path) -> None:
    obj = _reference_obj()
    obj["output"]["action_name"] = "卸载到边缘服务器9"
    path = tmp_path / "one.json"
    path.write_text(json.dumps(obj, ensure_ascii=False))
    with pytest.raises(DataError, match=r"record 1: field 'output.action_name'"):
        list(read_records(path))


def test_snapshot_restores_the_moment_of_the_record(records: list[Record]) -> None:
    for r in records[:10]:
        sim = MECSimulator.from_snapshot(r.sim_snapshot())
        batch = sim.observe()
        i = list(batch.device).index(r.device)
        s, o = batch.state(i), r.task_state()
        assert s.n_servers == o.n_servers and s.slot == o.slot
        assert np.allclose(
            [s.task_size, s.local_wait, s.tx_wait, s.upload_rate] + [v.queued_mbit for v in s.servers],
            [o.task_size, o.local_wait, o.tx_wait, o.upload_rate] + [v.queued_mbit for v in o.servers],
            atol=1e-6,
        )
        assert [v.active for v in s.servers] == [v.active for v in o.servers]
        assert np.allclose(action_costs(batch.subset([i]))[0], r.costs, atol=1e-6)


def test_official_records_have_no_snapshot() -> None:
    (rec,) = list(read_records(FIXTURE))[:1]
    with pytest.raises(DataError, match="no simulator snapshot"):
        rec.sim_snapshot()


def test_state_dict_round_trip_and_errors() -> None:
    s = random_state(np.random.default_rng(11), 5)
    assert state_from_dict(json.loads(json.dumps(state_to_dict(s)))) == s
    d = state_to_dict(s)
    d["servers"][2]["type"] = "quantum"
    with pytest.raises(DataError, match=r"state.servers\[2\].type"):
        state_from_dict(d)
    d = state_to_dict(s)
    del d["max_delay"]
    with pytest.raises(DataError, match="missing field 'state.max_delay'"):
        state_from_dict(d)


def test_reference_needs_a_template_with_fields(records: list[Record]) -> None:
    with pytest.raises(DataError, match="paper-zh or paper"):
        record_to_reference(records[0], "estimates")
    r = records[0]
    oracle = int(action_costs(StateBatch.from_states([r.task_state()])).argmin())
    own = record_to_reference(r)["output"]["action_name"]  # in the record's own template (paper)
    assert own == (f"server {oracle}" if oracle else "local")
    zh = record_to_reference(r, "paper-zh")
    assert zh["output"]["action_name"] == get_template("paper-zh").answers(r.n_servers)[oracle]
    assert zh["instruction"] == get_template("paper-zh").instruction


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    assert list(read_records(tmp_path / "empty.jsonl")) == []


def test_official_format_without_the_fresh_view_reads_zero_and_v2_writes_chinese_fields(
    tmp_path: Path, records: list[Record]
) -> None:
    """Official records have no fresh-view field: they read 0; paper-zh-v2 writes Chinese-labelled ones (read back)."""
    for rec in read_records(FIXTURE):  # the official format
        s = rec.task_state()
        assert (s.slot_arrivals, s.slot_pending) == (0, 0) and rec.template == "paper-zh"
        assert all((v.incoming_mbit, v.incoming_tasks) == (0.0, 0) for v in s.servers)
        assert rec.state["slot_arrivals"] == 0 and rec.state["servers"][0]["incoming_mbit"] == 0.0
    fresh = [
        r for r in records if r.task_state().slot_arrivals > 1 and any(v.incoming_tasks for v in r.task_state().servers)
    ]
    assert fresh, "the simulator's records carry the fresh view"
    obj = record_to_reference(fresh[0], "paper-zh-v2")
    s = fresh[0].task_state()
    assert obj["input"]["本时间槽到达任务数"] == s.slot_arrivals
    assert obj["input"]["本时间槽未决任务数"] == s.slot_pending
    assert "在途任务量" in obj["input"]["边缘服务器1"] and "在途任务数" in obj["input"]["边缘服务器1"]
    assert obj["instruction"] == get_template("paper-zh").instruction  # the official instruction
    old = record_to_reference(fresh[0], "paper-zh")  # the official format as it was: no such field
    assert not any("在途" in str(v) or k.startswith("本时间槽") for k, v in old["input"].items())
    path = tmp_path / "v2.json"
    write_records(path, [fresh[0].rendered("paper-zh-v2")], format="reference")  # the record's own template
    (back,) = list(read_records(path))
    assert back.template == "paper-zh-v2" and back.task_state() == get_template("paper-zh-v2").quantize(s)
