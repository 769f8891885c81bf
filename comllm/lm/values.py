"""Value tokens: every number in a prompt becomes ONE token whose id encodes its value.

A number ``v`` (non-negative decimal, e.g. ``4.1934``, ``297``, ``41.8``) maps to
``base + 2 * k + s`` where ``k = round(v / resolution)`` (clipped to
``[0, max_value / resolution]``) and ``s`` is 1 when a single space preceded the
number in the text (so decoding gives the text back). The model embeds such an
id from deterministic features of its value (:func:`value_features`), not from
a lookup table, so nearby values get nearby embeddings and every value in the
range is understood, seen in training or not.

Two ranges:

* ``narrow`` (the dataclass defaults, and every checkpoint whose codec does not name
  ``scales``): resolution 0.01, range 0..2000 (297 cycles/bit, 41.8 GHz, penalties of
  100, queues of hundreds of Mbit, latencies of hundreds of slots in the canonical units).
* ``wide`` (:data:`VALUE_RANGES`, what a new embedded model gets by default, ``comllm sft
  --value-range``): resolution 0.001, range 0..10,000,000, so that the same state written in
  other units (README, "Robustness") keeps its values (a task of 3,817.9 kbit, a queue of
  40,702.41 kbit, an estimate of 0.454 s or 8,487.88 ms are neither clipped nor rounded), and
  features that a change of unit moves without changing them: monotone ones at scales
  0.01 .. 1,000,000 in steps of about √10 (a value × 10 is the same features two scales on)
  and, for the fine detail, periodic ones of ``log10 v`` whose periods divide one decade (a
  value × 10, × 100 or × 0.1 has the same phases). The narrow codec's periodic features of
  ``v`` itself tie the fine detail to the unit: a model trained on slots could not read
  estimates in ms (docs/notes/fresh-models.md, tenth round).

A value above the range is clipped to ``max_value`` and counted.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class ValueCodec:
    """How values map to ids and to features.

    ``base``: first value id (the text vocabulary's size); ``resolution``: value
    step of one id (e.g. 0.01); ``max_value``: largest representable value;
    ``periods``: periods (in value units) of the sin/cos features of ``v``; ``scales``: scales
    (in value units) of the monotone ``tanh(v / s)`` features (each resolves values around
    ``s``); ``log_periods``: periods (in decades) of the sin/cos features of ``log10 v``.
    """

    base: int
    resolution: float = 0.01
    max_value: float = 2000.0
    periods: tuple[float, ...] = field(
        default_factory=lambda: tuple(float(p) for p in np.geomspace(0.1, 10.0, 8).round(6))
    )
    scales: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    log_periods: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.base < 0:
            raise ValueError(f"value codec base={self.base} must be >= 0")
        if not (self.resolution > 0):
            raise ValueError(f"value codec resolution={self.resolution} must be > 0")
        if not (self.max_value > 0):
            raise ValueError(f"value codec max_value={self.max_value} must be > 0")
        if not self.scales or not all(math.isfinite(x) and x > 0 for x in self.scales):
            raise ValueError(f"value codec scales={list(self.scales)} must be positive numbers")
        for name in ("periods", "log_periods"):
            if not all(math.isfinite(x) and x > 0 for x in getattr(self, name)):
                raise ValueError(f"value codec {name}={list(getattr(self, name))} must be positive numbers")

    @property
    def n_steps(self) -> int:
        """Number of distinct values (0, resolution, ..., max_value)."""
        return int(round(self.max_value / self.resolution)) + 1

    @property
    def n_ids(self) -> int:
        """Ids in the value block (each value twice: without and with a leading space)."""
        return 2 * self.n_steps

    @property
    def end(self) -> int:
        """One past the last value id."""
        return self.base + self.n_ids

    @property
    def n_features(self) -> int:
        return len(self.scales) + 2 + 2 * len(self.periods) + 2 * len(self.log_periods)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["periods"] = list(self.periods)
        d["scales"] = list(self.scales)
        d["log_periods"] = list(self.log_periods)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ValueCodec":
        d = dict(d)
        for key in ("periods", "scales", "log_periods"):
            if key in d:
                d[key] = tuple(float(p) for p in d[key])
        return cls(**d)

    # ---- ids <-> values -------------------------------------------------
    def encode(self, value: float, spaced: bool = False) -> tuple[int, bool]:
        """Id of ``value`` and whether it had to be clipped into the range."""
        steps = value / self.resolution if math.isfinite(value) else value  # 1e308 / 0.01 is inf
        if not math.isfinite(steps):
            k, clipped = (self.n_steps - 1 if steps > 0 else 0), True
        else:
            k = int(round(steps))
            clipped = k < 0 or k >= self.n_steps
            k = min(max(k, 0), self.n_steps - 1)
        return self.base + 2 * k + int(spaced), clipped

    def is_value(self, token_id: int) -> bool:
        return self.base <= token_id < self.end

    def decode(self, token_id: int) -> tuple[float, bool]:
        """Value and leading-space flag of a value id."""
        off = token_id - self.base
        if not 0 <= off < self.n_ids:
            raise ValueError(f"token id {token_id} is not a value token (block {self.base}..{self.end - 1})")
        return round((off // 2) * self.resolution, 10), bool(off % 2)

    def format(self, value: float) -> str:
        """Shortest text that round-trips at this resolution (``4.19``, ``297``, ``41.8``)."""
        decimals = max(0, -int(math.floor(math.log10(self.resolution) + 1e-9)))
        text = f"{value:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text


#: the codec fields (other than ``base``) of each value range; ``narrow`` is the dataclass default
VALUE_RANGES: dict[str, dict] = {
    "narrow": {},
    "wide": {
        "resolution": 0.001,
        "max_value": 10_000_000.0,
        "scales": tuple(float(f"{m}e{e}") for e in range(-2, 6) for m in (1, 3)) + (1e6,),
        "periods": (),
        "log_periods": tuple(2.0**-k for k in range(9)),  # 1 .. 1/256 decade: 0.1 % apart is 0.8 rad
    },
}


@functools.lru_cache(maxsize=32)
def _constant(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """``values`` as a float64 tensor on ``device`` (made once, not per call)."""
    return torch.tensor(values, dtype=torch.float64, device=device)


def _phases(x: torch.Tensor, periods: tuple[float, ...]) -> list[torch.Tensor]:
    """sin and cos of ``2πx / P`` for each period (none without periods)."""
    if not periods:
        return []
    p = _constant(periods, x.device)
    phase = (2 * math.pi) * torch.remainder(x[..., None], p) / p
    return [torch.sin(phase), torch.cos(phase)]


def value_features(ids: torch.Tensor, codec: ValueCodec) -> torch.Tensor:
    """Deterministic features of value ids, shape ``ids.shape + (codec.n_features,)``, float32.

    ``[tanh(v / s) for s in codec.scales (1, 3, ..., 1000 narrow); log1p(v) / 2; spaced;
    sin(2πv/P), cos(2πv/P) for P in periods (0.1 .. 10 narrow, none wide);
    sin(2π log10(v)/L), cos(2π log10(v)/L) for L in log_periods (none narrow; 0 for v = 0)]``: bounded monotone
    features at several scales (a comparison of two latencies of a few slots
    is as easy to learn as one of two queues of hundreds of Mbit), plus
    periodic ones for fine detail. Periods stay short, so a large value never
    shows a phase pattern unseen in training (long periods made rare large
    latencies look like small ones). All features are O(1); the phases are
    computed in float64 from the integer step.
    """
    off = (ids - codec.base).to(torch.float64)
    step = torch.div(off, 2, rounding_mode="floor")
    spaced = off - 2 * step
    v = step * codec.resolution
    feats = [
        torch.tanh(v[..., None] / _constant(codec.scales, ids.device)),
        (torch.log1p(v) / 2)[..., None],
        spaced[..., None],
        *_phases(v, codec.periods),
    ]
    if codec.log_periods:
        positive = (v > 0)[..., None]
        feats += [f * positive for f in _phases(torch.log10(v.clamp(min=codec.resolution)), codec.log_periods)]
    return torch.cat(feats, dim=-1).to(torch.float32)
