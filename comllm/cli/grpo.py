"""``comllm grpo``: GRPO with the LACS reward (or its ablations) from an SFT checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from comllm.cli.app import app, console
from comllm.lacs.lookahead import LACS_DEFAULTS


@app.command()
def grpo(
    data: list[Path] = typer.Option(..., "--data", help="record files with snapshots (`comllm data --split grpo`), repeatable"),
    out: Path = typer.Option(..., help="output folder: checkpoints, logs, the final model (loadable as llm:OUT)"),
    model: str = typer.Option("default", help="start model: an SFT checkpoint folder, 'default' (shipped SFT) or a HF name"),
    template: Optional[str] = typer.Option(None, help="prompt template (default: the checkpoint's)"),
    lacs: str = typer.Option("sim", help="look-ahead term: sim (rollouts on the simulator) | reference | off (plain GRPO)"),
    lacs_weight: float = typer.Option(LACS_DEFAULTS.lam, help="lambda: weight of the look-ahead term"),
    horizon: int = typer.Option(LACS_DEFAULTS.horizon, help="LACS sim: slots after the decision whose arrivals are scored"),
    rollouts: int = typer.Option(LACS_DEFAULTS.rollouts, help="LACS sim: rollouts per candidate action"),
    other_policy: str = typer.Option("greedy", help="LACS sim: how the other tasks are decided (greedy | local | random)"),
    drop_cost: Optional[str] = typer.Option(None, help="LACS sim: slots a dropped task costs (a number or 'deadline'; default: the drop penalty)"),
    shaping: str = typer.Option("reference", help="reward shaping: reference (docs/model.md §8) | normalised"),
    task_weight: float = typer.Option(0.8, help="weight of the task (one-step cost) term"),
    format_weight: float = typer.Option(0.2, help="weight of the format term"),
    unparseable: float = typer.Option(-10.0, help="reward of an answer that names no valid action"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in --out"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps (default: from --epochs); with --resume, a new total"),
    epochs: float = typer.Option(1.0, help="passes over the prompts when --steps is not given"),
    num_generations: int = typer.Option(4, "--num-generations", "-G", help="G: completions per prompt"),
    prompts_per_step: int = typer.Option(8, help="prompts per optimizer step"),
    lr: Optional[float] = typer.Option(None, help="learning rate (default 1e-4 embedded model, 5e-6 HF models)"),
    schedule: str = typer.Option("constant", help="constant | linear | cosine (after warm-up)"),
    warmup: float = typer.Option(0.0, help="fraction of steps of linear warm-up"),
    beta: float = typer.Option(0.005, help="KL coefficient against the start model"),
    entropy_coef: float = typer.Option(0.0, help="weight of TRL's per-token entropy bonus (0: none)"),
    temperature: float = typer.Option(1.3, help="sampling temperature of the completions"),
    top_p: float = typer.Option(0.95, help="nucleus sampling of the completions"),
    max_completion_length: int = typer.Option(15, help="tokens per completion"),
    loss_type: str = typer.Option("dapo", help="TRL loss: dapo | grpo | dr_grpo | bnpo"),
    seed: int = typer.Option(0, help="seed of sampling, shuffling and the LACS rollouts"),
    max_records: Optional[int] = typer.Option(None, help="use only the first N records"),
    lora: bool = typer.Option(False, "--lora", help="HF model: train a LoRA adapter (r 64, alpha 128)"),
    lora_r: int = typer.Option(64),
    lora_alpha: int = typer.Option(128),
    four_bit: bool = typer.Option(False, "--4bit", help="HF model: 4-bit weights (bitsandbytes, GPU)"),
    dtype: str = typer.Option("auto", help="weights: auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16 | fp16"),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 mixed precision (default: on a GPU that has it)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:k]"),
    use_vllm: bool = typer.Option(False, "--use-vllm", help="generate completions with vLLM (TRL's switch; GPU, vllm installed)"),
    vllm_mode: str = typer.Option("colocate", help="vLLM: colocate (in the training processes) | server (trl vllm-serve)"),
    vllm_server_base_url: Optional[str] = typer.Option(None, help="vLLM server mode: its base URL"),
    save_every: int = typer.Option(100, help="steps between checkpoints"),
    keep: int = typer.Option(2, help="checkpoints kept"),
    log_every: int = typer.Option(5, help="steps between log rows"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: 1 while the load is above 1, else 2)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """GRPO through TRL with the format + task + LACS reward; resumable; CSV and TensorBoard logs of every term."""
    from comllm.grpo import make_config, train_grpo
    from comllm.outputs import check_input, check_paths

    check_input("--data", data)
    check_paths({"--out": out}, {"--data": data}, folders=["--out"])
    cost: float | str | None = drop_cost
    if drop_cost is not None and drop_cost != "deadline":
        try:
            cost = float(drop_cost)
        except ValueError:
            cost = drop_cost  # the config names it in its error
    cfg = make_config(
        model=model, template=template, data=[str(p) for p in data], out=str(out), resume=resume, lacs=lacs,
        lacs_weight=lacs_weight, horizon=horizon, rollouts=rollouts, other_policy=other_policy, drop_cost=cost,
        shaping=shaping, task_weight=task_weight, format_weight=format_weight, unparseable=unparseable, steps=steps, epochs=epochs,
        num_generations=num_generations, prompts_per_step=prompts_per_step, lr=lr, schedule=schedule, warmup=warmup,
        beta=beta, entropy_coef=entropy_coef, temperature=temperature, top_p=top_p, max_completion_length=max_completion_length,
        loss_type=loss_type, seed=seed, max_records=max_records, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
        four_bit=four_bit, dtype=dtype, bf16=bf16, device=device, use_vllm=use_vllm, vllm_mode=vllm_mode,
        vllm_server_base_url=vllm_server_base_url, save_every=save_every, keep=keep,
        log_every=log_every, threads=threads, progress=progress,
    )  # fmt: skip
    summary = train_grpo(cfg, log=console.print)
    last = summary["last_rewards"]
    console.print(
        f"last rewards: total {last['reward']:.3f}, "
        + ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in last.items() if k.startswith("rewards/"))
        + f"; valid answers {last['decisions/valid']:.3f}"
    )
