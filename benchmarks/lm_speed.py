"""Language-model policy speed: decisions per second, and SFT samples per second (our loop vs TRL).

    python benchmarks/lm_speed.py [--model default|PATH] [--threads 2] [--servers 6,11,16,24] [--train]

Decisions: states from a paper-6-like simulator run with N servers (a mixed
server set), rendered in the model's template; each row times
``LMPolicy.decide`` (prompt rendering, tokenization and the model) at batch 1
and 64, in ``score`` mode (every valid answer scored, one forward pass per
batch) and ``sample`` mode (generation with temperature 0.7 / top-p 0.9).
Best of 3 repeats after a warm-up. Target: >= 500 decisions/s at batch 64 and 6
servers on this 2-core machine.

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
from comllm.lm.loading import load_lm
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


def decisions_per_s(policy: LMPolicy, states: list[TaskState], batch: int, repeats: int = 3) -> float:
    policy.options.batch = batch
    work = states[: max(batch, 64 if batch == 1 else batch * 2)]
    policy.decide(work[:batch])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        policy.decide(work)
        best = min(best, time.perf_counter() - t0)
    return len(work) / best


def decision_table(model: str, servers: list[int]) -> Table:
    lm = load_lm(model)
    n_params = sum(p.numel() for p in lm.model.parameters())
    table = Table(title=f"llm decisions/s — {lm.source} ({n_params / 1e6:.2f} M params, template {lm.meta.template}, "
                        f"{torch.get_num_threads()} threads)")  # fmt: skip
    for col in ("servers", "prompt tokens", "score b=1", "score b=64", "sample b=1", "sample b=64"):
        table.add_column(col, justify="right")
    for n in servers:
        states = sample_states(n, 128, seed=n)
        score = LMPolicy(lm, DecodeOptions(mode="score"))
        sample = LMPolicy(lm, DecodeOptions(mode="sample"))
        tokens = np.mean([len(p) for p in score.prompt_ids(states[:32])])
        row = [str(n), f"{tokens:.0f}"]
        for pol in (score, sample):
            for b in (1, 64):
                row.append(f"{decisions_per_s(pol, states, b):,.0f}")
        table.add_row(*row)
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
    ap.add_argument("--model", default="default", help="'default' (the shipped checkpoint) or a checkpoint folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--servers", default="6,11,16,24")
    ap.add_argument("--train", action="store_true", help="also time SFT: our loop vs TRL's SFTTrainer")
    ap.add_argument("--train-records", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    console.print(decision_table(args.model, [int(s) for s in args.servers.split(",")]))
    if args.train:
        console.print(train_table(args.model, args.train_records, args.batch))


if __name__ == "__main__":
    main()
