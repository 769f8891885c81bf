"""Score candidate answers by log-likelihood, the prompt computed once for all of them.

The candidates (token sequences, each ending with EOS) form a prefix tree; one
forward pass per batch carries ``[prompt | tree nodes]`` with a 4-D attention
mask in which every tree node sees the whole prompt, its ancestors and itself
(shared-prefix "tree attention"). So the prompt's keys and values are computed
once and shared by every candidate, and a shared answer prefix (``" server"``)
once for all servers. Position ids continue the prompt by node depth.

The score of a candidate is the sum of its tokens' log-probabilities, EOS
included: the probability that the model writes exactly this answer and stops
(``"server 1"`` is otherwise a prefix of ``"server 10"`` in digit tokenizers).
``norm="mean"`` divides by the token count instead (length-normalised).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CandidateTree:
    """Prefix tree of candidate token sequences.

    ``tokens[k]``, ``parent[k]`` (-1: the prompt's last token) and ``depth[k]``
    (1 for a first token) describe node ``k``; ``paths[c]`` lists the nodes of
    candidate ``c`` in order.
    """

    tokens: list[int]
    parent: list[int]
    depth: list[int]
    paths: list[list[int]]

    @classmethod
    def build(cls, candidates: list[list[int]]) -> "CandidateTree":
        if not candidates or any(len(c) == 0 for c in candidates):
            raise ValueError("every candidate answer needs at least one token")
        tokens: list[int] = []
        parent: list[int] = []
        depth: list[int] = []
        index: dict[tuple[int, int], int] = {}
        paths = []
        for cand in candidates:
            node, path = -1, []
            for tok in cand:
                key = (node, tok)
                if key not in index:
                    index[key] = len(tokens)
                    tokens.append(tok)
                    parent.append(node)
                    depth.append(depth[node] + 1 if node >= 0 else 1)
                node = index[key]
                path.append(node)
            paths.append(path)
        return cls(tokens, parent, depth, paths)

    def __len__(self) -> int:
        return len(self.tokens)

    def paths_padded(self) -> list[list[int]]:
        """Every path padded to the longest by repeating its last node (masked out by the caller)."""
        depth = max(len(p) for p in self.paths)
        return [p + [p[-1]] * (depth - len(p)) for p in self.paths]

    def ancestor_mask(self) -> torch.Tensor:
        """``(K, K)`` bool: node ``i`` may attend to node ``j`` (an ancestor or itself)."""
        k = len(self.tokens)
        mask = torch.zeros(k, k, dtype=torch.bool)
        for i in range(k):
            j = i
            while j >= 0:
                mask[i, j] = True
                j = self.parent[j]
        return mask


@torch.no_grad()
def score_candidates(
    model: torch.nn.Module,
    prompts: list[list[int]],
    candidates: list[list[int]],
    pad_id: int,
    norm: str = "sum",
) -> torch.Tensor:
    """Log-likelihood of every candidate after every prompt, shape ``(B, C)``, on the CPU.

    ``prompts``: token ids per prompt (any lengths; left-padded here);
    ``candidates``: token ids per candidate answer, EOS included, shared by all
    prompts. ``norm``: ``"sum"`` (sequence log-likelihood) or ``"mean"`` (per token).
    """
    if norm not in ("sum", "mean"):
        raise ValueError(f"norm={norm!r} must be 'sum' or 'mean'")
    scores = candidate_logprobs(model, prompts, candidates, pad_id)
    if norm == "mean":
        scores = scores / torch.tensor([len(c) for c in candidates], dtype=scores.dtype, device=scores.device)
    return scores.cpu()


@dataclass
class TreeLayout:
    """One batch of ``[prompt | candidate tree]`` rows, laid out for a single forward pass.

    ``ids`` ``(B, T)`` (prompts left-padded), ``positions`` ``(rows, T)`` and the boolean
    attention ``mask`` ``(rows, T, T)`` (``rows`` is 1 when no prompt is padded: one mask for
    the whole batch); ``keep``: the columns whose logits are needed (the prompt's last token and
    every tree node with children); ``path_rows`` / ``path_toks`` / ``valid`` ``(C, depth)``:
    which kept row and token each candidate's tokens are read from.
    """

    ids: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    keep: torch.Tensor
    path_rows: torch.Tensor
    path_toks: torch.Tensor
    valid: torch.Tensor

    def gather(self, logp: torch.Tensor) -> torch.Tensor:
        """Summed log-probabilities ``(B, C)`` from ``logp`` ``(B, len(keep), V)``."""
        picked = logp[:, self.path_rows, self.path_toks]  # (B, C, depth)
        return (picked * self.valid.to(picked.device)).sum(dim=-1)


class _TreeParts:
    """What a candidate set contributes to every layout (built once per candidate set)."""

    def __init__(self, candidates: list[list[int]]) -> None:
        tree = CandidateTree.build(candidates)
        self.k = len(tree)
        self.tokens = torch.tensor(tree.tokens, dtype=torch.long)
        self.depth = torch.tensor(tree.depth)
        self.ancestors = tree.ancestor_mask()
        self.has_child = sorted({p for p in tree.parent if p >= 0})
        row_of = {-1: 0, **{n: i + 1 for i, n in enumerate(self.has_child)}}
        padded = tree.paths_padded()
        self.path_rows = torch.tensor([[row_of[tree.parent[n]] for n in path] for path in padded])
        self.path_toks = torch.tensor([[tree.tokens[n] for n in path] for path in padded])
        self.valid = torch.tensor([[j < len(path) for j in range(self.path_rows.shape[1])] for path in tree.paths])


_PARTS: dict[tuple[tuple[int, ...], ...], _TreeParts] = {}


def tree_layout(prompts: list[list[int]], candidates: list[list[int]], pad_id: int) -> TreeLayout:
    """The :class:`TreeLayout` of ``prompts`` with the shared ``candidates`` (see the module docstring)."""
    key = tuple(tuple(c) for c in candidates)
    parts = _PARTS.get(key)
    if parts is None:
        with torch.inference_mode(False):  # cached tensors must also serve a training pass
            parts = _TreeParts(candidates)
        if len(_PARTS) < 256:
            _PARTS[key] = parts
    b = len(prompts)
    lengths = torch.tensor([len(p) for p in prompts])
    if int(lengths.min()) < 1:
        raise ValueError("every prompt needs at least one token")
    lmax = int(lengths.max())
    k = parts.k
    total = lmax + k
    same = bool((lengths == lmax).all())  # no padding: one mask for the whole batch

    ids = torch.full((b, total), pad_id, dtype=torch.long)
    if same:
        ids[:, :lmax] = torch.tensor(prompts, dtype=torch.long)
    else:
        for i, p in enumerate(prompts):
            ids[i, lmax - len(p) : lmax] = torch.tensor(p, dtype=torch.long)
    ids[:, lmax:] = parts.tokens

    rows = 1 if same else b
    pos_in_row = torch.arange(lmax)
    start = (lmax - lengths)[:rows]  # first real prompt column per row
    real = pos_in_row[None, :] >= start[:, None]  # (rows, Lmax)
    positions = torch.zeros(rows, total, dtype=torch.long)
    positions[:, :lmax] = (pos_in_row[None, :] - start[:, None]).clamp(min=0)
    positions[:, lmax:] = lengths[:rows, None] - 1 + parts.depth[None, :]

    mask = torch.zeros(rows, total, total, dtype=torch.bool)
    causal = torch.tril(torch.ones(lmax, lmax, dtype=torch.bool))
    mask[:, :lmax, :lmax] = causal[None] & real[:, None, :]
    mask[:, :lmax, :lmax] |= torch.eye(lmax, dtype=torch.bool)[None]  # pad rows see themselves (no NaN)
    mask[:, lmax:, :lmax] = real[:, None, :]
    mask[:, lmax:, lmax:] = parts.ancestors[None]
    # logits are needed after the prompt's last token and after every tree node with children
    keep = torch.tensor([lmax - 1] + [lmax + n for n in parts.has_child])
    return TreeLayout(ids, positions, mask, keep, parts.path_rows, parts.path_toks, parts.valid)


def candidate_logprobs(
    model: torch.nn.Module, prompts: list[list[int]], candidates: list[list[int]], pad_id: int
) -> torch.Tensor:
    """Summed log-probabilities ``(B, C)`` of the candidates (differentiable; see :func:`score_candidates`).

    The reference path: the model's own ``forward`` (any causal LM that takes a 4-D mask).
    """
    lay = tree_layout(prompts, candidates, pad_id)
    device = next(model.parameters()).device
    b, total = lay.ids.shape
    rows = lay.mask.shape[0]
    dtype = next(model.parameters()).dtype
    attn = torch.zeros(rows, 1, total, total, dtype=dtype).masked_fill(~lay.mask[:, None], torch.finfo(dtype).min)
    out = model(
        input_ids=lay.ids.to(device),
        attention_mask=attn.expand(b, 1, total, total).to(device),
        position_ids=lay.positions.expand(b, total).to(device),
        logits_to_keep=lay.keep.to(device),
        use_cache=False,
    )
    return lay.gather(torch.log_softmax(out.logits.float(), dim=-1))


def right_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` ``(B, T)`` of ``prompts`` padded on the right with ``pad_id``, and ``keys`` (True: a real token)."""
    lmax = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), lmax), pad_id, dtype=torch.long)
    keys = torch.zeros((len(prompts), lmax), dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
        keys[i, : len(p)] = True
    return ids, keys


def line_costs(model: torch.nn.Module, prompts: list[list[int]], ends: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The model's cost head read at the tokens ``ends`` ``(B, L)`` of each prompt: ``(B, L)``.

    The embedded model's cost head (``comllm sft --cost-head``) regresses ``log1p`` of an
    action's cost (slots) from the hidden state of the newline that ends the action's line;
    ``llm:...,mode=cost`` decides by the least. The reference path: the model's own decoder
    (differentiable), its line rule applied; right padding (a prompt never sees a pad).
    """
    head = getattr(model, "cost_head", None)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no cost head")
    ids, keys = right_padded(prompts, pad_id)
    device = next(model.parameters()).device
    positions, mask = model.line_inputs(ids, None, keys.long())
    hidden = model.model(input_ids=ids.to(device), attention_mask=None if mask is None else mask.to(device),
                         position_ids=None if positions is None else positions.to(device), use_cache=False).last_hidden_state  # fmt: skip
    rows = torch.arange(len(prompts), device=device)[:, None]
    return head(hidden[rows, ends.to(device)]).squeeze(-1).float()


def action_line_ends(prompt: list[int], n: int, newline: int, start: int, names: list[int]) -> "np.ndarray":
    """Token positions of the newlines ending the lines of actions 0..``n`` in ``prompt``.

    The action lines start at line ``start`` (0-based), ``local`` first; a server line is
    known by the token after its first (``server K``: ``names[K - 1]``, the answer's id
    token), so the server lines may come in any order (``shuffle-servers``). ``ValueError``
    when the prompt's lines do not name each server once.
    """
    import numpy as np

    nl = np.flatnonzero(np.asarray(prompt) == newline)
    if len(nl) < start + n + 1:
        raise ValueError(f"a prompt has {max(len(nl) - start, 0)} action lines, expected {n + 1}")
    action = {tok: k + 1 for k, tok in enumerate(names)}
    ends = np.full(n + 1, -1, dtype=np.int64)
    ends[0] = nl[start]
    for j in range(1, n + 1):
        at = nl[start + j - 1] + 2
        a = action.get(prompt[at], -1) if at < len(prompt) else -1
        if a < 0 or ends[a] >= 0:
            raise ValueError(f"action line {j} of a prompt names no server of 1..{n} (or one named twice)")
        ends[a] = nl[start + j]
    return ends
