"""Language-model policy speed: decisions per second beside greedy's, closed-loop wall time, SFT samples/s.

    python benchmarks/lm_speed.py [--model paper6 --model comllm ...] [--threads 2] [--servers 6,11,16]
                                  [--closed-loop] [--train]

Without ``--model``, every shipped language model (one name per folder of ``SHIPPED``).

Decisions: states from a paper-6-like simulator run with N servers (a mixed server set);
each row times the policy's ``act`` on prebuilt batches of 1 and 64 states (as the closed loop
calls it: the prompts and the model) in the checkpoint's decision mode (``score``, or ``cost``
for a model that names it: ``llm:paper6``), through the fast path (prompt ids from the
numbers, :mod:`comllm.lm.fast_prompts`, and :mod:`comllm.lm.fast`, the default) and the
reference path (``fast=false``: rendered and tokenized prompts, the model's own forward), the
fast path with its decoder products in bfloat16 (``matmul=bf16``) and the share of the states
on which it decides as the float32 fast path does, and,
side by side in the same run, the greedy oracle's ``act`` on the same batches. Best of 3
repeats after a warm-up. Goals
(issue 13, this 2-core machine, 6 servers): >= 300 decisions/s at batch 1 and >= 1,000 at
batch 64 for every shipped language model.

``--closed-loop``: the wall time of ``comllm simulate --scenario paper-6 --policy llm:MODEL
--slots 2000 --seeds 3`` (200 slots of warm-up) in both decision protocols (the seeds run in
lockstep: one forward pass per turn for all three), in this process. Goal: under 3 minutes.

``--train``: samples per second of SFT on the same model shape and records,
our bucketed loop vs TRL's SFTTrainer (prompt/completion data, completion-only
loss), same batch size, 1 epoch of ``--train-records`` records each.
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

from comllm.cost import action_costs
from comllm.lm.loading import SHIPPED, load_lm
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.scenario import SERVER_TYPE_NAMES, load_scenario
from comllm.sim import MECSimulator
from comllm.state import TaskState


def sample_states(n_servers: int, k: int, seed: int = 0) -> list[TaskState]:
    servers = [SERVER_TYPE_NAMES[i % 3] for i in range(n_servers)]
    sim = MECSimulator(load_scenario("paper-6", {"servers": servers}), seed=seed)
    out: list[TaskState] = []
    while len(out) < k:
        b = sim.observe()
        out.extend(b.states())
        sim.step(np.argmin(action_costs(b), axis=1) if len(b) else np.zeros(0, dtype=np.int64))
    return out[:k]


def decisions_per_s(policy, states: list[TaskState], batch: int, repeats: int = 3) -> float:
    """Decisions per second of ``policy`` (an LMPolicy or any Policy) on ``states`` at ``batch``."""
    from comllm.state import StateBatch

    work = states[: max(batch, 64 if batch == 1 else batch * 2)]
    if isinstance(policy, LMPolicy):
        policy.options.batch = batch
    # every policy decides prebuilt batches through ``act``, as the closed loop calls it
    batches = [StateBatch.from_states(work[i : i + batch]) for i in range(0, len(work), batch)]
    run = lambda: [policy.act(b) for b in batches]  # noqa: E731
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return len(work) / best


def decision_table(models: list[str], servers: list[int]) -> Table:
    from comllm.policies import make_policy

    table = Table(title=f"decisions/s, each model in its checkpoint's mode ({torch.get_num_threads()} torch threads)")
    for col in ("policy", "mode", "params", "servers", "prompt tokens", "fast b=1", "fast b=64", "bf16 b=1",
                "bf16 b=64", "bf16 same action", "reference b=1", "reference b=64"):  # fmt: skip
        table.add_column(col, justify="right")
    greedy = make_policy("greedy:incoming")
    for n in servers:
        states = sample_states(n, 128, seed=n)
        row = ["greedy:incoming", "–", "–", str(n), "–"]
        row += [f"{decisions_per_s(greedy, states, b):,.0f}" for b in (1, 64)] + [""] * 5
        table.add_row(*row)
        for model in models:
            lm = load_lm(model)
            n_params = sum(p.numel() for p in lm.model.parameters())
            fast = LMPolicy(lm, DecodeOptions(mode=lm.meta.mode))
            ref = LMPolicy(lm, DecodeOptions(mode=lm.meta.mode, fast=False))
            tokens = np.mean([len(p) for p in fast.prompt_ids(states[:32])])
            row = [f"llm:{model} ({lm.meta.template})", lm.meta.mode, f"{n_params / 1e6:.2f} M", str(n), f"{tokens:.0f}"]
            speeds = [decisions_per_s(fast, states, b) for b in (1, 64)] if fast.fast_scorer is not None else [None, None]
            row += [f"{v:,.0f}" if v else "–" for v in speeds]
            # the fast path with its decoder products in bfloat16 (llm option matmul=bf16), and how often it
            # decides as the float32 path does on these states
            bf16 = LMPolicy(lm, DecodeOptions(mode=lm.meta.mode, matmul="bf16"))
            if bf16.fast_scorer is not None:
                row += [f"{decisions_per_s(bf16, states, b):,.0f}" for b in (1, 64)]
                fast.options.batch = bf16.options.batch = 64
                row.append(f"{np.mean(fast.decide(states) == bf16.decide(states)):.3f}")
            else:
                row += ["–"] * 3
            row += [f"{decisions_per_s(ref, states, b):,.0f}" for b in (1, 64)]
            table.add_row(*row)
    return table


def closed_loop_table(models: list[str]) -> Table:
    from comllm.evaluate.closed_loop import evaluate_closed_loop
    from comllm.policies import make_policy

    table = Table(title="closed loop: paper-6, 2,000 scored slots x 3 seeds (200 warm-up), wall time")
    for col in ("policy", "decisions", "simultaneous s", "sequential s", "latency sim / seq"):
        table.add_column(col, justify="right")
    for model in models:
        row, lat = [f"llm:{model}"], []
        for d in ("simultaneous", "sequential"):
            sc = load_scenario("paper-6", {"decisions": d})
            pol = make_policy(f"llm:{model}", sc)
            t0 = time.perf_counter()
            summary, eps = evaluate_closed_loop(sc, pol, slots=2000, seeds=3, warmup=200)
            if len(row) == 1:
                row.append(f"{sum(e.n_tasks for e in eps):,} scored")
            row.append(f"{time.perf_counter() - t0:.0f}")
            lat.append(f"{summary['avg_latency']:.3f}")
        table.add_row(*row, " / ".join(lat))
    return table


def train_table(model: str, n_records: int, batch: int) -> Table:
    """Our SFT loop vs TRL's SFTTrainer on a fresh model of the same shape, same records."""
    from datasets import Dataset
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    from comllm.data import generate_records, write_records
    from comllm.lm.sft import make_config, new_embedded_lm, train_sft

    lm = load_lm(model)
    cfg = lm.model.config
    tmp = Path(tempfile.mkdtemp(prefix="lm-speed-"))
    data = tmp / "records.jsonl"
    write_records(data, generate_records(load_scenario("paper-6"), n_records, split="sft", template="paper",
                                         seed=0, servers="2-16"))  # fmt: skip
    shape = dict(hidden=cfg.hidden_size, layers=cfg.num_hidden_layers, heads=cfg.num_attention_heads,
                 intermediate=cfg.intermediate_size)  # fmt: skip
    ours = make_config(model="default", template=lm.meta.template, data=[str(data)], out=str(tmp / "ours"),
                       batch_size=batch, epochs=1, progress=False, threads=torch.get_num_threads(),
                       log_every=10_000, save_every=10_000, **shape)  # fmt: skip
    summary = train_sft(ours, log=lambda s: None)
    ours_rate = summary["samples"] / summary["train_wall_s"]

    fresh = load_lm(tmp / "ours")
    from comllm.data import read_records

    rows = []
    for r in read_records(data):
        s = r.task_state()
        rows.append({"prompt": fresh.prompt_text(s),
                     "completion": fresh.meta.answer_prefix + fresh_template_answer(fresh, r.oracle_action)})  # fmt: skip
    ds = Dataset.from_list(rows)
    model2 = new_embedded_lm(lm.meta.template, [read_records(data).__next__().task_state()], _shape(cfg), 0).model
    args = TRLConfig(output_dir=str(tmp / "trl"), per_device_train_batch_size=batch, num_train_epochs=1,
                     learning_rate=1e-3, bf16=False, use_cpu=True, report_to=[], logging_steps=10_000,
                     save_strategy="no", dataloader_num_workers=0, max_length=None)  # fmt: skip
    trainer = SFTTrainer(model=model2, args=args, train_dataset=ds, processing_class=fresh.tokenizer)
    t0 = time.perf_counter()
    trainer.train()
    trl_rate = len(ds) / (time.perf_counter() - t0)
    table = Table(title=f"SFT samples/s — {n_records} records, 2..16 servers, batch {batch}, "
                        f"{torch.get_num_threads()} threads")  # fmt: skip
    for col in ("trainer", "samples/s", "relative"):
        table.add_column(col, justify="right")
    table.add_row("ours (bucketed)", f"{ours_rate:.1f}", f"{ours_rate / trl_rate:.2f}×")
    table.add_row("TRL SFTTrainer", f"{trl_rate:.1f}", "1.00×")
    return table


def fresh_template_answer(lm, action: int) -> str:
    from comllm.text import get_template

    return get_template(lm.meta.template).render_answer(int(action))


def _shape(cfg):
    from comllm.lm.model import ModelShape

    return ModelShape(hidden=cfg.hidden_size, layers=cfg.num_hidden_layers, heads=cfg.num_attention_heads,
                      intermediate=cfg.intermediate_size, value_hidden=cfg.value_hidden)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append",
                    help="a shipped name (default, paper6, comllm, ...) or a folder; repeatable (default: every shipped model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--servers", default="6,11,16")
    ap.add_argument("--closed-loop", action="store_true", help="also time the 2,000-slot x 3-seed closed loop")
    ap.add_argument("--train", action="store_true", help="also time SFT: our loop vs TRL's SFTTrainer")
    ap.add_argument("--train-records", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=220)
    first_name: dict[str, str] = {}  # shipped folder -> its first name in SHIPPED
    for name, folder in SHIPPED.items():
        first_name.setdefault(folder, name)
    models = args.model or list(first_name.values())
    console.print(decision_table(models, [int(s) for s in args.servers.split(",")]))
    if args.closed_loop:
        console.print(closed_loop_table(models))
    if args.train:
        console.print(train_table(models[0], args.train_records, args.batch))


if __name__ == "__main__":
    main()
