"""numpy's ``default_rng`` draws, made in compiled code and in parallel over states.

:func:`comllm.lacs.lookahead.rollout_draws` fills, per state, ``rng.random(out=u)``,
``rng.standard_normal(out=z)`` and ``rng.random(out=ua)`` from
``rng = numpy.random.default_rng(key)``. Done by numpy this costs as much as a good part
of the rollouts themselves, one state after the other. Here the generator (PCG64, seeded
by numpy) is stepped in numba instead: ``next_double`` as numpy's ``pcg64_next_double``,
normals by numpy's ziggurat (numba's port of it and its tables), so every number is the
one numpy would give (tests compare them). Where numba's tables cannot be imported,
:data:`AVAILABLE` is False and the caller keeps numpy.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

try:  # numpy's ziggurat tables, as numba's own Generator support carries them
    from numba.np.random._constants import fi_double, ki_double, wi_double, ziggurat_nor_inv_r, ziggurat_nor_r

    AVAILABLE = len(wi_double) == 256 and len(ki_double) == 256 and len(fi_double) == 256
    _WI = np.asarray(wi_double, dtype=np.float64)
    _KI = np.asarray(ki_double, dtype=np.uint64)
    _FI = np.asarray(fi_double, dtype=np.float64)
    _NOR_R = float(ziggurat_nor_r)
    _NOR_INV_R = float(ziggurat_nor_inv_r)
except (ImportError, TypeError, ValueError):  # pragma: no cover - another numba layout
    AVAILABLE = False
    _WI = _FI = np.zeros(256)
    _KI = np.zeros(256, dtype=np.uint64)
    _NOR_R = _NOR_INV_R = 0.0

_MULT_HI = 2549297995355413924  # PCG's default 128-bit multiplier
_MULT_LO = 4865540595714422341
_MASK64 = (1 << 64) - 1


@intrinsic
def _pcg_step(typingctx, s_hi, s_lo, i_hi, i_lo):
    """(state * MULT + inc) mod 2**128 of 128-bit numbers given as (hi, lo) uint64 halves."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        c64 = ir.Constant(i128, 64)

        def join(hi, lo):
            return builder.or_(builder.shl(builder.zext(hi, i128), c64), builder.zext(lo, i128))

        mult = ir.Constant(i128, (_MULT_HI << 64) | _MULT_LO)
        new = builder.add(builder.mul(join(args[0], args[1]), mult), join(args[2], args[3]))
        hi = builder.trunc(builder.lshr(new, c64), ir.IntType(64))
        lo = builder.trunc(new, ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, [hi, lo])

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _next64(st):
    """numpy's ``pcg64_random_r``: step the state ``st`` (hi, lo, inc_hi, inc_lo), output XSL-RR."""
    hi, lo = _pcg_step(st[0], st[1], st[2], st[3])
    st[0] = hi
    st[1] = lo
    x = hi ^ lo
    rot = hi >> np.uint64(58)
    return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@njit(cache=True, nogil=True, inline="always")
def _next_double(st):
    return np.float64(_next64(st) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True, inline="always")
def _ziggurat_first(r, wi, ki):
    """The ziggurat's first test on a draw ``r``: (accepted, x, idx, rabs)."""
    idx = r & np.uint64(0xFF)
    r >>= np.uint64(8)
    sign = r & np.uint64(1)
    rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
    x = rabs * wi[idx]
    if sign & np.uint64(1):
        x = -x
    return rabs < ki[idx], x, idx, rabs


@njit(cache=True, nogil=True)
def _ziggurat_rest(st, x, idx, rabs, wi, ki, fi, nor_r, nor_inv_r):
    """numpy's ``random_standard_normal`` (ziggurat, as numba's port of it) after a draw whose
    first test failed: the tail or the wedge test, and new draws until one is accepted."""
    while True:
        if idx == 0:
            while True:
                xx = -nor_inv_r * np.log1p(-_next_double(st))
                yy = -np.log1p(-_next_double(st))
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return -(nor_r + xx)
                    return nor_r + xx
        else:
            if (fi[idx - 1] - fi[idx]) * _next_double(st) + fi[idx] < np.exp(-0.5 * x * x):
                return x
        ok, x, idx, rabs = _ziggurat_first(_next64(st), wi, ki)
        if ok:
            return x


@njit(cache=True, parallel=True)
def _fill(states, u, z, ua, normals, random_rule, wi, ki, fi, nor_r, nor_inv_r):
    for s in prange(u.shape[0]):
        st = states[s].copy()
        a = u[s].ravel()
        for i in range(a.shape[0]):
            a[i] = _next_double(st)
        if normals:
            b = z[s].ravel()
            hi, lo, inc_hi, inc_lo = st[0], st[1], st[2], st[3]
            for i in range(b.shape[0]):
                # _next64 on local copies of the state (the common case), the array for the rest
                hi, lo = _pcg_step(hi, lo, inc_hi, inc_lo)
                x = hi ^ lo
                rot = hi >> np.uint64(58)
                ok, v, idx, rabs = _ziggurat_first((x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63))), wi, ki)
                if not ok:
                    st[0] = hi
                    st[1] = lo
                    v = _ziggurat_rest(st, v, idx, rabs, wi, ki, fi, nor_r, nor_inv_r)
                    hi, lo = st[0], st[1]
                b[i] = v
            st[0] = hi
            st[1] = lo
        if random_rule:
            c = ua[s].ravel()
            for i in range(c.shape[0]):
                c[i] = _next_double(st)


def pcg64_states(keys) -> np.ndarray:
    """The PCG64 state of ``numpy.random.default_rng(list(key))`` per key: (S, 4) uint64 (hi, lo, inc_hi, inc_lo)."""
    out = np.empty((len(keys), 4), dtype=np.uint64)
    for s, key in enumerate(keys):
        st = np.random.PCG64(list(key)).state["state"]
        v, inc = int(st["state"]), int(st["inc"])
        out[s] = (v >> 64, v & _MASK64, inc >> 64, inc & _MASK64)
    return out


def fill_draws(keys, u: np.ndarray, z: np.ndarray, ua: np.ndarray, normals: bool, random_rule: bool) -> None:
    """Per state ``s``: ``u[s]``, then ``z[s]`` (if ``normals``), then ``ua[s]`` (if ``random_rule``)
    from ``default_rng(list(keys[s]))``, exactly as numpy fills them (C-contiguous arrays)."""
    if not all(a.flags.c_contiguous for a in (u, z, ua)):
        raise ValueError("fill_draws needs C-contiguous arrays")
    if len(keys):
        _fill(pcg64_states(keys), u, z, ua, normals, random_rule, _WI, _KI, _FI, _NOR_R, _NOR_INV_R)
