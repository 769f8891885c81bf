"""Limits and hangs: absurd sizes are refused before any work, nothing waits forever (README, "What is safe").

Sizes above the bounds of :mod:`comllm.limits` are refused in one line naming the
option; every policy of ``benchmark`` and ``eval-data`` is built before the first
episode; ``sweep --ray`` to an address where nothing listens fails within the
connect timeout; a language model refuses a scenario whose prompt is longer than
its ``max_position_embeddings`` and warns (once) about such a prompt in open loop.
"""

from __future__ import annotations

import socket
import time
import warnings

import numpy as np
import pytest

from comllm.experiments.sweep import check_ray_address
from comllm.errors import ComllmError
from comllm.scenario import MAX_SERVERS, ScenarioError, load_scenario
from tests.safe_support import refused


def _quick(capsys, *args: str, needles: tuple[str, ...], seconds: float = 10.0) -> str:
    t0 = time.perf_counter()
    line = refused(capsys, *args, needles=needles)
    assert time.perf_counter() - t0 < seconds, "refused only after work"
    return line


@pytest.mark.parametrize(
    "args, needle",
    [
        (["simulate", "--slots", "99999999999999999999"], "--slots 99999999999999999999 is above the limit of 10_000_000"),
        (["simulate", "--seeds", "100000"], "--seeds 100000 is above the limit"),
        (["simulate", "--warmup", "99999999999"], "--warmup"),
        (["sweep", "--slots", "99999999999999999999"], "--slots"),
        (["sweep", "--workers", "100000"], "--workers 100000"),
        (["benchmark", "--seeds", "1000000"], "--seeds"),
        (["data", "--n", "99999999999999", "--out", "{tmp}/d.jsonl"], "--n 99999999999999"),
        (["data", "--servers", "100000", "--out", "{tmp}/d.jsonl"], "--servers 100000 is above the limit of 1_000"),
        (["data", "--servers", "3-99999999999", "--out", "{tmp}/d.jsonl"], "--servers 99999999999"),
        (["data", "--episode-slots", "99999999999", "--out", "{tmp}/d.jsonl"], "--episode-slots"),
        (["dqn", "train", "--steps", "99999999999999", "--out", "{tmp}/run"], "--steps 99999999999999"),
    ],
)
def test_absurd_sizes_are_refused_naming_the_option(capsys, tmp_path, args, needle):
    _quick(capsys, *(a.format(tmp=tmp_path) for a in args), needles=(needle,))
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_scenario_with_too_many_servers_is_refused():
    with pytest.raises(ScenarioError, match=f"{MAX_SERVERS + 1} servers is more than the limit of {MAX_SERVERS}"):
        load_scenario("small", [f"servers=[{', '.join(['standard'] * (MAX_SERVERS + 1))}]"])


def test_benchmark_checks_its_baselines_before_any_episode(capsys, tmp_path):
    out = tmp_path / "bench"
    _quick(capsys, "benchmark", "--baseline", "greedy", "--baseline", "foo", "--out", out, "--slots", "5",
           needles=("unknown policy 'foo'",), seconds=20)  # fmt: skip
    assert not out.exists()


def test_eval_data_checks_every_policy_before_the_first(capsys, tmp_path):
    from comllm.data import generate_records, write_records

    data = tmp_path / "d.jsonl"
    write_records(data, generate_records(load_scenario("small"), 3, split="sft", template="paper", seed=0))
    _quick(capsys, "eval-data", "--data", data, "--policy", "greedy", "--policy", "nope", needles=("unknown policy 'nope'",))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sweep_on_ray_where_nothing_listens_fails_fast(capsys):
    port = _free_port()
    line = _quick(capsys, "sweep", "--scenario", "small", "--slots", "5", "--seeds", "1", "--ray", f"127.0.0.1:{port}",
                  needles=(f"--ray '127.0.0.1:{port}'", "nothing accepts a connection"), seconds=20)  # fmt: skip
    assert f"ray start --head --port={port}" in line


def test_the_ray_address_check_times_out_and_parses():
    port = _free_port()
    t0 = time.perf_counter()
    with pytest.raises(ComllmError, match="nothing accepts a connection"):
        check_ray_address(f"ray://127.0.0.1:{port}", timeout=2.0)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ComllmError, match="is not HOST:PORT"):
        check_ray_address("127.0.0.1")
    check_ray_address("auto")  # left to Ray
    with socket.socket() as server:  # something listening passes
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_ray_address(f"127.0.0.1:{server.getsockname()[1]}", timeout=2.0)


@pytest.fixture(scope="module")
def short_lm():
    """A tiny embedded model built for prompts of at most 200 positions."""
    from comllm.lm.model import ModelShape
    from comllm.lm.sft import new_embedded_lm
    from tests.fixtures.text_states import random_state

    rng = np.random.default_rng(0)
    states = [random_state(rng, int(rng.integers(1, 4)), history_len=10) for _ in range(20)]
    shape = ModelShape(hidden=32, layers=1, heads=2, intermediate=64, value_hidden=16, max_positions=200)
    return new_embedded_lm("paper", states, shape, 0)


def test_a_scenario_beyond_the_model_positions_is_refused(short_lm):
    from comllm.lm.policy import LMPolicy
    from comllm.policies import PolicyError

    policy = LMPolicy(short_lm)
    policy.check_scenario(load_scenario("small", ["servers=[standard]"]))  # short enough
    with pytest.raises(PolicyError) as err:
        policy.check_scenario(load_scenario("paper-11"))
    msg = str(err.value)
    assert "11-server prompt and answer are" in msg and "beyond the 200 positions" in msg and "max_position_embeddings" in msg


def test_a_prompt_beyond_the_model_positions_warns_once(short_lm):
    from comllm.lm.loading import _probe_state
    from comllm.lm.policy import LMLengthWarning, LMPolicy
    import dataclasses

    policy = LMPolicy(short_lm)
    probe = _probe_state()
    long_state = dataclasses.replace(probe, servers=probe.servers * 12)
    with pytest.warns(LMLengthWarning, match=r"a prompt of \d+ tokens is beyond the 200 positions"):
        policy.decide([long_state])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LMLengthWarning)
        policy.decide([long_state])  # once only
