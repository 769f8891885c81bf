"""Prompt token ids straight from the states' numbers (the embedded model's fast encoding).

The reference path renders each state's prompt as text (:meth:`Template.render_prompt`) and
tokenizes it (:meth:`comllm.lm.tokenizer.ComllmTokenizer.encode_text`): about 1.2 ms per
state on this 2-core machine, as much as the 2 x 64 model's forward pass. For the compact
templates in their canonical style every prompt of one server count has the same words in the
same places, and every number is one value token (:mod:`comllm.lm.values`), so
:class:`FastPrompts` renders and tokenizes one prompt per server count (the *skeleton*), and
for a batch only writes the value ids of the numbers
(:meth:`comllm.text.compact.CompactTemplate.prompt_numbers`, vectorised) into a copy of it.
The ids are the reference path's exactly (tested on every compact template that has this
form, ``tests/test_lm_fast_prompts.py``); a template, style or batch without this form
(perturbed prompts, units, a number that would change the words) takes the reference path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comllm.lm.values import ValueCodec
from comllm.state import StateBatch, TaskState


@dataclass(frozen=True, eq=False)
class Skeleton:
    """The ids of one server count's prompts: ``ids`` ``(T,)``, the ``value_at`` positions of its
    numbers ``(K,)`` in text order, and whether each followed a space (``spaced``, ``(K,)``)."""

    ids: np.ndarray
    value_at: np.ndarray
    spaced: np.ndarray


def encode_values(codec: ValueCodec, values: np.ndarray, spaced: np.ndarray) -> tuple[np.ndarray, int]:
    """Value ids of ``values`` (any shape; ``spaced`` broadcasts) and how many were clipped, as
    :meth:`ValueCodec.encode` gives one by one."""
    k = np.rint(values / codec.resolution)
    clipped = int(((k < 0) | (k >= codec.n_steps)).sum())
    k = np.clip(k, 0, codec.n_steps - 1).astype(np.int64)
    return codec.base + 2 * k + spaced.astype(np.int64), clipped


class FastPrompts:
    """Token ids of a template's prompts from their numbers (module docstring).

    ``template``: the policy's template; ``tokenizer``: the embedded model's (one with a value
    ``codec``); ``suffix``: text after the rendered prompt (the checkpoint's ``prompt_suffix``).
    """

    def __init__(self, template, tokenizer, suffix: str = "") -> None:
        self.template = template
        self.tokenizer = tokenizer
        self.suffix = suffix
        self._skeletons: dict[int, Skeleton | None] = {}

    @staticmethod
    def supports(template, tokenizer) -> bool:
        """Whether ``template`` can give its numbers and ``tokenizer`` makes each one value token."""
        return callable(getattr(template, "prompt_numbers", None)) and isinstance(
            getattr(tokenizer, "codec", None), ValueCodec
        )

    def skeleton(self, state: TaskState, numbers: np.ndarray) -> Skeleton | None:
        """The skeleton of ``state``'s server count (built from ``state``, whose printed ``numbers``
        must be its value tokens); ``None`` if its prompt does not have that form."""
        n = state.n_servers
        if n not in self._skeletons:
            stats = dict(self.tokenizer.stats)  # the probe is not a prompt of the batch: not counted
            ids = np.asarray(self.tokenizer.encode_text(self.template.render_prompt(state) + self.suffix), np.int64)
            self.tokenizer.stats.update(stats)
            codec = self.tokenizer.codec
            at = np.nonzero((ids >= codec.base) & (ids < codec.end))[0]
            sk = None
            if len(at) == len(numbers):
                spaced = (ids[at] - codec.base) % 2
                expect, _ = encode_values(codec, numbers, spaced)
                if np.array_equal(expect, ids[at]):
                    sk = Skeleton(ids=ids, value_at=at, spaced=spaced)
            self._skeletons[n] = sk
        return self._skeletons[n]

    def encode(self, states: list[TaskState] | StateBatch) -> tuple[np.ndarray, Skeleton] | None:
        """``(ids (B, T), skeleton)`` of ``states`` (a list or a batch, one server count), or ``None``:
        take the reference path."""
        numbers = self.template.prompt_numbers(states) if self.supports(self.template, self.tokenizer) else None
        if numbers is None:
            return None
        n = states.n_servers if isinstance(states, StateBatch) else states[0].n_servers
        if n in self._skeletons:
            sk = self._skeletons[n]
        else:
            first = states.subset(slice(0, 1)).states()[0] if isinstance(states, StateBatch) else states[0]
            sk = self.skeleton(first, numbers[0])
        if sk is None or numbers.shape[1] != len(sk.value_at):
            return None
        ids = np.repeat(sk.ids[None], len(states), axis=0)
        ids[:, sk.value_at], clipped = encode_values(self.tokenizer.codec, numbers, sk.spaced[None])
        stats = self.tokenizer.stats
        stats["values"] += numbers.size
        stats["clipped"] += clipped
        return ids, sk
