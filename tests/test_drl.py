"""DRL baselines: delayed credit, D3QN-LSTM network, short real trainings, policies, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from typer.testing import CliRunner

from comllm.checkpointing import load_state
from comllm.cli import app
from comllm.drl.config import CheckpointMeta, D3QNConfig, DRLError, TrainConfig, parse_hyper
from comllm.drl.credit import CreditLedger
from comllm.drl.d3qn import D3QNAgent, D3QNLSTM
from comllm.drl.train import train
from comllm.envs import ObsLayout
from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.policies import PolicyError, make_policy
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator

SMALL = load_scenario("small")
torch.set_num_threads(1)  # tiny networks: threads only contend with the other jobs


def _cfg(algo: str, steps: int, **hyper) -> TrainConfig:
    return TrainConfig(
        algo=algo,
        scenario=SMALL.model_dump(mode="json"),
        steps=steps,
        seed=0,
        episode_slots=60,
        eval_every=150,
        eval_slots=40,
        eval_seeds=[7],
        checkpoint_every=200,
        hyper={"learning_starts": 200, **hyper},
    )


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drl") / "dqn-small"
    train(_cfg("dqn", 400, buffer_size=1000, batch_size=16), out, progress=False)
    return out


@pytest.fixture(scope="module")
def d3qn_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drl") / "d3qn-small"
    train(_cfg("d3qn-lstm", 400), out, progress=False)
    return out


# --------------------------------------------------------------------- credit
def test_ledger_samples_only_credited_transitions():
    led = CreditLedger(4, reward_scale=0.5)
    rewards = np.zeros(4, dtype=np.float32)
    for pos, tid in enumerate([10, 11, 12]):
        led.register(pos, tid)
    with pytest.raises(RuntimeError, match="learning_starts"):
        led.sample(2, 3)
    assert led.credit(np.array([11, 99]), np.array([-4.0, -1.0]), rewards) == 1
    assert rewards[1] == -2.0
    assert set(led.sample(50, 3, np.random.default_rng(0))) == {1}
    led.credit(np.array([10]), np.array([-100.0]), rewards)
    assert set(led.sample(200, 3, np.random.default_rng(0))) == {0, 1}
    led.register(0, 13)  # overwriting a credited transition: it waits again
    assert not led.resolved[0]
    led.register(2, 14)  # overwriting a pending one: lost
    assert led.n_lost == 1 and 12 not in led.pending
    led.end_episode()
    assert led.pending == {} and led.n_lost == 3


def test_sb3_buffer_credits_rewards_when_tasks_end():
    from comllm.drl.sb3 import CreditReplayBuffer

    obs_space = spaces.Box(0, 1, (3,), np.float32)
    buf = CreditReplayBuffer(100, obs_space, spaces.Discrete(2), device="cpu", reward_scale=0.1)
    o = np.zeros((1, 3), np.float32)

    def add(tid, ended=(), rew=(), done=False):
        info = {"task_id": tid, "credit_ids": np.array(ended, dtype=np.int64), "credit_rewards": np.array(rew)}
        buf.add(o, o, np.array([[0]]), np.array([-123.0]), np.array([done]), [info])

    add(0)
    add(1)
    add(2, ended=[1], rew=[-5.0])
    assert buf.rewards[1, 0] == pytest.approx(-0.5)
    sample = buf.sample(64)
    np.testing.assert_allclose(sample.rewards.numpy(), -0.5)  # only the credited one
    add(3, ended=[0, 2, 3], rew=[-2.0, -100.0, -1.0], done=True)
    assert buf.rewards[:4, 0] == pytest.approx([-0.2, -0.5, -10.0, -0.1])
    assert buf.ledger.pending == {}


# -------------------------------------------------------------------- network
def test_d3qn_network_reads_the_history_through_its_lstm():
    lay = ObsLayout(3, 10)
    net = D3QNLSTM(3, 10)
    x = torch.rand(5, lay.size)
    q = net(x)
    assert q.shape == (5, 4)
    y = x.clone()
    y[:, lay.history] += 1.0
    assert not torch.allclose(net(y), q)
    z = net.features(x)
    adv, v = net.advantage(z), net.value(z)
    torch.testing.assert_close(q, v + adv - adv.mean(1, keepdim=True))  # dueling head


def test_d3qn_update_fits_a_fixed_reward_and_copies_the_target():
    hp = D3QNConfig(gamma=0.0, learning_rate=0.01, buffer_size=100, batch_size=32, target_update=5)
    agent = D3QNAgent(3, 10, hp, seed=0)
    rng = np.random.default_rng(0)
    dim = agent.net.layout.size
    for tid in range(100):
        o = rng.random(dim).astype(np.float32)
        a = tid % 4
        info = {"task_id": tid, "credit_ids": np.array([tid]), "credit_rewards": np.array([-10.0 * (a == 2)])}
        agent.replay.add(o, a, o, False, info)
    first = agent.update()
    for _ in range(299):
        last = agent.update()
    assert agent.updates == 300
    assert last < 0.2 * first
    with torch.no_grad():
        q = agent.net(torch.from_numpy(agent.replay.obs[:20]))
    assert (q.argmin(1) == 2).all()  # learnt that action 2 costs 10 slots (scaled by 0.1)
    for p, t in zip(agent.net.parameters(), agent.target.parameters()):  # copied at update 300
        torch.testing.assert_close(p, t)
    agent.update()
    assert any(not torch.equal(p, t) for p, t in zip(agent.net.parameters(), agent.target.parameters()))


def test_epsilon_schedule():
    agent = D3QNAgent(3, 10, D3QNConfig(eps_start=1.0, eps_end=0.1, exploration_fraction=0.5))
    assert agent.epsilon(0, 1000) == 1.0
    assert agent.epsilon(250, 1000) == pytest.approx(0.55)
    assert agent.epsilon(900, 1000) == pytest.approx(0.1)


# --------------------------------------------------------- trainings, policies
def _valid_actions(policy, scenario, slots: int = 30) -> None:
    sim = MECSimulator(scenario, seed=3)
    seen = 0
    for _ in range(slots):
        b = sim.observe()
        a = policy.act(b)
        assert a.shape == (len(b),) and a.dtype == np.int64
        assert ((a >= 0) & (a <= scenario.n_servers)).all()
        sim.step(a)
        seen += len(b)
    assert seen > 0


@pytest.mark.parametrize("run", ["dqn_run", "d3qn_run"])
def test_short_training_gives_a_policy_with_valid_actions(run, request):
    out: Path = request.getfixturevalue(run)
    meta = CheckpointMeta.read(out)
    assert meta.steps_done == 400 and meta.n_servers == 3 and meta.scenario["name"] == "small"
    assert meta.best_step is not None and meta.best_eval_latency is not None
    kind = "dqn" if run == "dqn_run" else "d3qn"
    assert (out / "model.safetensors").is_file() and (out / "best_model.safetensors").is_file()
    assert any((out / "tb").iterdir())
    with (out / "eval.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [150, 300, 400]
    with (out / "episodes.csv").open() as f:
        assert len(list(csv.DictReader(f))) >= 1
    policy = make_policy(f"{kind}:{out}", SMALL)
    assert policy.name == meta.algo
    _valid_actions(policy, SMALL)
    summary, _ = evaluate_closed_loop(SMALL, make_policy(f"dqn:{out}@last", SMALL), slots=30, seeds=1, warmup=0)
    assert summary["n_tasks"] > 0


@pytest.mark.parametrize("run", ["dqn_run", "d3qn_run"])
def test_refuses_another_server_count(run, request):
    out: Path = request.getfixturevalue(run)
    other = load_scenario("paper-6")
    with pytest.raises(PolicyError, match="trained for 3 servers"):
        make_policy(f"dqn:{out}", other)
    policy = make_policy(f"dqn:{out}")  # no scenario given: refused at the first batch
    with pytest.raises(PolicyError, match="trained for 3 servers"):
        policy.act(MECSimulator(other, seed=0).observe())


def test_simulate_cli_refuses_in_one_line(dqn_run):
    res = CliRunner().invoke(app, ["simulate", "--scenario", "paper-11", "--policy", f"dqn:{dqn_run}"])
    assert res.exit_code != 0
    assert isinstance(res.exception, PolicyError)
    assert "trained for 3 servers" in str(res.exception) and "\n" not in str(res.exception)
    ok = CliRunner().invoke(
        app, ["simulate", "--scenario", "small", "--policy", f"dqn:{dqn_run}", "--slots", "30", "--seeds", "1"]
    )
    assert ok.exit_code == 0, ok.output


def test_d3qn_policy_name_checks_the_algorithm(dqn_run, d3qn_run):
    with pytest.raises(PolicyError, match="not a D3QN-LSTM"):
        make_policy(f"d3qn:{dqn_run}", SMALL)
    assert make_policy(f"d3qn:{d3qn_run}", SMALL).name == "d3qn-lstm"
    with pytest.raises(PolicyError, match="needs a checkpoint"):
        make_policy("dqn", SMALL)
    with pytest.raises(PolicyError, match="no DRL checkpoint"):
        make_policy("dqn:/nonexistent/run", SMALL)


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "d3qn"
    train(_cfg("d3qn-lstm", 300), out, progress=False)
    first = CheckpointMeta.read(out)
    with pytest.raises(DRLError, match="--resume"):
        train(_cfg("d3qn-lstm", 300), out, progress=False)
    state = load_state(out / "train_state.safetensors")
    train(_cfg("d3qn-lstm", 500), out, resume=True, progress=False)
    meta = CheckpointMeta.read(out)
    assert (first.steps_done, meta.steps_done) == (300, 500)
    assert meta.episodes >= first.episodes and meta.wall_s > first.wall_s
    resumed = load_state(out / "train_state.safetensors")
    assert resumed["updates"] == state["updates"] + 200
    with (out / "eval.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [150, 300, 450, 500]


def test_sb3_resume(dqn_run, tmp_path):
    import shutil

    out = tmp_path / "dqn"
    shutil.copytree(dqn_run, out)
    train(_cfg("dqn", 600, buffer_size=1000, batch_size=16), out, resume=True, progress=False)
    assert CheckpointMeta.read(out).steps_done == 600


def test_config_errors_name_the_field():
    with pytest.raises(DRLError, match="unknown dqn hyper-parameter 'gama'"):
        parse_hyper("dqn", {"gama": 0.9})
    with pytest.raises(DRLError, match="'gamma' = 2"):
        parse_hyper("d3qn-lstm", {"gamma": 2})
    defaults = parse_hyper("d3qn-lstm", {})
    assert (defaults.learning_rate, defaults.gamma, defaults.target_update, defaults.buffer_size) == (
        0.01, 0.9, 200, 500,
    )  # fmt: skip
    assert defaults.batch_size == 32


def test_cli_train_info_and_plot(tmp_path):
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["dqn", "train", "--scenario", "small", "--algo", "d3qn-lstm", "--steps", "250", "--out", str(out),
            "--episode-slots", "40", "--eval-every", "125", "--eval-slots", "30", "--no-progress",
            "--hp", "learning_starts=200", "--hp", "hidden=16"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["algo"] == "d3qn-lstm" and meta["n_servers"] == 3 and meta["train"]["hyper"]["hidden"] == 16
    res = runner.invoke(app, ["dqn", "info", str(out)])
    assert res.exit_code == 0 and "d3qn-lstm" in res.output
    png = tmp_path / "curves.png"
    res = runner.invoke(app, ["dqn", "plot", str(out), "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(app, ["dqn", "train", "--scenario", "small", "--algo", "ppo", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "unknown --algo 'ppo'" in str(bad.exception)


# ------------------------------------------------ observation layout, protocols
def test_checkpoints_record_the_observation_layout(dqn_run, d3qn_run):
    from comllm.envs import OBS_LAYOUT_VERSION

    for out in (dqn_run, d3qn_run):
        meta = CheckpointMeta.read(out)
        assert meta.obs_layout == OBS_LAYOUT_VERSION == 2
        assert meta.obs_dim == ObsLayout.of(SMALL).size == 6 + 5 * 3 + 3 * SMALL.history_len


@pytest.mark.parametrize("run", ["dqn_run", "d3qn_run"])
def test_old_layout_checkpoints_refuse_in_one_line(run, request, tmp_path):
    """A checkpoint of layout 1 (4 + 3N + N·H values, no obs_layout field) names both sizes and says to retrain."""
    import shutil

    out = tmp_path / "old"
    shutil.copytree(request.getfixturevalue(run), out)
    meta = json.loads((out / "config.json").read_text())
    old = 4 + 3 * 3 + 3 * SMALL.history_len
    del meta["obs_layout"]
    meta["obs_dim"] = old
    meta["feature_scale"] = meta["feature_scale"][:old]
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyError) as err:
        make_policy(f"dqn:{out}", SMALL)
    msg = str(err.value)
    assert f"{old} values" in msg and f"{ObsLayout.of(SMALL).size} values" in msg and "retrain" in msg
    assert "\n" not in msg
    res = CliRunner().invoke(app, ["simulate", "--scenario", "small", "--policy", f"dqn:{out}", "--slots", "5"])
    assert res.exit_code != 0 and "retrain" in str(res.exception)
    algo = "dqn" if run == "dqn_run" else "d3qn-lstm"
    with pytest.raises(DRLError, match="retrain"):
        train(_cfg(algo, 600), out, resume=True, progress=False)


def test_policy_decides_one_task_at_a_time_under_sequential(dqn_run):
    """Under decisions=sequential the closed loop hands a DRL policy one task per call, and what it
    sees (observe_turn) is what the environment shows: deciding by argmax in the env gives the same run."""
    from comllm.envs import MECEnv

    seq = SMALL.with_overrides({"decisions": "sequential", "arrival_prob": 0.6})
    policy = make_policy(f"dqn:{dqn_run}", seq)
    sizes: list[int] = []
    act = policy.act
    policy.act = lambda b: (sizes.append(len(b)), act(b))[1]  # type: ignore[method-assign]
    summary, _ = evaluate_closed_loop(seq, policy, slots=30, seeds=1, warmup=0)
    assert summary["n_tasks"] > 0 and set(sizes) == {1}
    policy.act = act  # type: ignore[method-assign]

    env = MECEnv(seq, episode_slots=25)
    obs, _ = env.reset(seed=4)
    decided = 0
    while True:
        q = policy.q_fn(torch.from_numpy(obs[None] / policy.scale))
        obs, _, _, trunc, _ = env.step(int(q.argmax(1).item()))
        decided += 1
        if trunc:
            break
    ref = MECSimulator(seq, seed=env.sim_seed)
    for _ in range(25):
        ref.step(ref.decide(policy.act))
    n = ref.log.n
    assert n == decided > 20
    np.testing.assert_array_equal(env.sim.log.action[:n], ref.log.action)
    assert len(set(ref.log.action.tolist())) > 1  # the run is not one constant action
