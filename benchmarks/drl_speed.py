"""Throughput of the DRL stack: environment, trainings, and trained policies in closed loop.

    python benchmarks/drl_speed.py [--scenario paper-6] [--steps 20000]

Rows: ``comllm/MEC-v0`` under random actions (env steps/s = task decisions/s);
SB3 DQN and D3QN-LSTM training with their default hyper-parameters (env
steps/s including updates, after ``learning_starts``); closed-loop decisions/s
of each trained policy's batched ``act``. One torch thread. Target: a training
converges in at most ~15 min on one core (the README's DRL table gives steps).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from comllm.drl.checkpoint import load_policy
from comllm.drl.config import TrainConfig
from comllm.drl.train import train
from comllm.envs import MECEnv
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator


def env_rate(scenario: str, steps: int) -> float:
    env = MECEnv(scenario, episode_slots=200)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n_act = env.action_space.n
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, _, trunc, _ = env.step(int(rng.integers(n_act)))
        if trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def train_rate(algo: str, scenario: str, steps: int, out: Path) -> float:
    cfg = TrainConfig(
        algo=algo, scenario=load_scenario(scenario).model_dump(mode="json"), steps=steps,
        eval_every=10**9, checkpoint_every=10**9,
    )  # fmt: skip
    t0 = time.perf_counter()
    train(cfg, out, progress=False)
    return steps / (time.perf_counter() - t0)


def policy_rate(folder: Path, scenario: str, slots: int = 2000) -> float:
    sc = load_scenario(scenario)
    policy = load_policy(folder, "last")
    sim = MECSimulator(sc, seed=0)
    n = 0
    t0 = time.perf_counter()
    for _ in range(slots):
        b = sim.observe()
        sim.step(policy.act(b))
        n += len(b)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="paper-6")
    ap.add_argument("--steps", type=int, default=20_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = Table(title=f"DRL throughput on {args.scenario} (one torch thread)")
    for col in ("what", "rate"):
        table.add_column(col, justify="left" if col == "what" else "right")
    table.add_row("env, random actions", f"{env_rate(args.scenario, args.steps):,.0f} steps/s")
    with tempfile.TemporaryDirectory() as tmp:
        for algo in ("dqn", "d3qn-lstm"):
            out = Path(tmp) / algo
            rate = train_rate(algo, args.scenario, args.steps, out)
            table.add_row(f"{algo} training", f"{rate:,.0f} steps/s")
            table.add_row(f"{algo} policy, closed loop", f"{policy_rate(out, args.scenario):,.0f} decisions/s")
    Console().print(table)


if __name__ == "__main__":
    main()
