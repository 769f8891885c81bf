"""The language-model policy ``llm``: batched offloading decisions from a causal LM.

Spec: ``llm`` (the shipped default checkpoint), ``llm:PATH`` or ``llm:NAME``,
plus comma-separated options, e.g. ``llm:runs/sft,mode=sample,temperature=1``
or ``llm:mode=sample``. Options:

* ``mode``: ``score``, ``sample`` or ``cost``; default: the checkpoint's (``mode`` of its
  ``comllm.json``; ``score`` when it says nothing);
* ``score`` mode: every valid answer of the state's server count
  (``Template.answers(n)``) is scored by its log-likelihood, EOS included, all
  answers sharing one forward pass of the prompt (:mod:`comllm.lm.scoring`);
  the best is taken, so the answer is never invalid. ``norm=sum`` (default)
  scores the whole answer sequence — the probability that the model writes
  exactly this answer, which does not favour short answers once the model is
  trained — and ``norm=mean`` the per-token mean;
* ``sample`` mode: free generation (``temperature``, default 0.7, ``top_p``,
  default 0.9, the reference's: docs/model.md §9), parsed by the template; an answer that names no
  valid action is replaced by the ``fallback`` (``greedy``: the one-step cost
  oracle, default; ``local``; ``random``) and counted in :attr:`LMPolicy.stats`
  (``invalid``, ``invalid_rate``, ``decisions``);
* ``cost`` mode (models with a cost head: ``comllm sft --cost-head``, e.g. ``llm:paper6``):
  the model reads the prompt once and its cost head estimates every action's cost at the
  newline that ends the action's line (:func:`comllm.lm.scoring.line_costs`); the least is
  taken (the lowest action on a tie), never invalid. An action is found by its line's head
  (``local``, ``server K``: the answer's id token), so shuffled server lines are read right.
  A pointer to the line instead of a copied id: a tie of several servers cannot blend into
  another id (README "Zero-shot"). ``cost_temperature=T`` (default 0: the least) instead draws
  the action from ``softmax(-cost / T)``, ``T`` in the cost head's units (the policy's seed
  draws it): tasks of one slot decided at once that look alike then need not all pick the same
  server. Default: the checkpoint's ``cost_temperature`` (its ``comllm.json``) when the policy is
  built for a scenario of the ``simultaneous`` protocol; 0 under ``sequential`` (each task sees the
  decisions before it) and without a scenario (open loop: no slot is decided);
* ``fast`` (default ``true``): score and cost mode on the embedded model goes through
  :class:`comllm.lm.fast.FastScorer` (the same numbers without the library's per-call
  overhead), and a compact template in its canonical style is encoded from the states'
  numbers (:class:`comllm.lm.fast_prompts.FastPrompts`: the same ids without rendering
  text); ``fast=false`` runs the model's own forward on rendered prompts (the reference
  path). Other models always take the reference path;
* ``matmul`` (``fp32`` default, or ``bf16``): the fast path's decoder matrix products in
  bfloat16, the rest in float32 (:class:`comllm.lm.fast.FastScorer`; faster on a CPU with
  AVX-512 BF16, decisions on near-ties may differ);
* ``batch`` (default 64): states per forward pass; ``device`` (``auto``);
  ``template`` (override the checkpoint's); ``max_new_tokens`` (sample mode);
  ``threads`` (torch CPU threads; default: leave torch's setting);
* ``perturb=FAMILY`` (a name of :data:`comllm.text.perturb.PERTURBATIONS`, e.g. ``units`` or
  ``all``, or several joined by ``+``): every prompt is rendered in that family's style, drawn per state from
  ``perturb_seed`` (default 0; training draws from 1,000,000 on) and the state's canonical
  text, as the robustness table of ``scripts/zero_shot.py`` does; in closed loop it measures what a rewritten
  prompt costs the running system (README, "Robustness"). Prompts then take the text path.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from comllm.cost import oracle_actions
from comllm.lm.loading import LMError, LoadedLM, load_lm
from comllm.lm.scoring import action_line_ends, line_costs, score_candidates
from comllm.limits import MAX_TEMPERATURE
from comllm.policies.base import Policy, PolicyError, register_policy
from comllm.scenario import Scenario
from comllm.sft_config import DECISION_MODES, PERTURB_KNOWN, is_perturb_family
from comllm.text.perturb import perturbed_template
from comllm.state import StateBatch, TaskState, group_by_servers

FALLBACKS = ("greedy", "local", "random")
#: upper bounds of the decoding options (an answer is a few tokens; a reasoning trace a few hundred)
MAX_NEW_TOKENS = 4096
MAX_BATCH = 65536


class LMLengthWarning(UserWarning):
    """A prompt longer than the model's ``max_position_embeddings``."""


@dataclass
class DecodeOptions:
    """How the policy turns the model's output into actions (see the module docstring)."""

    mode: str = "score"
    temperature: float = 0.7
    top_p: float = 0.9
    norm: str = "sum"
    fallback: str = "greedy"
    batch: int = 64
    max_new_tokens: int | None = None
    fast: bool = True
    cost_temperature: float = 0.0
    matmul: str = "fp32"

    def __post_init__(self) -> None:
        if self.mode not in DECISION_MODES:
            raise PolicyError(f"llm option mode='{self.mode}' must be one of {', '.join(DECISION_MODES)}")
        if self.fallback not in FALLBACKS:
            raise PolicyError(f"llm option fallback='{self.fallback}' must be one of {', '.join(FALLBACKS)}")
        if self.matmul not in ("fp32", "bf16"):
            raise PolicyError(f"llm option matmul='{self.matmul}' must be fp32 or bf16")
        if self.norm not in ("sum", "mean"):
            raise PolicyError(f"llm option norm='{self.norm}' must be sum or mean")
        if not 0 < self.temperature <= MAX_TEMPERATURE:  # also refuses nan
            raise PolicyError(f"llm option temperature={self.temperature} must be in (0, {MAX_TEMPERATURE:g}]")
        if not 0 <= self.cost_temperature <= MAX_TEMPERATURE:  # also refuses nan
            raise PolicyError(
                f"llm option cost_temperature={self.cost_temperature} must be in [0, {MAX_TEMPERATURE:g}]"
            )
        if not 0 < self.top_p <= 1:
            raise PolicyError(f"llm option top_p={self.top_p} must be in (0, 1]")
        if not 1 <= self.batch <= MAX_BATCH:
            raise PolicyError(f"llm option batch={self.batch} must be in 1..{MAX_BATCH}")
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise PolicyError(f"llm option max_new_tokens={self.max_new_tokens} must be in 1..{MAX_NEW_TOKENS}")


class LMPolicy(Policy):
    """Decisions from a :class:`~comllm.lm.loading.LoadedLM` (see the module docstring)."""

    name = "llm"
    slow = True

    def __init__(self, lm: LoadedLM, options: DecodeOptions | None = None, seed: int = 0) -> None:
        from comllm.text import get_template

        self.lm = lm
        self.options = options or DecodeOptions(mode=lm.meta.mode)
        try:
            self.template = get_template(lm.meta.template)
        except Exception as err:  # noqa: BLE001  (an unknown name is the user's error)
            raise PolicyError(f"model '{lm.source}' uses template '{lm.meta.template}': {err}") from None
        self.lm.model.eval()
        if self.options.mode == "cost" and getattr(lm.model, "cost_head", None) is None:
            raise PolicyError(f"llm mode=cost needs a model with a cost head (comllm sft --cost-head); '{lm.source}' has none")
        self._answers: dict[int, list[list[int]]] = {}
        self._warned_length = False
        self._fast: Any = None
        self._prompts: Any = None
        self._skeleton_ends: dict[Any, torch.Tensor] = {}
        self.reset(seed)

    @property
    def stateless(self) -> bool:  # type: ignore[override]
        """Score and cost mode decide from the batch alone (seeds can share a forward pass); sampling does not."""
        return self.options.mode == "score" or (self.options.mode == "cost" and self.options.cost_temperature == 0)

    # ------------------------------------------------------------------ Policy
    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed or 0))
        self.counts = {"decisions": 0, "invalid": 0}

    @property
    def stats(self) -> dict[str, float]:
        n = self.counts["decisions"]
        return {**self.counts, "invalid_rate": self.counts["invalid"] / n if n else 0.0}

    def act(self, batch: StateBatch) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros(0, dtype=np.int64)
        if self.options.mode == "cost":  # straight from the batch's arrays where the prompts allow it
            out = [self._fast_line_costs(batch.subset(slice(lo, lo + self.options.batch)))
                   for lo in range(0, len(batch), self.options.batch)]  # fmt: skip
            if all(c is not None for c in out):
                self.counts["decisions"] += len(batch)
                return self._least_cost(torch.cat(out))
        return self.decide(batch.states(), batch)

    # ---------------------------------------------------------------- decisions
    def decide(self, states: list[TaskState], batch: StateBatch | None = None) -> np.ndarray:
        """One action per state (any mix of server counts)."""
        out = np.zeros(len(states), dtype=np.int64)
        for n, idx in group_by_servers(states).items():
            sub = [states[i] for i in idx]
            sub_batch = batch.subset(np.asarray(idx)) if batch is not None and len(idx) < len(states) else batch
            for lo in range(0, len(sub), self.options.batch):
                chunk = sub[lo : lo + self.options.batch]
                chunk_batch = sub_batch.subset(slice(lo, lo + len(chunk))) if sub_batch is not None else None
                out[np.asarray(idx[lo : lo + len(chunk)])] = self._decide_group(chunk, n, chunk_batch)
        return out

    def answer_ids(self, n_servers: int) -> list[list[int]]:
        """Token ids of every valid answer (action order), EOS included."""
        if n_servers not in self._answers:
            self._answers[n_servers] = [self.lm.encode_answer(a) for a in self.template.answers(n_servers)]
        return self._answers[n_servers]

    def prompt_ids(self, states: list[TaskState]) -> list[list[int]]:
        fast = self.prompt_array(states)
        if fast is not None:
            return fast[0].tolist()
        suffix = self.lm.meta.prompt_suffix
        ids = self.lm.encode_prompts([self.template.render_prompt(s) + suffix for s in states])
        self._check_lengths(ids)
        return ids

    def prompt_array(self, states: list[TaskState] | StateBatch) -> tuple[np.ndarray, Any] | None:
        """``(ids (B, T), skeleton)`` of states sharing one N from their numbers
        (:class:`comllm.lm.fast_prompts.FastPrompts`: the ids :meth:`prompt_ids` renders and
        tokenizes, without the text), or ``None`` where the template has no such form or ``fast=false``."""
        from comllm.lm.fast_prompts import FastPrompts

        if not self.options.fast or not FastPrompts.supports(self.template, self.lm.tokenizer):
            return None
        if self._prompts is None or self._prompts.template is not self.template:
            self._prompts = FastPrompts(self.template, self.lm.tokenizer, self.lm.meta.prompt_suffix)
        out = self._prompts.encode(states)
        if out is not None:
            self._check_lengths([out[1].ids])
        return out

    def scores(self, states: list[TaskState]) -> torch.Tensor:
        """Log-likelihood of every valid answer, ``(len(states), N + 1)``; states share one N."""
        n = states[0].n_servers
        prompts, answers, pad = self.prompt_ids(states), self.answer_ids(n), self.lm.tokenizer.pad_token_id
        fast = self.fast_scorer
        if fast is None:
            return score_candidates(self.lm.model, prompts, answers, pad, self.options.norm)
        scores = fast.logprobs(prompts, answers, pad)
        if self.options.norm == "mean":
            scores = scores / torch.tensor([len(a) for a in answers], dtype=scores.dtype)
        return scores

    def line_costs(self, states: list[TaskState]) -> torch.Tensor:
        """The cost head's estimate of every action, ``(len(states), N + 1)`` (log1p slots); states share one N."""
        n = states[0].n_servers
        pad, fast = self.lm.tokenizer.pad_token_id, self.fast_scorer
        costs = self._fast_line_costs(states)
        if costs is not None:
            return costs
        prompts = self.prompt_ids(states)
        ends = torch.from_numpy(np.stack([self.action_ends(p, n) for p in prompts]))
        if fast is None:
            with torch.no_grad():
                return line_costs(self.lm.model, prompts, ends, pad).cpu()
        return fast.line_costs(prompts, ends, pad)

    def _fast_line_costs(self, states: list[TaskState] | StateBatch) -> torch.Tensor | None:
        """:meth:`line_costs` through the fast scorer on prompts built from the numbers
        (:meth:`prompt_array`: one skeleton, so one set of line ends), or ``None``."""
        fast = self.fast_scorer
        same = self.prompt_array(states) if fast is not None else None
        if same is None:
            return None
        ids, sk = same
        if sk not in self._skeleton_ends:  # a skeleton's line ends are those of every prompt it makes
            n = states.n_servers if isinstance(states, StateBatch) else states[0].n_servers
            self._skeleton_ends[sk] = torch.from_numpy(self.action_ends(sk.ids.tolist(), n))
        ends = self._skeleton_ends[sk].expand(len(ids), -1)
        return fast.line_costs(torch.from_numpy(ids), ends, self.lm.tokenizer.pad_token_id)

    def action_ends(self, prompt: list[int], n: int) -> np.ndarray:
        """Token positions of the newlines ending the lines of actions 0..``n`` in ``prompt``
        (:func:`comllm.lm.scoring.action_line_ends`: server lines found by their names, in any order)."""
        start = getattr(self.template, "action_line_start", None)
        if start is None:
            raise PolicyError(f"llm mode=cost needs a template with one line per action, not '{self.template.name}'")
        newline = self.lm.tokenizer.convert_tokens_to_ids("\n")
        try:
            return action_line_ends(prompt, n, newline, start, [a[-2] for a in self.answer_ids(n)[1:]])
        except ValueError as err:
            raise PolicyError(f"llm mode=cost: {err}") from None

    @property
    def fast_scorer(self) -> Any:
        """The :class:`~comllm.lm.fast.FastScorer` of the model, or ``None`` (option off, or not the embedded model)."""
        from comllm.lm.fast import FastScorer, supports_fast

        if not self.options.fast or not supports_fast(self.lm.model) or self.lm.model.training:
            return None
        if self._fast is None or self._fast.model is not self.lm.model:
            dtype = torch.bfloat16 if self.options.matmul == "bf16" else torch.float32
            self._fast = FastScorer(self.lm.model, matmul_dtype=dtype)
        return self._fast

    def _decide_group(self, states: list[TaskState], n: int, batch: StateBatch | None) -> np.ndarray:
        if self.options.mode == "score":
            self.counts["decisions"] += len(states)
            return self.scores(states).argmax(dim=1).numpy().astype(np.int64)
        if self.options.mode == "cost":
            self.counts["decisions"] += len(states)
            return self._least_cost(self.line_costs(states))
        return self.actions_from_texts(self.generate(states), batch if batch is not None else StateBatch.from_states(states))

    def _least_cost(self, costs: torch.Tensor) -> np.ndarray:
        """Per row of ``costs`` (states, actions): the least, or a draw from softmax(-cost / T) (Gumbel-max)."""
        c = costs.detach().double().cpu().numpy()
        if self.options.cost_temperature > 0:
            c = c / self.options.cost_temperature - self.rng.gumbel(size=c.shape)
        return c.argmin(axis=1).astype(np.int64)

    def actions_from_texts(self, texts: list[str], batch: StateBatch) -> np.ndarray:
        """Parse generated answers for the states of ``batch``; unparseable ones get the fallback (counted)."""
        n = batch.n_servers
        actions = np.array([self._parse(t, n) for t in texts], dtype=np.int64)
        bad = actions < 0
        self.counts["decisions"] += len(texts)
        if bad.any():
            self.counts["invalid"] += int(bad.sum())
            actions[bad] = self._fallback(batch.subset(np.nonzero(bad)[0]))
        return actions

    def _parse(self, text: str, n: int) -> int:
        try:
            a = self.template.parse_answer(text, n)
        except Exception:  # noqa: BLE001  (parse_answer must not raise; be safe anyway)
            a = None
        return -1 if a is None or not 0 <= a <= n else int(a)

    def _fallback(self, batch: StateBatch) -> np.ndarray:
        fb = self.options.fallback
        if fb == "local":
            return np.zeros(len(batch), dtype=np.int64)
        if fb == "random":
            return self.rng.integers(0, batch.n_actions, len(batch))
        return oracle_actions(batch)

    @torch.no_grad()
    def generate(self, states: list[TaskState]) -> list[str]:
        """Free generations (temperature / top-p sampling) for states that share one N, decoded."""
        tok = self.lm.tokenizer
        prompts = self.prompt_ids(states)
        lmax = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), lmax), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), lmax), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding
            ids[i, lmax - len(p) :] = torch.tensor(p)
            mask[i, lmax - len(p) :] = 1
        longest = max(len(a) for a in self.answer_ids(states[0].n_servers))
        max_new = self.options.max_new_tokens or longest + 8
        device = self.lm.device
        # sampling draws from torch's global generator: seed it from ours for reproducibility
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
        out = self.lm.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            do_sample=True,
            temperature=self.options.temperature,
            top_p=self.options.top_p,
            top_k=0,
            max_new_tokens=max_new,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        return tok.batch_decode(out[:, lmax:].cpu(), skip_special_tokens=True)

    def check_scenario(self, scenario: Scenario) -> None:
        try:
            self.template.answers(scenario.n_servers)
        except Exception as err:  # noqa: BLE001
            raise PolicyError(f"template '{self.template.name}' cannot answer for {scenario.n_servers} servers: {err}")
        limit = self.max_positions
        if limit is not None:
            from comllm.lm.loading import _probe_state

            probe = _probe_state()
            probe = dataclasses.replace(probe, servers=probe.servers * scenario.n_servers)
            prompt = self.lm.encode_prompts([self.template.render_prompt(probe) + self.lm.meta.prompt_suffix])[0]
            n = len(prompt) + max(len(a) for a in self.answer_ids(scenario.n_servers))
            if n > limit:
                raise PolicyError(
                    f"a {scenario.n_servers}-server prompt and answer are {n} tokens, beyond the {limit} positions "
                    f"of model '{self.lm.source}' (max_position_embeddings)"
                )

    @property
    def max_positions(self) -> int | None:
        """The longest sequence the model was built for (``max_position_embeddings``), if it says."""
        n = getattr(getattr(self.lm.model, "config", None), "max_position_embeddings", None)
        return n if isinstance(n, int) and n > 0 else None

    def _check_lengths(self, prompts: list[list[int]]) -> None:
        limit = self.max_positions
        if limit is None or self._warned_length or not prompts:
            return
        n = max(len(p) for p in prompts)
        if n > limit:
            self._warned_length = True
            warnings.warn(
                f"a prompt of {n} tokens is beyond the {limit} positions of model '{self.lm.source}' "
                "(max_position_embeddings): its decisions are unreliable (warned once)",
                LMLengthWarning,
                stacklevel=3,
            )


def parse_spec(arg: str | None) -> tuple[str | None, dict[str, str]]:
    """``"PATH,key=value,..."`` -> (path or None, options)."""
    path, opts = None, {}
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            k, v = item.split("=", 1)
            opts[k.strip()] = v.strip()
        elif path is None:
            path = item
        else:
            raise PolicyError(f"llm spec has two model paths: '{path}' and '{item}'")
    return path, opts


_OPTION_TYPES: dict[str, Any] = {
    "mode": str, "temperature": float, "top_p": float, "norm": str, "fallback": str, "batch": int,
    "max_new_tokens": int, "fast": lambda v: _boolean("fast", v), "seed": int, "device": str, "template": str, "threads": int, "dtype": str,
    "cost_temperature": float, "perturb": str, "perturb_seed": int, "matmul": str,
}  # fmt: skip


def _boolean(name: str, value: str) -> bool:
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise PolicyError(f"llm option {name}='{value}' is not true or false")


def make_lm_policy(arg: str | None, scenario: Scenario | None = None) -> LMPolicy:
    """Factory of the ``llm`` policy (see the module docstring for the spec)."""
    path, raw = parse_spec(arg)
    opts: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in _OPTION_TYPES:
            raise PolicyError(f"unknown llm option '{k}' (known: {', '.join(sorted(_OPTION_TYPES))})")
        try:
            opts[k] = _OPTION_TYPES[k](v)
        except PolicyError:
            raise
        except ValueError:
            raise PolicyError(f"llm option {k}='{v}' is not a valid {_OPTION_TYPES[k].__name__}") from None
    if "threads" in opts:
        if not 1 <= opts["threads"] <= 4096:
            raise PolicyError(f"llm option threads={opts['threads']} must be in 1..4096")
    load = {k: opts.pop(k) for k in ("template", "device", "dtype", "threads") if k in opts}
    seed = opts.pop("seed", 0)
    perturb, perturb_seed = opts.pop("perturb", None), opts.pop("perturb_seed", 0)
    if perturb is not None and not is_perturb_family(perturb):
        raise PolicyError(f"llm option perturb='{perturb}' is not a perturbation ({PERTURB_KNOWN})")
    options = DecodeOptions(**opts)  # checked before the model is loaded (the checkpoint's mode after)
    if "threads" in load:
        torch.set_num_threads(load.pop("threads"))
    try:
        lm = load_lm(path, template=load.get("template"), device=load.get("device", "auto"),
                     dtype=load.get("dtype", "auto"))  # fmt: skip
    except LMError as err:
        raise PolicyError(str(err)) from None
    if "mode" not in opts:
        options = dataclasses.replace(options, mode=lm.meta.mode)
    if "cost_temperature" not in opts and scenario is not None and scenario.decisions == "simultaneous":
        options = dataclasses.replace(options, cost_temperature=float(lm.meta.cost_temperature))
    policy = LMPolicy(lm, options, seed=seed)  # make_policy checks it against the scenario
    if perturb is not None:
        policy.template = perturbed_template(perturb, seed=perturb_seed, base=policy.template)
    return policy


register_policy(
    "llm", "language model: llm[:PATH][,mode=score|sample|cost,temperature=..,top_p=..,cost_temperature=..,perturb=FAMILY]", LMPolicy
)(
    make_lm_policy
)
