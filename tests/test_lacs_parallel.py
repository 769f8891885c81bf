"""The all-action stage's LACS scoring in parallel (comllm.lacs.parallel): local worker processes
and Ray tasks give the in-process scores bit for bit; bad --workers / --ray fail in one line."""

from __future__ import annotations

import dataclasses
import pickle
import socket
import sys

import numpy as np
import pytest

from comllm.errors import ComllmError
from comllm.lacs.improve import Collected, ImproveConfig, ImproveError, collect, score
from comllm.lacs.parallel import chunk_bounds, connect_ray, score_chunk
from comllm.policies import make_policy
from comllm.scenario import load_scenario

CFG = ImproveConfig(warmup=3, collect_slots=8, states_per_slot=2, rollouts=3, horizon=2, workers=1, seed=4)


@pytest.fixture(scope="module")
def data() -> Collected:
    sc = load_scenario("small", {"arrival_prob": 0.7})
    out = collect(make_policy("round-robin"), sc, CFG, 2)
    assert len(out) >= 8  # several chunks per worker
    return out


@pytest.fixture(scope="module")
def in_process(data) -> np.ndarray:
    return score(data, CFG, 2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chunks_are_contiguous_and_cover_every_state():
    for n, k in [(10, 3), (3, 8), (1, 4), (64, 8)]:
        b = chunk_bounds(n, k)
        assert b[0][0] == 0 and b[-1][1] == n and all(hi > lo for lo, hi in b)
        assert all(b[i][1] == b[i + 1][0] for i in range(len(b) - 1)) and len(b) == min(n, k)


def test_collected_pickles_and_a_states_scores_do_not_depend_on_its_chunk(data, in_process):
    back = pickle.loads(pickle.dumps(data))
    assert len(back) == len(data) and back.devices == data.devices and back.fixed == data.fixed
    settings = CFG.lacs(2)
    np.testing.assert_array_equal(score_chunk(back.snapshots, back.devices, back.fixed, settings), in_process)
    # the states in reverse, and one alone: each state's scores are its own
    rev = score_chunk(data.snapshots[::-1], data.devices[::-1], data.fixed[::-1], settings)
    np.testing.assert_array_equal(rev[::-1], in_process)
    k = len(data) // 2
    alone = score_chunk(data.snapshots[k : k + 1], data.devices[k : k + 1], data.fixed[k : k + 1], settings)
    np.testing.assert_array_equal(alone[0], in_process[k])


def test_two_worker_processes_give_the_in_process_scores_exactly(data, in_process):
    par = score(data, dataclasses.replace(CFG, workers=2), 2)
    assert par.shape == in_process.shape and par.dtype == in_process.dtype
    np.testing.assert_array_equal(par, in_process)
    # another iteration is another seed: other scores, still the same in both paths
    np.testing.assert_array_equal(score(data, dataclasses.replace(CFG, workers=2), 3), score(data, CFG, 3))
    assert not np.array_equal(score(data, CFG, 3), in_process)


def test_the_parts_of_the_scores_are_its_own_latency_and_the_later_tasks_price(data, in_process):
    from comllm.lacs.improve import lookahead_increment, value_targets

    parts = score(data, CFG, 2, parts=True)
    assert parts.shape == (len(data), 2, in_process.shape[1])
    np.testing.assert_array_equal(score(data, dataclasses.replace(CFG, workers=2), 2, parts=True), parts)
    scores, inc = lookahead_increment(parts)
    np.testing.assert_array_equal(scores, in_process)  # the scores themselves, bit for bit
    np.testing.assert_allclose(inc, value_targets(in_process) - value_targets(parts[:, 1]))
    assert (parts[:, 1] < in_process).any() and (inc > 0).any()  # later tasks were priced
    # without the look-ahead the score is the own latency: no increment
    assert not lookahead_increment(score(data, dataclasses.replace(CFG, lam=0.0), 2, parts=True))[1].any()


@pytest.fixture(scope="module")
def ray_head():
    ray = pytest.importorskip("ray")
    ctx = ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)  # a local head owned by this test
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()


def test_ray_tasks_give_the_in_process_scores_exactly(ray_head, data, in_process):
    par = score(data, dataclasses.replace(CFG, workers=2, ray=ray_head), 2)
    np.testing.assert_array_equal(par, in_process)


def _cli(monkeypatch, capsys, *args: str) -> str:
    from comllm.cli import main

    monkeypatch.setattr(sys, "argv", ["comllm", "improve", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_bad_ray_address_fails_at_once_in_one_line_naming_the_option(monkeypatch, capsys, tmp_path):
    addr = f"127.0.0.1:{_free_port()}"  # nothing listens there
    err = _cli(monkeypatch, capsys, "--ray", addr, "--out", str(tmp_path / "run"))
    assert err.startswith(f"error: --ray '{addr}'") and "nothing accepts a connection" in err
    assert not (tmp_path / "run").exists()  # before the model loads or the run folder is made
    with pytest.raises(ComllmError, match="--ray 'nowhere'"):
        connect_ray("nowhere")  # not HOST:PORT


def test_negative_workers_fail_in_one_line_naming_the_option(monkeypatch, capsys, tmp_path):
    err = _cli(monkeypatch, capsys, "--workers", "-1", "--out", str(tmp_path / "run"))
    assert err == "error: --workers = -1: must be >= 0"
    with pytest.raises(ImproveError, match="--workers = -1"):
        ImproveConfig(workers=-1)
    with pytest.raises(ImproveError, match="--ray"):
        ImproveConfig(ray=" ")
