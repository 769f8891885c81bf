"""``comllm sft``: supervised fine-tuning of the embedded default model or any Hugging Face causal LM."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from comllm.cli.app import app, console


@app.command()
def sft(
    data: list[Path] = typer.Option(..., "--data", help="record file(s) from `comllm data` (repeatable)"),
    out: Path = typer.Option(..., help="output folder: checkpoints, logs, the final model"),
    model: str = typer.Option("default", help="'default' (new embedded model), a checkpoint folder or a HF model name"),
    template: Optional[str] = typer.Option(None, help="prompt template (default: the checkpoint's; needed for 'default')"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in --out"),
    steps: Optional[int] = typer.Option(None, min=1, help="optimizer steps (default: from --epochs)"),
    epochs: float = typer.Option(1.0, help="passes over the data when --steps is not given"),
    batch_size: int = typer.Option(32, min=1, help="examples per step"),
    lr: Optional[float] = typer.Option(None, help="peak learning rate (default 1e-3 embedded, 1e-5 HF)"),
    schedule: str = typer.Option("cosine", help="cosine | constant | linear (after warm-up)"),
    warmup: float = typer.Option(0.05, help="fraction of steps of linear warm-up"),
    weight_decay: float = typer.Option(0.0),
    seed: int = typer.Option(0),
    max_records: Optional[int] = typer.Option(None, min=1, help="use only the first N records"),
    hidden: int = typer.Option(192, help="embedded model: hidden size"),
    layers: int = typer.Option(4, help="embedded model: decoder layers"),
    heads: int = typer.Option(6, help="embedded model: attention heads"),
    intermediate: int = typer.Option(512, help="embedded model: MLP width"),
    lora: bool = typer.Option(False, "--lora", help="HF model: train a LoRA adapter (r 64, alpha 128)"),
    lora_r: int = typer.Option(64),
    lora_alpha: int = typer.Option(128),
    four_bit: bool = typer.Option(False, "--4bit", help="HF model: 4-bit weights (bitsandbytes, GPU)"),
    dtype: str = typer.Option("auto", help="auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16 | fp16"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:k]"),
    save_every: int = typer.Option(1000, min=1, help="steps between checkpoints"),
    log_every: int = typer.Option(20, min=1, help="steps between log rows"),
    eval_data: Optional[Path] = typer.Option(None, help="record file scored (score mode) during and after training"),
    eval_every: int = typer.Option(0, min=0, help="steps between evaluations (0: at the end only)"),
    eval_size: int = typer.Option(1000, min=1, help="eval records used"),
    threads: Optional[int] = typer.Option(None, min=1, help="torch CPU threads (default: 1 if the load is above 1, else 2)"),
    reasoning: bool = typer.Option(False, "--reasoning", help="answers carry the template's reasoning trace"),
    cost_head: float = typer.Option(0.0, help="weight of an auxiliary head regressing each action's cost (embedded)"),
    listwise: float = typer.Option(0.0, help="weight of a listwise loss over every valid answer (soft oracle)"),
    listwise_tau: float = typer.Option(0.5, help="temperature (slots) of the listwise target"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Supervised fine-tuning on oracle labels (completion-only loss); resumable; CSV and TensorBoard logs."""
    from comllm.locking import lock_folder
    from comllm.outputs import check_input, check_paths

    check_input("--data", data)
    check_input("--eval-data", eval_data)
    check_paths({"--out": out}, {"--data": data, "--eval-data": eval_data}, folders=["--out"])
    with lock_folder(out, "sft", log=console.print):  # before the slow imports: a folder in use is refused at once
        from comllm.lm.sft import make_config, train_sft

        cfg = make_config(
            model=model, template=template, data=[str(p) for p in data], out=str(out), resume=resume, steps=steps,
            epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, warmup=warmup, weight_decay=weight_decay,
            seed=seed, max_records=max_records, hidden=hidden, layers=layers, heads=heads, intermediate=intermediate,
            lora=lora, lora_r=lora_r, lora_alpha=lora_alpha, four_bit=four_bit, dtype=dtype, device=device,
            save_every=save_every, log_every=log_every, eval_data=str(eval_data) if eval_data else None,
            eval_every=eval_every, eval_size=eval_size, threads=threads, reasoning=reasoning, progress=progress,
            cost_head=cost_head, listwise=listwise, listwise_tau=listwise_tau,
        )  # fmt: skip
        summary = train_sft(cfg, log=console.print)
    if summary.get("eval"):
        ev = summary["eval"]
        console.print(f"eval: accuracy {ev['acc']:.3f}, perf ratio {ev['perf_ratio']:.4f}")
