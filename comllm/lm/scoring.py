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


def candidate_logprobs(
    model: torch.nn.Module, prompts: list[list[int]], candidates: list[list[int]], pad_id: int
) -> torch.Tensor:
    """Summed log-probabilities ``(B, C)`` of the candidates (differentiable; see :func:`score_candidates`)."""
    tree = CandidateTree.build(candidates)
    device = next(model.parameters()).device
    b = len(prompts)
    lengths = torch.tensor([len(p) for p in prompts])
    if int(lengths.min()) < 1:
        raise ValueError("every prompt needs at least one token")
    lmax = int(lengths.max())
    k = len(tree)
    total = lmax + k
    same = bool((lengths == lmax).all())  # no padding: one mask for the whole batch

    ids = torch.full((b, total), pad_id, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, lmax - len(p) : lmax] = torch.tensor(p, dtype=torch.long)
    ids[:, lmax:] = torch.tensor(tree.tokens, dtype=torch.long)

    rows = 1 if same else b
    pos_in_row = torch.arange(lmax)
    start = (lmax - lengths)[:rows]  # first real prompt column per row
    real = pos_in_row[None, :] >= start[:, None]  # (rows, Lmax)
    positions = torch.zeros(rows, total, dtype=torch.long)
    positions[:, :lmax] = (pos_in_row[None, :] - start[:, None]).clamp(min=0)
    positions[:, lmax:] = lengths[:rows, None] - 1 + torch.tensor(tree.depth)[None, :]

    mask = torch.zeros(rows, total, total, dtype=torch.bool)
    causal = torch.tril(torch.ones(lmax, lmax, dtype=torch.bool))
    mask[:, :lmax, :lmax] = causal[None] & real[:, None, :]
    mask[:, :lmax, :lmax] |= torch.eye(lmax, dtype=torch.bool)[None]  # pad rows see themselves (no NaN)
    mask[:, lmax:, :lmax] = real[:, None, :]
    mask[:, lmax:, lmax:] = tree.ancestor_mask()[None]

    # logits are needed after the prompt's last token and after every tree node with children
    has_child = sorted({p for p in tree.parent if p >= 0})
    keep = [lmax - 1] + [lmax + n for n in has_child]
    row_of = {-1: 0, **{n: i + 1 for i, n in enumerate(has_child)}}
    dtype = next(model.parameters()).dtype
    attn = torch.zeros(rows, 1, total, total, dtype=dtype).masked_fill(~mask[:, None], torch.finfo(dtype).min)
    out = model(
        input_ids=ids.to(device),
        attention_mask=attn.expand(b, 1, total, total).to(device),
        position_ids=positions.expand(b, total).to(device),
        logits_to_keep=torch.tensor(keep, device=device),
        use_cache=False,
    )
    logp = torch.log_softmax(out.logits.float(), dim=-1)  # (B, len(keep), V)
    path_rows = torch.tensor([[row_of[tree.parent[n]] for n in path] for path in tree.paths_padded()])
    path_toks = torch.tensor([[tree.tokens[n] for n in path] for path in tree.paths_padded()])
    valid = torch.tensor([[j < len(path) for j in range(path_rows.shape[1])] for path in tree.paths])
    picked = logp[:, path_rows, path_toks]  # (B, C, depth)
    return (picked * valid.to(picked.device)).sum(dim=-1)
