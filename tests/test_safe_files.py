"""Files that are broken give one line naming the file, never a traceback (README, "What is safe").

Scenario YAML that is malformed, has tabs or binary bytes, carries a ``!!python``
tag (never run: YAML is read with the safe loader) or a bad ``base``; a model
folder whose weights, tokenizer or ``comllm.json`` are corrupt or truncated;
policy specs with values out of range.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from comllm.lm.loading import LMError, default_checkpoint, load_lm
from comllm.scenario import ScenarioError, load_scenario
from tests.safe_support import refused

SIM = ("simulate", "--slots", "5", "--seeds", "1", "--warmup", "0")


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"a: [1\n", "is not valid YAML: expected ',' or ']'"),
        (b"n_devices:\t5\n", "found character '\\t' that cannot start any token (line 1, column 11)"),
        (b"\x00\x01\xff\xfe", "is not UTF-8 text (byte 2)"),
        (b"\x00\x01", "is not valid YAML: unacceptable character"),
        (b"- 1\n- 2\n", "is not a mapping of keys to values"),
        (b"base: nope\n", "'base' = 'nope' is not a preset (known: paper-6"),
        (b"base: [paper-6]\n", "'base' = ['paper-6'] is not a preset"),
        (b"base: other.yaml\n", "'base' = 'other.yaml' names a file: base must be a preset"),
        (b"n_devices: 5\nn_devices: 6\n", None),  # YAML keeps the last: valid
        (b"colour: blue\n", "unknown scenario key 'colour'"),
    ],
)
def test_broken_scenario_files_are_one_line(capsys, tmp_path, content, needle):
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    if needle is None:
        load_scenario(str(path))
        return
    with pytest.raises(ScenarioError) as err:
        load_scenario(str(path))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg, msg
    assert needle.startswith("unknown") or str(path) in msg, msg  # a file problem names the file
    refused(capsys, *SIM, "--scenario", path, needles=(needle,))


def test_a_scenario_naming_itself_as_base_is_refused(capsys, tmp_path):
    path = tmp_path / "me.yaml"
    path.write_text(f"base: {path}\n")
    refused(capsys, *SIM, "--scenario", path, needles=("names a file: base must be a preset",))


def test_a_python_tag_is_an_error_and_never_runs(capsys, tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.yaml"
    path.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    refused(capsys, *SIM, "--scenario", path, needles=("could not determine a constructor", "python/object/apply"))
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    refused(capsys, *SIM, "--scenario", path, needles=("is not valid YAML",))
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_scenario_path_that_is_not_a_file_is_named(capsys, tmp_path, kind):
    import os

    path = tmp_path / "s.yaml"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    needle = "is a folder, not a file" if kind == "folder" else "is a FIFO"
    refused(capsys, *SIM, "--scenario", path, needles=(needle,))


def test_a_huge_scenario_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ScenarioError, match="more than a scenario"):
        load_scenario(str(path))


def test_a_pipeline_config_that_is_a_folder_or_not_yaml(capsys, tmp_path):
    refused(capsys, "pipeline", "--config", tmp_path, needles=("--config", "is a folder, not a file"))
    bad = tmp_path / "c.yaml"
    bad.write_bytes(b"\xff\xfe")
    refused(capsys, "pipeline", "--config", bad, needles=("is not UTF-8 text",))


# ------------------------------------------------------------------ models
@pytest.fixture
def model_copy(tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(default_checkpoint(), folder)
    return folder


def _corrupt(path: Path) -> None:
    b = bytearray(path.read_bytes())
    b[10:200] = b"\xff" * 190
    path.write_bytes(bytes(b))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "file, damage, needle",
    [
        ("model.safetensors", _corrupt, "cannot load the weights of model"),
        ("model.safetensors", _truncate, "cannot load the weights of model"),
        ("word_tokenizer.json", lambda p: p.write_text('{"not": tokenizer'), "cannot load the tokenizer of model"),
        ("comllm.json", lambda p: p.write_text("not json{"), "is not a valid comllm.json"),
        ("comllm.json", lambda p: p.write_text("[1, 2]"), "is not a JSON object"),
        ("comllm.json", lambda p: p.write_text('{"template": 3}'), "field 'template' = 3 is not a string"),
        ("config.json", lambda p: p.write_text("{"), "cannot load the weights of model"),
    ],
)
def test_a_damaged_model_folder_is_one_line_naming_the_file(capsys, model_copy, file, damage, needle):
    damage(model_copy / file)
    with pytest.raises(LMError) as err:
        load_lm(model_copy, device="cpu")
    assert needle in str(err.value) and file in str(err.value) and "\n" not in str(err.value)
    refused(capsys, *SIM, "--scenario", "small", "--policy", f"llm:{model_copy}", needles=(needle, file))


@pytest.mark.parametrize(
    "options, needle",
    [
        ("mode=sample,max_new_tokens=-1", "llm option max_new_tokens=-1 must be in 1..4096"),
        ("mode=sample,max_new_tokens=0", "max_new_tokens=0"),
        ("temperature=inf", "llm option temperature=inf must be in (0, 100]"),
        ("temperature=nan", "temperature=nan"),
        ("top_p=nan", "top_p=nan"),
        ("batch=0", "batch=0"),
        ("threads=0", "threads=0"),
        ("colour=red", "unknown llm option 'colour'"),
    ],
)
def test_llm_options_are_checked_before_the_model_loads(capsys, tmp_path, options, needle):
    # the model path does not exist: the option error comes first
    refused(capsys, *SIM, "--scenario", "small", "--policy", f"llm:{tmp_path / 'nowhere'},{options}", needles=(needle,))


@pytest.mark.parametrize("spec, needle", [("random:abc", "policy 'random': bad argument 'abc' in 'random:abc'"),
                                          ("greedy:x", "takes no argument")])  # fmt: skip
def test_a_bad_policy_argument_is_one_line(capsys, spec, needle):
    refused(capsys, *SIM, "--scenario", "small", "--policy", spec, needles=(needle,))
