"""Supervised fine-tuning on oracle labels: completion-only loss, length-bucketed batches, resumable.

Records (``comllm.data.records``) are rendered with the model's own template
(``Record.task_state()`` -> prompt), so one data file serves every template.
Each example is ``prompt + answer_prefix + answer + EOS``; the loss is the
mean cross-entropy over the answer tokens only (value tokens, which the
embedded model reads but never writes, are not targets).

Robust training (``--perturb FAMILY``, ``--perturb-prob``, ``--perturb-seed``): each
training prompt is, with probability ``perturb_prob``, written by
``perturbed_template(family, seed, base=<the model's template>)`` (:mod:`comllm.text.perturb`;
the answer is unchanged), its family drawn uniformly from the ``--perturb`` list and its
perturbation seed from 1_000_000 up (:data:`~comllm.sft_config.TRAIN_PERTURB_SEEDS`), so the
robustness evaluation's seeds 0..999 are never trained on (:func:`perturbation_draws`:
one generator seeded by ``perturb_seed``, the same draws for the same config, on resume
too). A family the template cannot take (a template without a style, or ``paraphrase`` on
``paper-zh``) stops the run at its start. A new embedded model built for such a run holds
every word the perturbations write (:func:`perturbation_corpus`); a checkpoint whose
vocabulary lacks some gets a warning (they are read as ``<unk>``). With ``--cost-head`` the
auxiliary line losses are computed on the canonical prompts only (a perturbed prompt's lines
may be reordered or reworded); the least-cost regression at the prompt's end is kept for all.
A fresh-view template's cost head regresses the estimates its prompt prints (``Template.printed_estimate``).

Batches: each epoch is a seeded permutation, cut into chunks of 64 batches
whose examples are sorted by length before being cut into batches (bucketing:
the embedded model's prompts have one length per server count, so batches
are almost padding-free); batch order is shuffled. This loop is ours, not
TRL's SFTTrainer: on the embedded model it runs more samples per second
(docs/notes/lm-on-cpu.md; ``benchmarks/lm_speed.py`` measures it again) and it
writes the same ``save_pretrained`` checkpoints.

Outputs in ``out/``: the final checkpoint (model, tokenizer, ``comllm.json``),
``checkpoint-<step>/`` folders (with ``trainer_state.safetensors``: optimizer,
scheduler, step, random states) for ``--resume``, the tokenized data
(``dataset.safetensors``), ``train_log.csv`` and TensorBoard events in ``tb/``.

Safe to interrupt and to share (README, "What is safe"): checkpoints are data
(safetensors weights, tensors plus JSON state: :mod:`comllm.checkpointing`;
no pickle is ever loaded, the ``trainer_state.pt`` / ``dataset.pt`` of older
versions are ignored); each ``checkpoint-<step>`` is built under a temporary
name and renamed when complete; ``--resume`` takes the newest checkpoint that
loads, skipping (with a warning) any that does not; the log is cut back to the
resumed step, so no row repeats; the folder is locked while the run lasts
(:mod:`comllm.locking`).
"""

from __future__ import annotations

import csv
import math
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from pydantic import ValidationError

from comllm.checkpointing import (
    CheckpointError,
    atomic_write_json,
    clean_staging,
    load_state,
    require,
    save_state,
    staged_dir,
    staged_files,
    truncate_csv,
)
from comllm.lm.distributed import DataParallel
from comllm.lm.loading import LMError, LMMeta, LoadedLM, LoraSpec, load_lm, pick_device
from comllm.lm.model import ModelShape, build_model, set_line_positions
from comllm.lm.tokenizer import ComllmTokenizer
from comllm.lm.values import VALUE_RANGES
from comllm.locking import LOCK_FILE, is_main_process, lock_folder
from comllm.sft_config import EVAL_PERTURB_SEEDS, TRAIN_PERTURB_SEEDS, SFTConfig, SFTError, make_config  # noqa: F401
from comllm.state import TaskState

STATE_FILE = "trainer_state.safetensors"
DATASET_FILE = "dataset.safetensors"
#: pickled files of older versions: never loaded (a resume needs a checkpoint of this version)
LEGACY_FILES = ("trainer_state.pt", "dataset.pt")
LOG_FILE = "train_log.csv"


# ---------------------------------------------------------------- examples
@dataclass
class Examples:
    """Tokenized examples: prompt and completion ids, oracle label, per-action costs, server count."""

    prompt: list[np.ndarray]
    completion: list[np.ndarray]
    label: np.ndarray
    n_servers: np.ndarray
    costs: list[np.ndarray]
    line_ends: list[np.ndarray] | None = None  # token position ending each action's line (cost head)
    line_names: list[np.ndarray] | None = None  # the answer token naming each action's line (cost head)

    def __len__(self) -> int:
        return len(self.prompt)

    def lengths(self) -> np.ndarray:
        return np.array([len(p) + len(c) for p, c in zip(self.prompt, self.completion)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_record_states(paths: Iterable[str], limit: int | None = None) -> tuple[list[TaskState], np.ndarray, list[np.ndarray]]:
    """States, oracle labels and per-action costs of record files (``comllm.data.records``)."""
    from comllm.data.records import read_records

    states, labels, costs = [], [], []
    for path in paths:
        if not Path(path).is_file():
            raise SFTError(f"data file '{path}' does not exist")
        for rec in read_records(path):
            states.append(rec.task_state())
            labels.append(int(rec.oracle_action))
            costs.append(np.asarray(rec.costs, dtype=np.float64))
            if limit is not None and len(states) >= limit:
                return states, np.asarray(labels, dtype=np.int64), costs
    if not states:
        raise SFTError(f"no records in {', '.join(paths)}")
    return states, np.asarray(labels, dtype=np.int64), costs


def action_line_ends(lm: LoadedLM, template: Any, prompt: list[int], n_servers: int) -> np.ndarray:
    """Positions of the newline tokens that end each action's line (templates with one line per action)."""
    start = getattr(template, "action_line_start", None)
    if start is None or not lm.is_embedded:
        raise SFTError(f"--cost-head needs the embedded model and a template with one line per action "
                       f"(e.g. raw-compact), not '{template.name}'")  # fmt: skip
    newline = lm.tokenizer.convert_tokens_to_ids("\n")
    pos = np.flatnonzero(np.asarray(prompt) == newline)
    ends = pos[start : start + n_servers + 1]
    if len(ends) != n_servers + 1:
        raise SFTError(f"template '{template.name}': found {len(ends)} action lines, expected {n_servers + 1}")
    return ends


def perturbed_line_ends(lm: LoadedLM, template: Any, prompt: list[int], names: np.ndarray) -> np.ndarray:
    """The action line ends of a perturbed prompt, its server lines found by their ``names`` (id tokens)
    wherever a perturbation moved them (:func:`comllm.lm.scoring.action_line_ends`); empty (its
    auxiliary line losses skipped) when its lines are not one per action."""
    from comllm.lm.scoring import action_line_ends as by_name

    newline = lm.tokenizer.convert_tokens_to_ids("\n")
    try:
        return by_name(prompt, len(names), newline, template.action_line_start, [int(t) for t in names])
    except ValueError:
        return np.zeros(0, dtype=np.int64)


#: a training prompt's perturbation: (family, perturbation seed), or None (the canonical prompt)
Draw = tuple[str, int] | None


def perturbation_draws(n: int, families: list[str] | tuple[str, ...], prob: float, seed: int) -> list[Draw]:
    """Which of ``n`` training prompts are perturbed, and how: deterministic in the arguments.

    One generator seeded by ``seed`` draws, for every sample, whether it is perturbed
    (probability ``prob``), its family (uniform over ``families``) and its perturbation
    seed (uniform in :data:`~comllm.sft_config.TRAIN_PERTURB_SEEDS`, 1_000_000 and up:
    the robustness evaluation's seeds 0..999 never occur). All three are drawn for every
    sample, so sample ``i``'s draw depends only on ``i`` and the arguments.
    """
    if not families or prob <= 0 or n == 0:
        return [None] * n
    rng = np.random.default_rng(int(seed))
    hit = rng.random(n) < prob
    family = rng.integers(len(families), size=n)
    pseed = rng.integers(TRAIN_PERTURB_SEEDS[0], TRAIN_PERTURB_SEEDS[1], size=n)
    return [(families[int(f)], int(k)) if h else None for h, f, k in zip(hit, family, pseed)]


def check_perturbations(template: Any, families: Iterable[str]) -> None:
    """Refuse, before any prompt is rendered, a family the template cannot take (the TextError's message)."""
    from comllm.text import get_template
    from comllm.text.errors import TextError
    from comllm.text.perturb import perturbed_template

    base = get_template(template) if isinstance(template, str) else template
    for family in dict.fromkeys(families):
        try:
            perturbed_template(family, TRAIN_PERTURB_SEEDS[0], base=base)
        except TextError as err:
            raise SFTError(f"--perturb {family}: {err}") from None


def renumber_draws(
    n_servers: np.ndarray, prob: float, max_id: int, seed: int, draws: list[Draw] | None = None,
    increasing: bool = True,
) -> list[tuple[int, ...] | None]:
    """Which training prompts name their servers by other ids, and which ids: deterministic in the arguments.

    A drawn prompt's N servers get N distinct ids from 1..``max_id``, increasing (the
    canonical order, other names), so a model trained on 6 servers also reads and writes
    the ids of larger topologies (README "Zero-shot"). All draws are made for every sample;
    a prompt perturbed by ``draws`` (:func:`perturbation_draws`) keeps its ids. ``increasing=False``:
    the drawn ids in random order (an id then says nothing about a server's place in the list).
    """
    if prob <= 0 or len(n_servers) == 0:
        return [None] * len(n_servers)
    rng = np.random.default_rng([int(seed), 7919])
    hit = rng.random(len(n_servers)) < prob
    keys = rng.random((len(n_servers), max_id))
    perturbed = [d is not None for d in draws] if draws is not None else [False] * len(n_servers)
    out: list[tuple[int, ...] | None] = []
    for h, k, n, p in zip(hit, keys, n_servers.tolist(), perturbed):
        if not h or p or n > max_id:
            out.append(None)
        else:
            pick = np.argsort(k)[:n]
            out.append(tuple(int(x) + 1 for x in (np.sort(pick) if increasing else pick)))
    return out


def training_prompts(lm: LoadedLM, states: list[TaskState], draws: list[Draw] | None = None) -> list[str]:
    """The prompt texts of training states as the model reads them; a drawn one perturbed.

    A perturbed prompt is ``perturbed_template(family, seed, base=<the model's template>)``'s,
    followed by the model's prompt suffix, like :meth:`LoadedLM.prompt_text`.
    """
    if draws is None or not any(draws):
        return [lm.prompt_text(s) for s in states]
    from comllm.text import get_template
    from comllm.text.perturb import perturbed_template

    base = get_template(lm.meta.template)
    check_perturbations(base, {d[0] for d in draws if d is not None})
    suffix = lm.meta.prompt_suffix
    return [
        lm.prompt_text(s) if d is None else perturbed_template(d[0], d[1], base=base).render_prompt(s) + suffix
        for s, d in zip(states, draws)
    ]


def encode_examples(
    lm: LoadedLM,
    states: list[TaskState],
    labels: np.ndarray,
    costs: list[np.ndarray],
    reasoning: bool = False,
    with_line_ends: bool = False,
    perturb: list[str] | tuple[str, ...] = (),
    perturb_prob: float = 0.5,
    perturb_seed: int = 0,
    renumber: float = 0.0,
    renumber_max: int = 24,
    renumber_seed: int = 0,
    renumber_increasing: bool = True,
) -> Examples:
    """Render prompts with the model's template and tokenize prompts and answers.

    ``perturb`` (robust training, ``--perturb``): each prompt is perturbed with probability
    ``perturb_prob`` by a family drawn from ``perturb`` (:func:`perturbation_draws`,
    seeded by ``perturb_seed``); answers are never perturbed. ``renumber`` (``--renumber``):
    each prompt left canonical names its servers by other ids with that probability
    (:func:`renumber_draws`), and its answer names the label's new id.
    """
    from comllm.text import get_template

    template = get_template(lm.meta.template)
    draws = perturbation_draws(len(states), list(perturb), perturb_prob, perturb_seed)
    texts = training_prompts(lm, states, draws)
    n_servers = np.array([s.n_servers for s in states], dtype=np.int64)
    ids = renumber_draws(n_servers, renumber, renumber_max, renumber_seed, draws, renumber_increasing)
    if any(ids):
        if getattr(template, "style", None) is None or not hasattr(template.style, "server_ids"):
            raise SFTError(f"--renumber needs a compact template (a style with server ids), not '{template.name}'")
        for k, (s, i) in enumerate(zip(states, ids)):
            if i is not None:
                texts[k] = type(template)(replace(template.style, server_ids=i)).render_prompt(s) + lm.meta.prompt_suffix
    prompts = lm.encode_prompts(texts)

    def named(a: int, i: tuple[int, ...] | None) -> int:
        return a if a == 0 or i is None else i[a - 1]

    cache: dict[int, list[int]] = {}
    completions = []
    for s, a, i in zip(states, labels, ids):
        a = named(int(a), i)
        if reasoning:
            if i is not None:
                raise SFTError("--renumber does not combine with --reasoning (the trace names servers by index)")
            completions.append(lm.encode_answer(template.render_answer(a, template.reasoning_trace(s))))
        else:
            if a not in cache:
                cache[a] = lm.encode_answer(template.render_answer(a))
            completions.append(cache[a])
    line_ends = line_names = None
    if with_line_ends:
        name_of: dict[int, int] = {}
        for a in {named(a, i) for s, i in zip(states, ids) for a in range(s.n_servers + 1)}:
            name_of[a] = lm.encode_answer(template.render_answer(a))[-2]  # the id's token, before EOS
        line_names = [np.array([name_of[named(a, i)] for a in range(s.n_servers + 1)], dtype=np.int64)
                      for s, i in zip(states, ids)]  # fmt: skip
        line_ends = [
            action_line_ends(lm, template, p, s.n_servers) if d is None else perturbed_line_ends(lm, template, p, names[1:])
            for p, s, d, names in zip(prompts, states, draws, line_names)
        ]
        if template.printed_estimate != "paper":
            costs = printed_estimates(states, template)
    return Examples(
        line_ends=line_ends,
        line_names=line_names,
        prompt=[np.asarray(p, dtype=np.int64) for p in prompts],
        completion=[np.asarray(c, dtype=np.int64) for c in completions],
        label=np.asarray(labels, dtype=np.int64),
        n_servers=np.array([s.n_servers for s in states], dtype=np.int64),
        costs=[np.asarray(c, dtype=np.float64) for c in costs],
    )


def printed_estimates(states: list[TaskState], template: Any) -> list[np.ndarray]:
    """Each state's one-step estimates (slots) as ``template`` prints them (``Template.printed_estimate``).

    The cost head of a model on a fresh-view template regresses these rather than the records'
    ``costs`` (the paper's stale formula, which such a prompt does not show).
    """
    from comllm.state import StateBatch, group_by_servers

    out: list[np.ndarray] = [np.zeros(0)] * len(states)
    for members in group_by_servers(states).values():
        est = template.estimate_costs(StateBatch.from_states([states[i] for i in members]))
        for row, i in enumerate(members):
            out[i] = est[row]
    return out


def bucketed_batches(lengths: np.ndarray, batch_size: int, seed: int, chunk_batches: int = 64) -> list[np.ndarray]:
    """One epoch of batches (index arrays), deterministic in ``seed``; similar lengths share a batch."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches = []
    for lo in range(0, len(perm), chunk):
        part = perm[lo : lo + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def collate(ex: Examples, idx: np.ndarray, pad_id: int, n_words: int | None) -> tuple[torch.Tensor, ...]:
    """Right-padded ``ids``, ``mask`` and ``labels`` (-100 except answer tokens) of a batch."""
    seqs = [np.concatenate([ex.prompt[i], ex.completion[i]]) for i in idx]
    t = max(len(s) for s in seqs)
    ids = torch.full((len(idx), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), t), dtype=torch.long)
    labels = torch.full((len(idx), t), -100, dtype=torch.long)
    for r, (i, s) in enumerate(zip(idx, seqs)):
        ids[r, : len(s)] = torch.from_numpy(s)
        mask[r, : len(s)] = 1
        p = len(ex.prompt[i])
        labels[r, p : len(s)] = torch.from_numpy(ex.completion[i])
    if n_words is not None:  # the embedded model reads value tokens but has no output for them
        labels[labels >= n_words] = -100
    return ids, mask, labels


def gapped_positions(ids: torch.Tensor, newline: int, max_gap: int, seeds: list[list[int]]) -> torch.Tensor | None:
    """Position ids ``(B, T)`` that skip 0..``max_gap`` ids after every newline token (``--line-gaps``).

    Token ``t`` sits at ``t + sum of the gaps drawn at the newlines before it``: the distance from
    the answer to each action line varies from one training example to the next, so the model
    must find a line by what it says, not where it is. Row ``r``'s gaps come from a generator
    seeded by ``seeds[r]`` (the run's seed, the step, the example: the same draws on resume and
    whatever the process count). ``None`` when ``max_gap`` is 0.
    """
    if max_gap <= 0:
        return None
    nl = (ids == newline).cpu().numpy()
    draws = np.stack([np.random.default_rng(sd).integers(0, max_gap + 1, size=nl.shape[1]) for sd in seeds])
    gaps = np.where(nl, draws, 0)
    before = np.cumsum(gaps, axis=1) - gaps  # the gap of a newline moves the tokens after it
    pos = np.arange(ids.shape[1])[None, :] + before
    return torch.from_numpy(pos.astype(np.int64)).to(ids.device)


def cost_head_loss(
    model: torch.nn.Module,
    ids: torch.Tensor,
    labels: torch.Tensor,
    ex: Examples,
    idx: np.ndarray,
    line_tokens: Callable[[int], list[int]],
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer cross-entropy and the auxiliary line losses, from one forward pass.

    At the newline ending each action's line: the cost head regresses
    ``log1p(min(cost, 100))`` of that action (slots), and the LM head predicts
    the answer token that names the action (`` local`` / the id `` K``); at the
    prompt's last token the cost head regresses the least cost. A dense signal
    that teaches the cost model, where the best action is and which id names
    it (the cost head is unused when deciding).
    """
    mask = None
    if getattr(model.config, "line_positions", "absolute") != "absolute":  # the model's line rule (its forward applies it by itself)
        position_ids, mask = model.line_inputs(ids, position_ids)
    hidden = model.model(input_ids=ids, position_ids=position_ids, attention_mask=mask, use_cache=False).last_hidden_state
    first = int((labels != -100).float().argmax(dim=1).min())
    logits = model.lm_head(hidden[:, first - 1 : -1]).float()
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, first:].reshape(-1), ignore_index=-100
    )
    lined = [i for i in idx if len(ex.line_ends[i])]  # a prompt whose lines are not one per action has none
    rows = {i: r for r, i in enumerate(idx)}
    ends_r = np.concatenate([np.full(len(ex.line_ends[i]), rows[i]) for i in lined] or [np.zeros(0, np.int64)])
    ends_c = np.concatenate([ex.line_ends[i] for i in lined] or [np.zeros(0, np.int64)])
    line_hidden = hidden[torch.from_numpy(ends_r), torch.from_numpy(ends_c)]
    last_hidden = hidden[torch.arange(len(idx)), torch.from_numpy(np.array([len(ex.prompt[i]) - 1 for i in idx]))]
    target = np.concatenate([np.concatenate([ex.costs[i] for i in lined] or [np.zeros(0)]), [ex.costs[i].min() for i in idx]])
    target = torch.from_numpy(np.log1p(np.minimum(target, 100.0))).float().to(hidden.device)
    pred = model.cost_head(torch.cat([line_hidden, last_hidden])).squeeze(-1).float()
    aux = torch.nn.functional.mse_loss(pred, target)
    if lined:
        per = (lambda i: ex.line_names[i]) if ex.line_names is not None else (lambda i: line_tokens(int(ex.n_servers[i])))
        names = torch.from_numpy(np.concatenate([per(i) for i in lined])).to(hidden.device)
        aux = aux + torch.nn.functional.cross_entropy(model.lm_head(line_hidden).float(), names)
    return ce, aux


def listwise_loss(
    lm: LoadedLM, ex: Examples, idx: np.ndarray, answers: Callable[[int], list[list[int]]], tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer cross-entropy and a listwise KL to the soft oracle, from one tree forward per server count.

    Every valid answer's log-likelihood comes out of one pass (:func:`candidate_logprobs`):
    the cross-entropy is that of the label's tokens (the plain SFT loss), and
    ``KL(q || p)`` compares the model's distribution over valid answers ``p``
    with ``q = softmax(-cost / tau)`` over every action's cost (slots), a
    dense signal about how good each answer is, not only which one is best.
    """
    from comllm.lm.scoring import candidate_logprobs

    ce_sum = torch.zeros(())
    kl_sum = torch.zeros(())
    n_tok = 0
    for n in np.unique(ex.n_servers[idx]):
        sub = idx[ex.n_servers[idx] == n]
        cands = answers(int(n))
        scores = candidate_logprobs(lm.model, [ex.prompt[i].tolist() for i in sub], cands, lm.tokenizer.pad_token_id)
        labels = torch.from_numpy(ex.label[sub]).to(scores.device)
        ce_sum = ce_sum + (-scores.gather(1, labels[:, None])).sum()
        n_tok += sum(len(cands[int(a)]) for a in ex.label[sub])
        costs = torch.from_numpy(np.minimum(np.stack([ex.costs[i] for i in sub]), 100.0)).float().to(scores.device)
        q = torch.softmax(-costs / tau, dim=1)
        logp = torch.log_softmax(scores, dim=1)
        kl_sum = kl_sum + (q * (torch.log(q.clamp_min(1e-12)) - logp)).sum()
    return ce_sum / n_tok, kl_sum / len(idx)


def answer_loss(
    model: torch.nn.Module, ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens; logits only where answers are.

    Batches are right-padded, so under the causal mask no real token ever sees
    a pad: no attention mask is needed (and sdpa takes its fast causal path).
    """
    first = int((labels != -100).float().argmax(dim=1).min())  # earliest answer position in the batch
    keep = ids.shape[1] - first + 1
    out = model(input_ids=ids, position_ids=position_ids, logits_to_keep=keep, use_cache=False)
    logits = out.logits[:, :-1].float()  # position p predicts token p + 1
    target = labels[:, ids.shape[1] - keep + 1 :]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)


def lr_lambda(schedule: str, total: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        frac = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else 1.0 - frac

    return f


# ---------------------------------------------------------------- models
#: perturbed prompts per template and family in a new model's vocabulary corpus
PERTURBED_CORPUS_PROMPTS = 8


def perturbation_corpus(
    templates: Iterable[Any], states: list[TaskState], per_family: int = PERTURBED_CORPUS_PROMPTS
) -> list[str]:
    """Texts holding every word the perturbations of ``templates`` write (:mod:`comllm.text.perturb`).

    For each template with a style: every word of its word tables (what ``paraphrase``
    picks from, all of them, each alone and each as a label of a rendered prompt), and
    ``per_family`` prompts of each family it takes, with seeds ``0..per_family - 1``
    (units, number formats, field orders: words at a line start), the states cycled;
    their number does not depend on how many states there are. The states with the fewest
    servers (at least 2) are used: the words do not depend on the server count.
    """
    from comllm.text.errors import TextError
    from comllm.text.perturb import PERTURBATIONS, perturbed_template

    states = sorted(states, key=lambda s: (s.n_servers < 2, s.n_servers))[:8]
    out: list[str] = []
    for t in templates:
        style = t.style
        if style is None:
            continue
        if "labels" in style.PERTURBABLE:
            tables = style.word_tables()
            out.extend(w for table in tables for words in table.values() for w in words)
            width = max((len(words) for table in tables for words in table.values()), default=0)
            for i in range(width):  # every key's i-th word (its last one when it has fewer) at once
                labels = {**style.labels, **{k: w[min(i, len(w) - 1)] for table in tables for k, w in table.items()}}
                out.extend(t.with_style(replace(style, labels=labels)).render_prompt(s) for s in states[:4])
        for name in PERTURBATIONS:
            try:
                perturbed_template(name, 0, base=t)
            except TextError:
                continue  # a family the template does not take writes nothing
            out.extend(
                perturbed_template(name, k, base=t).render_prompt(states[k % len(states)]) for k in range(per_family)
            )
    return _distinct_lines(out)


def _distinct_lines(texts: Iterable[str]) -> list[str]:
    """The distinct lines of ``texts``, numbers written ``0``: the same words for the vocabulary, far less text.

    (Numbers are no words: the vocabulary builder drops them, and an integer it keeps, a
    server id, is always in the vocabulary; no word piece spans a line break.)
    """
    number = re.compile(r"\d+(?:\.\d+)?")
    return list(dict.fromkeys(number.sub("0", line) for text in texts for line in text.split("\n")))


def new_embedded_lm(
    template: str,
    corpus_states: list[TaskState],
    shape: ModelShape,
    seed: int,
    perturbation_words: bool = False,
    value_range: str = "wide",
) -> LoadedLM:
    """A fresh embedded model whose word vocabulary covers every registered template and answer.

    ``perturbation_words`` (what ``comllm sft --perturb`` asks for): every word the prompt
    perturbations write too (:func:`perturbation_corpus`), so that no perturbed prompt
    meets an unknown word. Without it the vocabulary, hence the initialisation, is the
    one of before (the perturbations' words are left out: a model that never reads them
    in training gains nothing from having them). ``value_range``: a key of
    :data:`~comllm.lm.values.VALUE_RANGES` (``wide`` reads values written in other units
    unclipped; ``narrow`` is the codec of the checkpoints made before it).
    """
    from comllm.text import TEMPLATES

    corpus: list[str] = []
    for t in TEMPLATES.values():
        for s in corpus_states:
            corpus.append(t.render_prompt(s))
        n_max = max(s.n_servers for s in corpus_states)
        corpus.extend(" " + a for a in t.answers(max(n_max, 32)))
        corpus.append(t.render_answer(1, t.reasoning_trace(corpus_states[0])))
    if perturbation_words:
        corpus.extend(perturbation_corpus(TEMPLATES.values(), corpus_states))
    for suffix in ("\nanswer:", "\n决策："):
        corpus.append(suffix)
    build_dir = tempfile.mkdtemp(prefix="comllm-tok-")
    try:
        tokenizer = ComllmTokenizer.build(corpus, build_dir, codec=VALUE_RANGES[value_range])
        model = build_model(tokenizer, shape, seed=seed)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return LoadedLM(model=model, tokenizer=tokenizer, meta=LMMeta.for_template(template), source="default")


def _add_cost_head(lm: LoadedLM) -> None:
    """Give an embedded model its auxiliary cost head (kept in the checkpoint, unused when deciding)."""
    if not lm.is_embedded:
        raise SFTError("--cost-head is for the embedded model (its hidden states sit on the prompt's line ends)")
    model = lm.model
    if getattr(model, "cost_head", None) is None:
        model.config.cost_head = True
        model.cost_head = torch.nn.Linear(model.config.hidden_size, 1).to(next(model.parameters()).device)


def auto_threads() -> int:
    """1 thread while another job loads the machine (load average above 1), else 2."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return 1 if load > 1.0 else min(2, os.cpu_count() or 1)


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def quick_eval(
    lm: LoadedLM, states: list[TaskState], costs: list[np.ndarray], batch: int = 64, mode: str = "score"
) -> dict[str, float]:
    """Accuracy and perf ratio (oracle cost / chosen cost), overall and per server count, of the model
    deciding in ``mode`` (``score``, or ``cost`` for a model trained to decide by its cost head: the
    run's ``--mode``, what its checkpoint will decide by).

    A fresh-view model is scored against the estimates its prompt prints (``greedy:incoming``'s, or
    ``greedy:sharing``'s for ``lean-sharing``), not ``costs`` (the paper's formula).
    """
    from comllm.lm.policy import DecodeOptions, LMPolicy
    from comllm.text import get_template

    template = get_template(lm.meta.template)
    if template.printed_estimate != "paper":
        costs = printed_estimates(states, template)

    was_training = lm.model.training
    policy = LMPolicy(lm, DecodeOptions(mode=mode, batch=batch))
    actions = policy.decide(states)
    lm.model.train(was_training)
    oracle = np.array([c.min() for c in costs])
    chosen = np.array([c[a] for c, a in zip(costs, actions)])
    best = np.array([int(np.argmin(c)) for c in costs])
    ns = np.array([s.n_servers for s in states])
    out = {"acc": float((actions == best).mean()), "perf_ratio": float(oracle.sum() / chosen.sum())}
    for n in sorted(set(ns.tolist())):
        m = ns == n
        out[f"perf_ratio_n{n}"] = float(oracle[m].sum() / chosen[m].sum())
    return out


# ---------------------------------------------------------------- training
def _silent(msg: str) -> None:
    """The log of ranks other than 0."""


class _NullWriter:
    """TensorBoard writer of ranks other than 0."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _checkpoints(out: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*") if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    return [p for _, p in sorted(found)]


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _resume_point(
    ckpts: list[Path], device: str, log: Callable[[str], None]
) -> tuple[Path, dict[str, Any], SFTConfig, LoadedLM] | None:
    """The newest checkpoint whose state and model both load; the others are skipped with a warning."""
    for ck in reversed(ckpts):
        path = ck / STATE_FILE
        try:
            if not path.is_file() and any((ck / name).is_file() for name in LEGACY_FILES):
                raise CheckpointError(f"it holds a {LEGACY_FILES[0]} of an older comllm (pickle: never loaded)")
            state = load_state(path)
            require(state, path, "step", "samples", "elapsed", "optimizer", "scheduler", "rng", "config")
            try:
                saved = SFTConfig(**state["config"])
            except (ValidationError, TypeError) as err:
                raise CheckpointError(f"state file '{path}': its 'config' does not validate ({str(err).splitlines()[0][:120]})") from None
            lm = load_lm(ck, device=device, dtype=saved.dtype, trainable=True)
        except (CheckpointError, LMError) as err:
            log(f"warning: skipping checkpoint '{ck}': {err}")
            continue
        return ck, state, saved, lm
    return None


def _pack(arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """A list of 1-D arrays as one array of values and one of lengths."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    values = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return {"values": values, "lengths": lengths}


def _unpack(packed: dict[str, Any]) -> list[np.ndarray]:
    values, lengths = np.asarray(packed["values"]), np.asarray(packed["lengths"], dtype=np.int64)
    if lengths.sum() != len(values) or (lengths < 0).any():
        raise ValueError(f"{len(values)} values do not split into lengths summing to {lengths.sum()}")
    return np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _write_examples(path: Path, ex: Examples) -> None:
    """The tokenized data set, as a state file (arrays only)."""
    save_state(path, {
        "prompt": _pack(ex.prompt), "completion": _pack(ex.completion), "label": ex.label, "n_servers": ex.n_servers,
        "costs": _pack(ex.costs), "line_ends": None if ex.line_ends is None else _pack(ex.line_ends),
        "line_names": None if ex.line_names is None else _pack(ex.line_names),
    })  # fmt: skip


def _read_examples(path: Path, log: Callable[[str], None]) -> Examples | None:
    """The tokenized data set of a run, or None (missing or unreadable: the caller tokenizes again)."""
    if not path.is_file():
        return None
    try:
        blob = load_state(path)
        require(blob, path, "prompt", "completion", "label", "n_servers", "costs")
        ex = Examples(
            prompt=_unpack(blob["prompt"]), completion=_unpack(blob["completion"]),
            label=np.asarray(blob["label"], dtype=np.int64), n_servers=np.asarray(blob["n_servers"], dtype=np.int64),
            costs=_unpack(blob["costs"]), line_ends=None if blob.get("line_ends") is None else _unpack(blob["line_ends"]),
            line_names=None if blob.get("line_names") is None else _unpack(blob["line_names"]),
        )  # fmt: skip
    except (CheckpointError, ValueError, KeyError, TypeError) as err:
        log(f"warning: tokenizing the data again: {err}")
        return None
    n = len(ex.prompt)
    if not all(len(x) == n for x in (ex.completion, ex.label, ex.n_servers, ex.costs)):
        log(f"warning: tokenizing the data again: '{path}' holds columns of different lengths")
        return None
    return ex


def train_sft(cfg: SFTConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) SFT as configured; returns a summary (steps, samples, wall time, final eval).

    The output folder is locked while the run lasts: a second run into it stops
    with a :class:`~comllm.locking.LockError` naming this one's pid.
    """
    out = Path(cfg.out)
    if cfg.resume and not out.is_dir():
        raise SFTError(f"--resume: no checkpoint-* folder in '{out}'")
    with lock_folder(out, "sft", log=log):
        if is_main_process():
            clean_staging(out)
        return _train_sft(cfg, log)


def _train_sft(cfg: SFTConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Check the folder, find the start point, load the data, train, save (one :class:`_SFTRun`)."""
    out = Path(cfg.out)
    threads = cfg.threads or auto_threads()
    torch.set_num_threads(threads)
    dp = DataParallel.from_env()  # several processes under accelerate launch / torchrun
    if not dp.main:
        log = _silent
    device = dp.init(pick_device(cfg.device))
    if cfg.perturb and cfg.template and not cfg.resume:  # fail at the start, before the data and the model
        check_perturbations(cfg.template, cfg.perturb)
    ckpts = _check_folder(cfg, out, dp)
    cfg, state, lm = _start_point(cfg, out, ckpts, device, dp, log)
    lm, train_ex, evals = _training_data(cfg, lm, device, dp, out, log)
    run = _SFTRun(cfg, out, lm, train_ex, evals, state, dp, device, threads, log)
    run.train()
    return run.finish()


def _check_folder(cfg: SFTConfig, out: Path, dp: DataParallel) -> list[Path]:
    """The run folder's checkpoints, after refusing a resume with nothing to resume or a fresh run into a used folder."""
    ckpts = _checkpoints(out) if out.is_dir() else []
    traces = out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir())
    if cfg.resume and not ckpts and not traces:
        raise SFTError(f"--resume: no checkpoint-* folder in '{out}'")
    if not cfg.resume and out.is_dir() and (ckpts or (out / "config.json").exists()):
        raise SFTError(f"output folder '{out}' already holds a run; use --resume or another --out")
    dp.barrier()  # every rank has checked the folder before rank 0 writes into it
    out.mkdir(parents=True, exist_ok=True)
    return ckpts


def _start_point(
    cfg: SFTConfig, out: Path, ckpts: list[Path], device: str, dp: DataParallel, log: Callable[[str], None]
) -> tuple[SFTConfig, dict[str, Any] | None, LoadedLM | None]:
    """Seed everything; on ``--resume``, the run's saved config, state and model (None: from step 0)."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if not cfg.resume:
        return cfg, None, None
    found = _resume_point(ckpts, device, log)
    if found is None:
        log(f"warning: '{out}' holds no complete checkpoint (interrupted before the first one): "
            "training starts from step 0")  # fmt: skip
        if dp.main:
            shutil.rmtree(out / "tb", ignore_errors=True)  # the interrupted run's events
        return cfg.model_copy(update={"resume": False}), None, None
    last, state, saved, lm = found
    # the schedule and data of the run being resumed win over new flags, except bookkeeping
    cfg = saved.model_copy(update={"resume": True, "progress": cfg.progress, "threads": cfg.threads})
    log(f"resuming from {last} (step {state['step']})")
    return cfg, state, lm


def _new_lm(cfg: SFTConfig, states: list[TaskState], device: str) -> LoadedLM:
    """The model a fresh run starts from: a new embedded model, or a checkpoint / HF model."""
    if cfg.model == "default":
        shape = ModelShape(hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads, intermediate=cfg.intermediate)
        pick = np.random.default_rng(cfg.seed).choice(len(states), min(len(states), 300), replace=False)
        lm = new_embedded_lm(cfg.template, [states[i] for i in pick], shape, cfg.seed,  # type: ignore[arg-type]
                             perturbation_words=bool(cfg.perturb), value_range=cfg.value_range)  # fmt: skip
        lm.model.to(device)
        return lm
    lora = LoraSpec(r=cfg.lora_r, alpha=cfg.lora_alpha) if cfg.lora else None
    try:
        return load_lm(cfg.model, template=cfg.template, lora=lora, four_bit=cfg.four_bit, dtype=cfg.dtype,
                       device=device, trainable=True)  # fmt: skip
    except LMError as err:
        raise SFTError(str(err)) from None


def _eval_records(cfg: SFTConfig) -> tuple[list[TaskState], list[np.ndarray]]:
    if not cfg.eval_data:
        return [], []
    states, _, costs = read_record_states([cfg.eval_data], cfg.eval_size)
    return states, costs


def _training_data(
    cfg: SFTConfig, lm: LoadedLM | None, device: str, dp: DataParallel, out: Path, log: Callable[[str], None]
) -> tuple[LoadedLM, Examples, tuple[list[TaskState], list[np.ndarray]]]:
    """The model, the tokenized examples (the run's cache on resume) and the eval records."""
    data_cache = out / DATASET_FILE
    train_ex = _read_examples(data_cache, log) if cfg.resume else None
    if train_ex is not None:
        assert lm is not None  # a resumed run has its model
        return lm, train_ex, _eval_records(cfg)
    t0 = time.time()
    states, labels, costs = read_record_states(cfg.data, cfg.max_records)
    log(f"read {len(states)} records in {time.time() - t0:.1f}s")
    if not cfg.resume:
        lm = _new_lm(cfg, states, device)
    assert lm is not None
    t0 = time.time()
    if cfg.line_gaps > 0 and not lm.is_embedded:
        raise SFTError(f"--line-gaps {cfg.line_gaps} is for the embedded model (its prompt lines end in one newline token)")
    if cfg.line_positions is not None or cfg.line_compare is not None:
        if not lm.is_embedded:
            raise SFTError(f"--line-positions / --line-compare are for the embedded model (its prompt lines end in one newline token)")
        scheme = cfg.line_positions or lm.model.config.line_positions
        set_line_positions(lm.model.config, scheme, lm.tokenizer.convert_tokens_to_ids("\n"), cfg.line_compare)
    if cfg.cost_head > 0:
        _add_cost_head(lm)
    if cfg.perturb:  # a template the families cannot perturb stops here, before any prompt is rendered
        check_perturbations(lm.meta.template, cfg.perturb)
    train_ex = encode_examples(lm, states, labels, costs, reasoning=cfg.reasoning, with_line_ends=cfg.cost_head > 0,
                               perturb=cfg.perturb, perturb_prob=cfg.perturb_prob, perturb_seed=cfg.perturb_seed,
                               renumber=cfg.renumber, renumber_max=cfg.renumber_max, renumber_seed=cfg.seed)  # fmt: skip
    if cfg.renumber > 0:
        draws = perturbation_draws(len(states), cfg.perturb, cfg.perturb_prob, cfg.perturb_seed)
        hit = sum(i is not None for i in renumber_draws(train_ex.n_servers, cfg.renumber, cfg.renumber_max, cfg.seed, draws))
        log(f"renumbered the servers of {hit} of {len(states)} prompts (ids 1..{cfg.renumber_max})")
    log(f"tokenized {len(train_ex)} examples in {time.time() - t0:.1f}s "
        f"(mean length {train_ex.lengths().mean():.0f} tokens)")  # fmt: skip
    if cfg.perturb:
        draws = perturbation_draws(len(states), cfg.perturb, cfg.perturb_prob, cfg.perturb_seed)
        hit = sum(d is not None for d in draws)
        log(f"perturbed {hit} of {len(states)} prompts ({', '.join(cfg.perturb)}; "
            f"p {cfg.perturb_prob:g}, seed {cfg.perturb_seed})")  # fmt: skip
        unknown = _prompts_with_unknown_words(lm, train_ex)
        if unknown:
            log(f"warning: {unknown} training prompts hold words outside the vocabulary of '{lm.source}' (read as <unk>):"
                " its tokenizer predates the perturbations' words; a new model (--model default) has them all")  # fmt: skip
    evals = _eval_records(cfg)
    if dp.main:
        _write_examples(data_cache, train_ex)
    return lm, train_ex, evals


def _prompts_with_unknown_words(lm: LoadedLM, ex: Examples) -> int:
    """How many prompts hold the embedded tokenizer's unknown word (0 for a HF model)."""
    if not lm.is_embedded:
        return 0
    from comllm.lm.tokenizer import UNK

    unk = lm.tokenizer.convert_tokens_to_ids(UNK)
    return sum(bool((p == unk).any()) for p in ex.prompt)


LOG_FIELDS = ["step", "samples", "loss", "aux_loss", "lr", "samples_per_s", "elapsed_s", "eval_acc", "eval_perf_ratio"]


class _SFTRun:
    """One SFT run once its model and data are ready: optimizer, schedule, logs, the step loop,
    checkpoints and the final save. Its counters (``step``, ``samples``, ``elapsed``) and the
    random states are what a checkpoint holds, so a resumed run continues exactly."""

    def __init__(self, cfg: SFTConfig, out: Path, lm: LoadedLM, train_ex: Examples,
                 evals: tuple[list[TaskState], list[np.ndarray]], state: dict[str, Any] | None, dp: DataParallel,
                 device: str, threads: int, log: Callable[[str], None]) -> None:  # fmt: skip
        self.cfg, self.out, self.lm, self.train_ex, self.dp, self.device, self.log = cfg, out, lm, train_ex, dp, device, log
        self.eval_states, self.eval_costs = evals
        self.threads = threads
        self.model = lm.model
        self.model.train()
        dp.broadcast_params(self.model.parameters())
        self.n_words = lm.tokenizer.n_words if lm.is_embedded else None
        self.pad_id = lm.tokenizer.pad_token_id
        self.newline_id = lm.tokenizer.convert_tokens_to_ids("\n")
        self.per_epoch = math.ceil(len(train_ex) / cfg.batch_size)
        self.total = cfg.steps or max(1, math.ceil(cfg.epochs * self.per_epoch))
        lr = cfg.lr or (1e-3 if lm.is_embedded else 1e-5)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg.schedule, self.total, int(cfg.warmup * self.total)))
        self.step, self.samples, self.elapsed = 0, 0, 0.0
        if state is not None:
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            self.step, self.samples, self.elapsed = state["step"], state["samples"], state["elapsed"]
            _set_rng_state(state["rng"])
        n_params = sum(p.numel() for p in self.model.parameters())
        n_train = sum(p.numel() for p in self.params)
        log(f"model {lm.source}: {n_params / 1e6:.2f} M parameters ({n_train / 1e6:.2f} M trained), "
            f"template {lm.meta.template}, {self.total} steps of {cfg.batch_size}, lr {lr:g} {cfg.schedule}, {threads} threads"
            + (f", {dp.world} data-parallel processes" if dp.active else ""))  # fmt: skip
        self._answers: dict[int, list[list[int]]] = {}
        self.losses: list[float] = []
        self.aux_losses: list[float] = []
        self._open_logs(state)

    def _open_logs(self, state: dict[str, Any] | None) -> None:
        """TensorBoard events and ``train_log.csv``; on resume, the rows after the checkpoint are dropped."""
        from torch.utils.tensorboard import SummaryWriter

        out, dp = self.out, self.dp
        purge = state["step"] if state is not None and state["step"] > 0 else None
        self.writer = SummaryWriter(str(out / "tb"), purge_step=purge) if dp.main else _NullWriter()
        log_path = out / LOG_FILE
        new_log = not log_path.exists() or state is None
        if not new_log and dp.main:  # rows after the checkpoint are written again: drop them (and the final eval row)
            at = int(state["step"])  # type: ignore[index]
            truncate_csv(log_path, at, keep=lambda r: int(r["step"]) < at or bool(r.get("loss")))
        self.log_file = open(log_path if dp.main else os.devnull, "w" if new_log else "a", newline="")
        self.log_writer = csv.DictWriter(self.log_file, fieldnames=LOG_FIELDS)
        if new_log:
            self.log_writer.writeheader()

    def save_checkpoint(self) -> None:
        """``checkpoint-<step>``: the model and the trainer state, built under a temporary name."""
        dp, out = self.dp, self.out
        if not dp.main:
            dp.barrier()
            return
        with staged_dir(out / f"checkpoint-{self.step}") as tmp:  # renamed into place once complete
            self.lm.save(tmp)
            save_state(
                tmp / STATE_FILE,
                {"step": self.step, "samples": self.samples, "elapsed": self.elapsed, "optimizer": self.opt.state_dict(),
                 "scheduler": self.sched.state_dict(), "rng": _rng_state(), "config": self.cfg.model_dump()},
            )  # fmt: skip
        for old in _checkpoints(out)[: -self.cfg.keep]:
            shutil.rmtree(old, ignore_errors=True)
        dp.barrier()

    def evaluate(self) -> dict[str, float]:
        if not self.eval_states or not self.dp.main:
            return {}
        res = quick_eval(self.lm, self.eval_states, self.eval_costs, mode=self.cfg.mode or "score")
        for k, v in res.items():
            self.writer.add_scalar(f"eval/{k}", v, self.step)
        return res

    def answer_ids(self, n: int) -> list[list[int]]:
        if n not in self._answers:
            from comllm.text import get_template

            self._answers[n] = [self.lm.encode_answer(a) for a in get_template(self.lm.meta.template).answers(n)]
        return self._answers[n]

    def line_tokens(self, n: int) -> list[int]:
        """The token that names each action (last token of its answer before EOS)."""
        return [a[-2] for a in self.answer_ids(n)]

    def train(self) -> None:
        """Steps until ``total``: batches bucketed per epoch, a log row every ``log_every``, checkpoints."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        cfg = self.cfg
        lengths = self.train_ex.lengths()
        epoch, pos = divmod(self.step, self.per_epoch)
        batches = bucketed_batches(lengths, cfg.batch_size, cfg.seed + epoch)
        self.t_last, self.s_last = time.time(), self.samples
        progress = Progress(
            TextColumn("[bold]sft"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), disable=not (cfg.progress and self.dp.main),
        )  # fmt: skip
        with progress:
            task = progress.add_task("sft", total=self.total, completed=self.step, loss="–")
            while self.step < self.total:
                if pos >= len(batches):
                    epoch, pos = epoch + 1, 0
                    batches = bucketed_batches(lengths, cfg.batch_size, cfg.seed + epoch)
                batch = batches[pos]
                pos += 1
                loss = self._train_step(batch)
                progress.update(task, advance=1, loss=f"{loss:.4f}")
                if self.step % cfg.log_every == 0 or self.step == self.total:
                    self._log_row()
                if self.step % cfg.save_every == 0 and self.step != self.total:
                    self.save_checkpoint()
                    self.t_last = time.time()

    def _train_step(self, batch: np.ndarray) -> float:
        """One optimizer step on ``batch`` (this process's shard of it); the loss."""
        cfg, device, model = self.cfg, self.device, self.model
        idx = self.dp.shard(batch)  # the whole batch unless several processes share it
        ids, _, labels = collate(self.train_ex, idx, self.pad_id, self.n_words)
        pos = None
        if cfg.line_gaps > 0:
            seeds = [[cfg.seed, self.step, int(i)] for i in idx]
            pos = gapped_positions(ids, self.newline_id, cfg.line_gaps, seeds).to(device)
        if cfg.cost_head > 0:
            ce, aux = cost_head_loss(model, ids.to(device), labels.to(device), self.train_ex, idx, self.line_tokens, pos)
            loss = ce + cfg.cost_head * aux
            self.aux_losses.append(aux.item())
        elif cfg.listwise > 0:
            ce, aux = listwise_loss(self.lm, self.train_ex, idx, self.answer_ids, cfg.listwise_tau)
            loss = ce + cfg.listwise * aux
            self.aux_losses.append(aux.item())
        else:
            loss = ce = answer_loss(model, ids.to(device), labels.to(device), pos)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.dp.average_gradients(self.params)
        torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.step += 1
        self.samples += len(batch)
        self.losses.append(ce.item())  # the answer cross-entropy (the aux term is logged apart)
        return loss.item()

    def _log_row(self) -> None:
        """A row of ``train_log.csv`` and TensorBoard (and an evaluation every ``eval_every``)."""
        cfg, step = self.cfg, self.step
        now = time.time()
        self.elapsed += now - self.t_last
        rate = (self.samples - self.s_last) / max(now - self.t_last, 1e-9)
        self.t_last, self.s_last = now, self.samples
        row: dict[str, Any] = {"step": step, "samples": self.samples, "loss": float(np.mean(self.losses)),
                               "lr": self.sched.get_last_lr()[0], "samples_per_s": rate, "elapsed_s": self.elapsed}  # fmt: skip
        self.losses = []
        if self.aux_losses:
            row["aux_loss"] = float(np.mean(self.aux_losses))
            self.writer.add_scalar("train/aux_loss", row["aux_loss"], step)
            self.aux_losses = []
        if cfg.eval_every and step % cfg.eval_every == 0 and step != self.total:
            ev = self.evaluate()
            self.dp.barrier()
            row["eval_acc"] = ev.get("acc")
            row["eval_perf_ratio"] = ev.get("perf_ratio")
            self.t_last = time.time()  # evaluation time is not training time
        for k in ("loss", "lr", "samples_per_s"):
            self.writer.add_scalar(f"train/{k}", row[k], step)
        self.log_writer.writerow(row)
        self.log_file.flush()

    def finish(self) -> dict[str, Any]:
        """The final evaluation, checkpoint, model and ``train_summary.json``; the summary."""
        dp, out, cfg = self.dp, self.out, self.cfg
        last_eval = self.evaluate()
        if last_eval:
            self.log_writer.writerow({"step": self.step, "samples": self.samples, "eval_acc": last_eval["acc"],
                                      "eval_perf_ratio": last_eval["perf_ratio"], "elapsed_s": self.elapsed})  # fmt: skip
        self.log_file.close()
        self.writer.close()
        summary = {"steps": self.step, "samples": self.samples, "train_wall_s": round(self.elapsed, 1),
                   "threads": self.threads, "processes": dp.world, "eval": last_eval,
                   "config": cfg.model_dump(exclude={"progress", "resume"})}  # fmt: skip
        self.lm.meta.training = summary
        if cfg.mode:
            self.lm.meta.mode = cfg.mode
        self.save_checkpoint()  # first: a kill during what follows leaves the last step's checkpoint to resume from
        if dp.main:
            with staged_files(out) as tmp:
                self.lm.save(tmp)
            atomic_write_json(out / "train_summary.json", summary)
        dp.close()
        self.log(f"saved {out} after {self.step} steps, {self.samples} samples, {self.elapsed / 60:.1f} min of training")
        return summary
