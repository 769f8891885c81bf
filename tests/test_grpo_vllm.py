"""TRL's vLLM generation switch is passed through `comllm grpo` to GRPOConfig (scale-out on GPUs)."""

from pathlib import Path

import pytest

from comllm.grpo import make_config
from comllm.grpo.train import grpo_args


def test_vllm_options_reach_trl(tmp_path):
    cfg = make_config(data=["x.jsonl"], out=str(tmp_path), use_vllm=True, vllm_mode="server",
                      vllm_server_base_url="http://127.0.0.1:8000")  # fmt: skip
    args = grpo_args(cfg, Path(tmp_path), 1e-5, "cpu", False)
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (True, "server", "http://127.0.0.1:8000")
    plain = grpo_args(make_config(data=["x.jsonl"], out=str(tmp_path)), Path(tmp_path), 1e-5, "cpu", False)
    assert plain.use_vllm is False


def test_bad_vllm_mode_names_the_option(tmp_path):
    with pytest.raises(Exception, match="vllm_mode"):
        make_config(data=["x.jsonl"], out=str(tmp_path), vllm_mode="nope")
