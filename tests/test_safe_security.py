"""What the project promises about loading files (README, "What is safe"): loading a file never runs code.

A checkpoint is data: weights are safetensors, training states are
safetensors tensors plus JSON (:mod:`comllm.checkpointing`), the few torch
files that remain (an SB3 zip's ``policy.pth``, TRL's optimizer and random
states) are read with ``torch.load(weights_only=True)``, and no model code is
taken from a model folder (``trust_remote_code=False``).

Each test plants a payload in one kind of file that comllm loads: a pickle
that creates a marker file when it is unpickled. The load is refused (one
line, a :class:`~comllm.errors.ComllmError`) or the file is ignored, and the
marker never appears.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from comllm.checkpointing import CheckpointError, load_state, save_state
from comllm.drl.checkpoint import SHIPPED_DIR, load_policy
from comllm.drl.config import CheckpointMeta, DRLError, TrainConfig
from comllm.drl.sb3 import QNetwork, load_q_function
from comllm.drl.train import new_meta, train
from comllm.errors import ComllmError
from comllm.lm.loading import LMError, default_checkpoint, load_lm
from comllm.lm.sft import make_config, train_sft
from comllm.scenario import load_scenario
from tests.test_lm_support import make_records

SMALL = load_scenario("small")


class _Payload:
    """Unpickling this object opens (so creates) ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


def torch_payload(path: Path, marker: Path) -> Path:
    """A file in ``torch.save``'s own format (a zip) whose pickle is the payload."""
    torch.save(_Payload(marker), path)
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    m = tmp_path / "CODE-RAN"
    yield m
    assert not m.exists(), "a payload planted in a checkpoint ran"


def test_the_payload_runs_when_unpickled(tmp_path: Path) -> None:
    """The marker works: plain unpickling creates it (so its absence below means nothing ran)."""
    m = tmp_path / "m"
    pickle.loads(payload(m))
    assert m.exists()
    torch.load(torch_payload(tmp_path / "p.pt", tmp_path / "m2"), weights_only=False)
    assert (tmp_path / "m2").exists()


# ----------------------------------------------------------------- DQN (SB3 zips of older versions)
def _sb3_zip(path: Path, data: str, policy: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", data)
        z.writestr("policy.pth", policy)
        z.writestr("_stable_baselines3_version", "2.9.2")
    return path


def _dqn_agent(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A DQN agent folder (config.json of today's observation) and an SB3 policy state dict for it."""
    cfg = TrainConfig(algo="dqn", scenario=SMALL.model_dump(mode="json"), steps=1000, hyper={"net_arch": [16]})
    meta = new_meta(cfg)
    folder = tmp_path / "agent"
    meta.write(folder)
    q = QNetwork(meta.obs_dim, meta.n_servers + 1, [16]).state_dict()
    return folder, {**{f"q_net.{k}": v for k, v in q.items()}, **{f"q_net_target.{k}": v.clone() for k, v in q.items()}}


def _policy_pth(sd: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def test_sb3_zip_data_payload_is_never_read(tmp_path: Path, marker: Path) -> None:
    """SB3's ``data`` member holds cloudpickled objects (``DQN.load`` would run them): comllm never reads it."""
    folder, sd = _dqn_agent(tmp_path)
    evil = {":type:": "<class 'type'>", ":serialized:": base64.b64encode(payload(marker)).decode()}
    data = json.dumps({"policy_class": evil, "lr_schedule": evil, "exploration_schedule": evil, "observation_space": evil})
    _sb3_zip(folder / "best_model.zip", data, _policy_pth(sd))
    policy = load_policy(folder)
    save_file(sd, str(folder / "best_model.safetensors"))  # the same weights in today's format
    (folder / "best_model.zip").unlink()
    obs = torch.rand(16, policy.scale.shape[0])
    assert torch.equal(policy.q_fn(obs), load_policy(folder).q_fn(obs))  # the weights of the zip, as tensors


def test_shipped_dqn_agents_are_safetensors_and_act_as_before() -> None:
    """The shipped DQN agents were converted from SB3 zips to safetensors: the same actions on fixed observations.

    ``tests/fixtures/shipped_drl_actions.json`` holds the actions SB3's own ``DQN.load`` of the original zips gave;
    an agent retrained since (another weights file) is checked for loading only.
    """
    fixture = json.loads((Path(__file__).parent / "fixtures" / "shipped_drl_actions.json").read_text())
    for name in ("dqn-6", "dqn-11"):
        folder = SHIPPED_DIR / name
        assert not any(folder.glob("*.zip")) and not any(folder.glob("*.pkl"))
        meta = CheckpointMeta.read(folder)
        weights = folder / "best_model.safetensors"
        q_fn = load_q_function(weights, meta.obs_dim, meta.n_servers + 1, meta.train.hyper)
        obs = np.random.default_rng(0).random((64, meta.obs_dim), dtype=np.float32) * 3
        actions = q_fn(torch.from_numpy(obs)).argmax(1).tolist()
        assert len(actions) == 64 and max(actions) <= meta.n_servers
        if hashlib.sha256(weights.read_bytes()).hexdigest() == fixture[name]["weights_sha256"]:
            assert actions == fixture[name]["actions"], name


def test_sb3_zip_policy_payload_is_refused_in_one_line(tmp_path: Path, marker: Path) -> None:
    from typer.testing import CliRunner

    from comllm.cli import app

    folder, _ = _dqn_agent(tmp_path)
    for blob in (payload(marker), torch_payload(tmp_path / "p.pth", marker).read_bytes()):
        _sb3_zip(folder / "best_model.zip", "{}", blob)
        with pytest.raises(DRLError, match="is not plain tensor data and is not loaded"):
            load_policy(folder)
    res = CliRunner().invoke(app, ["simulate", "--scenario", "small", "--policy", f"dqn:{folder}", "--slots", "5"])
    assert isinstance(res.exception, ComllmError) and "not plain tensor data" in str(res.exception)
    assert len(str(res.exception).splitlines()) == 1


# ----------------------------------------------------------------- DRL resume states
def _run_folder(tmp_path: Path, algo: str) -> tuple[Path, TrainConfig]:
    cfg = TrainConfig(algo=algo, scenario=SMALL.model_dump(mode="json"), steps=300, episode_slots=40, eval_every=150,
                      eval_slots=20, eval_seeds=[7], checkpoint_every=100, hyper={"learning_starts": 200})  # fmt: skip
    out = tmp_path / algo
    new_meta(cfg).write(out)
    return out, cfg


def test_pickled_replay_buffer_is_never_loaded(tmp_path: Path, marker: Path) -> None:
    """A DQN run of an older comllm (model.zip + replay_buffer.pkl) is refused by --resume, not unpickled."""
    out, cfg = _run_folder(tmp_path, "dqn")
    (out / "replay_buffer.pkl").write_bytes(payload(marker))
    _sb3_zip(out / "model.zip", "{}", payload(marker))
    with pytest.raises(DRLError, match="older comllm.*replay_buffer.pkl.*never loaded"):
        train(cfg, out, resume=True, progress=False)


def test_pickled_d3qn_train_state_is_never_loaded(tmp_path: Path, marker: Path) -> None:
    out, cfg = _run_folder(tmp_path, "d3qn-lstm")
    torch_payload(out / "train_state.pt", marker)
    with pytest.raises(DRLError, match="older comllm.*train_state.pt.*never loaded"):
        train(cfg, out, resume=True, progress=False)


@pytest.mark.parametrize("algo", ["dqn", "d3qn-lstm"])
def test_a_resume_state_that_is_not_ours_is_refused_in_one_line(algo: str, tmp_path: Path, marker: Path) -> None:
    out, cfg = _run_folder(tmp_path, algo)
    state = out / "train_state.safetensors"
    state.write_bytes(payload(marker))  # a pickle under the new name
    with pytest.raises(DRLError, match="damaged or incomplete") as err:
        train(cfg, out, resume=True, progress=False)
    assert len(str(err.value).splitlines()) == 1
    save_file({"x": torch.zeros(2)}, str(state))  # a safetensors file, but not a comllm state
    with pytest.raises(DRLError, match="not a comllm state file"):
        train(cfg, out, resume=True, progress=False)


def test_state_files_hold_only_tensors_and_json(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "s.safetensors"
    save_state(path, {"opt": {"step": torch.tensor(3.0)}, "pending": {1: 2}, "rng": (3, (1, 2), None)})
    assert load_state(path) == {"opt": {"step": torch.tensor(3.0)}, "pending": {1: 2}, "rng": (3, (1, 2), None)}
    with pytest.raises(TypeError, match="'state.obj' is a _Payload"):
        save_state(path, {"obj": _Payload(marker)})  # anything else is refused when writing
    path.write_bytes(payload(marker))
    with pytest.raises(CheckpointError, match="damaged or incomplete"):
        load_state(path)


# ----------------------------------------------------------------- SFT
@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("sft-safe")
    data = make_records(d / "train.jsonl", 32, servers="2", seed=1)
    opts = dict(model="default", template="estimates-compact", data=[str(data)], steps=2, save_every=1, log_every=1,
                hidden=16, layers=1, heads=2, intermediate=32, batch_size=8, progress=False, threads=1)  # fmt: skip
    train_sft(make_config(out=str(d / "run"), **opts), log=lambda s: None)
    return d / "run", opts


def test_sft_resume_never_unpickles_a_planted_trainer_state_dataset_or_model(sft_run, tmp_path: Path, marker) -> None:
    """checkpoint-2 carries a pickled trainer_state.pt, checkpoint-1 a pickled pytorch_model.bin instead of its
    safetensors, the folder a pickled dataset.pt: all are skipped with a warning, and the run starts again."""
    run, opts = sft_run
    out = tmp_path / "run"
    shutil.copytree(run, out)
    (out / "checkpoint-2" / "trainer_state.safetensors").unlink()
    torch_payload(out / "checkpoint-2" / "trainer_state.pt", marker)
    (out / "checkpoint-1" / "model.safetensors").unlink()
    torch_payload(out / "checkpoint-1" / "pytorch_model.bin", marker)
    (out / "dataset.safetensors").unlink()
    torch_payload(out / "dataset.pt", marker)
    said: list[str] = []
    summary = train_sft(make_config(out=str(out), resume=True, **opts), log=said.append)
    assert summary["steps"] == 2
    warnings = [s for s in said if s.startswith("warning:")]
    assert any("checkpoint-2" in w and "never loaded" in w for w in warnings), said
    assert any("checkpoint-1" in w and "model.safetensors" in w for w in warnings), said
    assert any("no complete checkpoint" in w for w in warnings), said


def test_sft_state_file_that_is_a_pickle_is_skipped(sft_run, tmp_path: Path, marker) -> None:
    run, opts = sft_run
    out = tmp_path / "run"
    shutil.copytree(run, out)
    torch_payload(out / "checkpoint-2" / "trainer_state.safetensors", marker)  # a pickle under the new name
    said: list[str] = []
    train_sft(make_config(out=str(out), resume=True, **opts), log=said.append)
    assert any("skipping checkpoint" in s and "checkpoint-2" in s for s in said)
    assert any("resuming from" in s and "checkpoint-1" in s for s in said)


# ----------------------------------------------------------------- language-model folders
def _model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(default_checkpoint(), folder)
    return folder


def test_pickled_model_weights_are_refused(tmp_path: Path, marker: Path) -> None:
    folder = _model_copy(tmp_path)
    (folder / "model.safetensors").unlink()
    torch_payload(folder / "pytorch_model.bin", marker)
    with pytest.raises(LMError, match="model.safetensors") as err:
        load_lm(folder, device="cpu")
    assert len(str(err.value).splitlines()) == 1


def test_pickled_adapter_weights_are_refused(tmp_path: Path, marker: Path) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    shutil.copy(default_checkpoint() / "comllm.json", folder / "comllm.json")
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(default_checkpoint()),
                                                            "peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}))  # fmt: skip
    torch_payload(folder / "adapter_model.bin", marker)
    with pytest.raises(LMError, match="no adapter_model.safetensors"):
        load_lm(folder, device="cpu")


def test_model_code_in_a_checkpoint_folder_never_runs(tmp_path: Path, marker: Path) -> None:
    """``auto_map`` entries pointing at a Python file of the folder are ignored (``trust_remote_code=False``)."""
    folder = _model_copy(tmp_path)
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    for name, key in (("config.json", "AutoModelForCausalLM"), ("tokenizer_config.json", "AutoTokenizer")):
        cfg = json.loads((folder / name).read_text())
        cfg["auto_map"] = {key: "evil.Evil" if key != "AutoTokenizer" else ["evil.Evil", None], "AutoConfig": "evil.Evil"}
        (folder / name).write_text(json.dumps(cfg))
    try:
        lm = load_lm(folder, device="cpu")
    except LMError:
        return  # refused: fine too
    assert type(lm.model).__name__ == "ComllmLMForCausalLM"
