"""The fast decision path of the embedded model: score mode without the library's per-call overhead.

:func:`comllm.lm.scoring.candidate_logprobs` runs the model's own ``forward`` (transformers'
Llama with a 4-D float mask): general, differentiable, and at batch 1 mostly overhead (mask
conversion, cache objects, hooks). :class:`FastScorer` computes the same numbers for the
embedded model (:class:`comllm.lm.model.ComllmLMForCausalLM`) in inference mode, reading the
same weights: the same :class:`~comllm.lm.scoring.TreeLayout` (prompt and candidate tree in
one pass), Q/K/V and gate/up as one fused matrix product each, PyTorch's fused attention with
the boolean mask, rotary positions from a table cached per length, logits only where an
answer token is read (the last layer only at those columns). :meth:`FastScorer.line_costs` is
the same pass for the cost mode (``llm:...,mode=cost``): the cost head at each action line's
end. Results agree with the reference path to float rounding (tested: the same actions on 200
states, ``tests/test_lm_fast.py``, ``tests/test_lm_cost_mode.py``).

``matmul_dtype=torch.bfloat16`` (the ``llm`` policy's ``matmul=bf16``) keeps the fused matrices of
the decoder layers in bfloat16 and runs those products in it, the residual stream, norms,
attention and heads in float32: on a CPU with AVX-512 BF16 the products run 2–3× faster, and
decisions on near-ties may differ from the float32 ones (measured: README, "Decisions per
second").

The fused matrices are copies of the parameters; :meth:`FastScorer.sync` rebuilds them when
any parameter changed in place (an optimizer step), so a policy that is being trained
(``comllm improve``) decides with its current weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from comllm.lm.scoring import right_padded, tree_layout


def supports_fast(model: torch.nn.Module) -> bool:
    """Whether ``model`` is the embedded Llama-style model this path implements (no adapters)."""
    from comllm.lm.model import ComllmLMForCausalLM

    return type(model) is ComllmLMForCausalLM and getattr(model.config, "rope_parameters", {}).get(
        "rope_type", "default"
    ) == "default"


class FastScorer:
    """Summed log-likelihood of candidate answers after prompts, or the cost head at line ends (module docstring)."""

    def __init__(self, model: torch.nn.Module, matmul_dtype: torch.dtype = torch.float32) -> None:
        if not supports_fast(model):
            raise ValueError(f"the fast path implements the embedded model only, not {type(model).__name__}")
        if matmul_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"matmul_dtype={matmul_dtype} must be torch.float32 or torch.bfloat16")
        self.model = model
        self.matmul_dtype = matmul_dtype
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        theta = cfg.rope_parameters.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        self._version: tuple[int, ...] | None = None
        self._params = list(model.parameters())
        self._line_rules: dict[tuple[int, bytes], tuple[torch.Tensor, torch.Tensor]] = {}
        self._causal: dict[int, torch.Tensor] = {}  # (T, T) lower-triangular masks by length
        self.sync()

    def _versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self._params)

    def sync(self) -> None:
        """Rebuild the fused weights if a parameter changed since the last build."""
        v = self._versions()
        if v == self._version:
            return
        with torch.no_grad():
            m = self.model.model
            # each query / key head's two halves interleaved (dims 0, hd/2, 1, hd/2 + 1, ...): the same
            # permutation of q and k leaves q.k unchanged, and rotary positions become one complex product
            hd, half = self.head_dim, self.head_dim // 2
            perm = torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).flatten()
            heads = self.heads + self.kv_heads
            rows = (torch.arange(heads)[:, None] * hd + perm).flatten()

            def qk(layer: torch.nn.Module) -> torch.Tensor:
                w = torch.cat([layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight])
                return w[rows]

            dt = self.matmul_dtype
            self.layers = [
                (
                    layer.input_layernorm.weight.detach().clone(),
                    torch.cat([qk(layer), layer.self_attn.v_proj.weight]).detach().to(dt, copy=True),
                    layer.self_attn.o_proj.weight.detach().to(dt, copy=True),
                    layer.post_attention_layernorm.weight.detach().clone(),
                    torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight]).detach().to(dt, copy=True),
                    layer.mlp.down_proj.weight.detach().to(dt, copy=True),
                )
                for layer in m.layers
            ]
            self.final_norm = m.norm.weight.detach().clone()
            self.head = self.model.lm_head.weight.detach().clone()
        self._version = v

    def _norm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), w, self.eps)

    @staticmethod
    def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x @ w.T`` in ``w``'s dtype, the result in float32."""
        return F.linear(x, w) if w.dtype == x.dtype else F.linear(x.to(w.dtype), w).float()

    def _run(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, read: torch.Tensor, uniform: bool = False
    ) -> torch.Tensor:
        """Final hidden states ``(B, L, H)`` at the columns ``read`` ``(B, L)``, before the last norm; the
        model's line rule applied. The last layer computes queries, MLP and output at those columns only
        (the keys and values of every token are computed as usual): the same numbers, less work.
        ``uniform``: every row has its words (newlines, pads) where the first row has them, and one
        ``positions`` / ``mask`` row: the line rule is computed once and shared."""
        device = self.head.device
        if self.model.config.line_positions != "absolute" and uniform:  # one rule for all rows, kept per layout
            key = (ids.shape[1], (ids[0] == self.model.config.newline_token_id).numpy().tobytes())
            if key not in self._line_rules:
                if len(self._line_rules) > 64:
                    self._line_rules.clear()
                self._line_rules[key] = self.model.line_inputs(ids[:1], positions, mask[:1], boolean=True)
            positions, mask = self._line_rules[key]
        elif self.model.config.line_positions != "absolute":  # the model's rule (comllm.lm.model): per row
            positions, mask = self.model.line_inputs(ids, positions, mask, boolean=True)
        ids = ids.to(device)
        b, t = ids.shape
        x = self.model.model.embed_tokens(ids).float()
        freqs = positions.to(device).float()[..., None] * self.inv_freq.to(device)  # (rows or B, T, hd/2)
        cis = torch.polar(torch.ones_like(freqs), freqs)[:, None]  # (rows or B, 1, T, hd/2) complex
        mask = mask.to(device)
        h, kvh, hd = self.heads, self.kv_heads, self.head_dim

        read = read.to(device)
        last = len(self.layers) - 1
        for i, (ln1, qkv, o, ln2, gu, down) in enumerate(self.layers):
            y = self._linear(self._norm(x, ln1), qkv).view(b, t, h + 2 * kvh, hd).transpose(1, 2)
            # rotary positions on the interleaved halves (sync): (z1 + i z2)(cos + i sin)
            qk = torch.view_as_real(torch.view_as_complex(y[:, : h + kvh].unflatten(-1, (hd // 2, 2))) * cis)
            qk = qk.flatten(-2)
            q, k, v = qk[:, :h], qk[:, h:], y[:, h + kvh :]
            if kvh != h:
                k, v = k.repeat_interleave(h // kvh, dim=1), v.repeat_interleave(h // kvh, dim=1)
            m = mask
            if i == last:  # only the read columns go on
                n = read.shape[1]
                q = q.gather(2, read[:, None, :, None].expand(b, h, n, hd))
                m = mask.expand(b, 1, t, t).gather(2, read[:, None, :, None].expand(b, 1, n, t))
                x = x.gather(1, read[:, :, None].expand(b, n, x.shape[-1]))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            x = x + self._linear(a.transpose(1, 2).reshape(b, q.shape[2], h * hd), o)
            g, u = self._linear(self._norm(x, ln2), gu).chunk(2, dim=-1)
            x = x + self._linear(F.silu(g) * u, down)
        return x

    @torch.inference_mode()
    def logprobs(self, prompts: list[list[int]], candidates: list[list[int]], pad_id: int) -> torch.Tensor:
        """``(B, C)`` log-likelihoods, as :func:`comllm.lm.scoring.candidate_logprobs` (float32, CPU)."""
        self.sync()
        lay = tree_layout(prompts, candidates, pad_id)
        read = lay.keep[None].expand(lay.ids.shape[0], -1)
        x = self._run(lay.ids, lay.positions, lay.mask[:, None], read)  # (rows, T), (rows, 1, T, T)
        x = self._norm(x, self.final_norm)
        logp = torch.log_softmax(F.linear(x, self.head), dim=-1)
        return lay.gather(logp).cpu()

    @torch.inference_mode()
    def line_costs(self, prompts: list[list[int]] | torch.Tensor, ends: torch.Tensor, pad_id: int) -> torch.Tensor:
        """``(B, L)`` cost-head outputs at the ``ends`` ``(B, L)`` of right-padded prompts, as
        :func:`comllm.lm.scoring.line_costs` (float32, CPU). ``prompts`` as a ``(B, T)`` tensor:
        rows of one skeleton (``uniform`` in :meth:`_run`)."""
        self.sync()
        head = self.model.cost_head
        if head is None:
            raise ValueError("the model has no cost head")
        uniform = isinstance(prompts, torch.Tensor)  # rows of one skeleton (comllm.lm.fast_prompts): no pads
        if uniform:
            ids, keys = prompts, torch.ones(1, prompts.shape[1], dtype=torch.bool)
        else:
            ids, keys = right_padded(prompts, pad_id)
        t = ids.shape[1]
        causal = self._causal.get(t)
        if causal is None:
            if len(self._causal) > 64:
                self._causal.clear()
            causal = self._causal[t] = torch.tril(torch.ones(t, t, dtype=torch.bool))
        mask = (causal & keys[:, None, :]) | torch.eye(t, dtype=torch.bool) if not uniform else causal[None]
        x = self._norm(self._run(ids, torch.arange(t)[None], mask[:, None], ends, uniform), self.final_norm)
        return F.linear(x, head.weight.float(), head.bias.float()).squeeze(-1).cpu()
