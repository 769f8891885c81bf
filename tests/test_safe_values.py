"""Values that should be refused are refused, in one line naming the field and the value (README, "What is safe").

Scenario numbers must be finite and not booleans; a check of several fields names
the one it blames instead of dumping the whole configuration; the language model
clips huge numbers (no OverflowError); an official record with an infinite number
is a DataError naming the record and the field, also under ``--skip-bad``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from comllm.data import DataError, read_records
from comllm.errors import FieldError, format_validation_error
from comllm.scenario import ScenarioError, load_scenario
from tests.safe_support import refused

FIXTURE = Path(__file__).parent / "fixtures" / "reference_records.json"
SIM = ("simulate", "--scenario", "small", "--slots", "5", "--seeds", "1", "--warmup", "0")


@pytest.mark.parametrize(
    "override, needle",
    [
        ("cycles_per_bit=.inf", "invalid scenario field 'cycles_per_bit' = inf: Input should be a finite number"),
        ("slot_s=.inf", "invalid scenario field 'slot_s' = inf"),
        ("arrival_prob=.nan", "invalid scenario field 'arrival_prob' = nan"),
        ("channel.snr_db=-.inf", "invalid scenario field 'channel.snr_db' = -inf"),
        ("channel.snr_db=-1000", "invalid scenario field 'channel.snr_db' = -1000.0: must be between -50 and 100 dB"),
        ("n_devices=true", "invalid scenario field 'n_devices' = True: a boolean is not a number"),
        ("slot_s=true", "invalid scenario field 'slot_s' = True"),
        ("size_min=7", "invalid scenario field 'size_min' = 7.0: is above size_max=5.0"),
        ("channel.min_factor=3", "invalid scenario field 'channel.min_factor' = 3.0: is above max_factor=2.0"),
        ("slot_s=100 device_ghz=1e308", "invalid scenario field 'device_ghz' = 1e+308: gives a rate of inf Mbit/slot"),
    ],
)
def test_scenario_values_are_refused_naming_the_field(capsys, override, needle):
    items = ["channel.model=rayleigh", *override.split()]
    with pytest.raises(ScenarioError) as err:
        load_scenario("small", items)
    assert needle in str(err.value) and "\n" not in str(err.value) and len(str(err.value)) < 200
    refused(capsys, *SIM, *(a for item in items for a in ("--set", item)), needles=(needle,))


def test_data_with_an_infinite_slot_writes_nothing(capsys, tmp_path):
    out = tmp_path / "d.jsonl"
    refused(capsys, "data", "--scenario", "small", "--n", "3", "--set", "slot_s=.inf", "--out", out, needles=("slot_s",))
    assert not out.exists()


def test_a_yaml_scenario_with_inf_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: small\ncycles_per_bit: .inf\n")
    with pytest.raises(ScenarioError, match="'cycles_per_bit' = inf"):
        load_scenario(str(path))


def test_sft_model_shape_names_the_heads(capsys):
    from comllm.lm.sft import SFTError, make_config

    with pytest.raises(SFTError) as err:
        make_config(data=["d.jsonl"], out="o", template="paper", hidden=100, heads=6)
    assert str(err.value) == "invalid sft option 'heads' = 6: does not divide hidden=100"
    with pytest.raises(SFTError, match="^invalid sft option 'template' = None: a new default model needs --template"):
        make_config(data=["d.jsonl"], out="o")


def test_model_shape_errors_are_user_errors():
    from comllm.errors import ComllmError
    from comllm.lm.model import ModelShape

    with pytest.raises(ComllmError, match="heads=4 does not divide hidden=30"):
        ModelShape(hidden=30, heads=4)


def test_the_formatter_gives_one_line_for_any_config():
    from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

    class Cfg(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        a: float = 1.0
        b: float | str = 2.0
        blob: list[int] = list(range(500))

        @model_validator(mode="after")
        def _check(self) -> "Cfg":
            if self.a > 10:
                raise FieldError("a", self.a, "is above 10")
            if self.a < 0:
                raise ValueError("a must not be negative")
            return self

    def msg(**kw) -> str:
        with pytest.raises(ValidationError) as err:
            Cfg(**kw)
        return format_validation_error(err.value, "test", "option", known=["a", "b"])

    assert msg(a=11) == "invalid test option 'a' = 11.0: is above 10"
    assert msg(a=-1) == "invalid test: a must not be negative"  # no dump of the 500-item blob
    assert msg(a=float("inf")) == "invalid test option 'a' = inf: Input should be a finite number"
    assert msg(c=1) == "unknown test key 'c' (known: a, b)"
    assert msg(b=[1]).startswith("invalid test option 'b' = [1]")  # union members left out of the location
    assert len(msg(a="x" * 10_000)) < 200


def test_grpo_and_pipeline_configs_use_the_same_lines(tmp_path):
    from comllm.experiments.config import ConfigError, load_config
    from comllm.grpo.config import GRPOError, make_config

    with pytest.raises(GRPOError, match=r"^invalid grpo option 'drop_cost' = 'abc': "):
        make_config(data=["d"], out="o", drop_cost="abc")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("eval:\n  seeds: many\n")
    with pytest.raises(ConfigError, match=r"^invalid config key 'eval.seeds' = 'many': "):
        load_config(cfg)


def test_huge_numbers_are_clipped_by_the_value_tokens():
    from comllm.lm.values import ValueCodec

    codec = ValueCodec(base=10)
    for v in (1e308, -1e308, float("inf"), float("nan"), 1e300):
        tid, clipped = codec.encode(v)
        assert clipped and codec.is_value(tid)


def test_the_language_model_decides_a_state_with_1e308():
    import dataclasses

    from comllm.lm.loading import _probe_state, load_lm
    from comllm.lm.policy import LMPolicy

    policy = LMPolicy(load_lm("default", device="cpu"))
    state = dataclasses.replace(_probe_state(), task_size=1e308, local_wait=1e300)
    action = policy.decide([state])
    assert 0 <= int(action[0]) <= state.n_servers
    ids = policy.lm.tokenizer.encode_text("task size 1" + "0" * 308 + " Mbit")
    assert policy.lm.tokenizer.stats["clipped"] >= 1 and ids


def _official(tmp_path: Path, value: str) -> Path:
    recs = json.loads(FIXTURE.read_text())
    bad = copy.deepcopy(recs[0])
    bad["input"]["任务大小"] = value
    path = tmp_path / "official.json"
    path.write_text(json.dumps([bad, recs[0]], ensure_ascii=False))
    return path


def test_an_official_record_with_1e400_is_a_data_error_naming_record_and_field(tmp_path):
    path = _official(tmp_path, "1e400 Mbits")
    with pytest.raises(DataError) as err:
        list(read_records(path))
    assert str(err.value) == "record 1: field 'input.任务大小': value '1e400 Mbits' is not a finite number"
    reader = read_records(path, skip_bad=True)
    assert len(list(reader)) == 1 and reader.n_bad == 1 and "任务大小" in reader.errors[0]


def test_eval_data_skips_the_1e400_record(capsys, tmp_path):
    from tests.safe_support import cli

    code, out, err = cli(capsys, "eval-data", "--data", _official(tmp_path, "1e400 Mbits"), "--skip-bad")
    assert code == 0, err
    assert "skipped 1 malformed record" in out and "任务大小" in out
