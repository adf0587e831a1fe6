"""Exact integer GEMM on float32 BLAS, and the reference requantization without int64.

The fast path of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (see
:mod:`runtime.ops._fastconv`). Everything here is proved exact in ``prepare``;
where a proof fails the layer (or the output channel) takes a slower exact route,
never an approximate one. The plain kernels stay the reference: ``ENABLED = False``
(or ``with reference_kernels():``) makes every kernel run its original float64 code.

Exactness of the GEMM (docs/quantization.md eq. 14)
----------------------------------------------------
An int8 x int8 product is an integer of magnitude <= 2^14, exact in float32. A sum
of such products is exact in float32 as long as every partial sum is an integer of
magnitude <= 2^24; BLAS may add the products in any order (and use FMA, which rounds
once), but every partial sum is a sum of a subset of the products, bounded by
``sum_k |x_k| |w_ck| <= x_max * sum_k |w_ck|``. So for output channel ``c``::

    bound_c = x_max * sum_k |W[c, k]| + |const_c| <= 2^24   =>   float32 GEMM is exact

(``const_c``, the bias with the input offset folded in (below), enters the GEMM as a
row of the weights times a column of ones in the patches, so it counts too). ``x_max``
is 128 for int8 inputs and 255 for uint8 (uint8 weights are centred first). When the bound fails, K is
split into chunks that each satisfy it; the chunks' float32 results are exact and
their sum is formed in float64 (exact below 2^53). With too many chunks a single
float64 GEMM is used (exact while the bound is below 2^53).

The input zero point is folded out of the GEMM: the reference kernels skip taps
outside the image, i.e. add ``(x - zp) * w`` over in-image taps only; padding the
raw input with ``zp`` makes out-of-image taps contribute ``zp * w``, and
``sum_k (x_k - zp) w_k = sum_k x_k w_k - zp * sum_k w_k`` over all taps. So the GEMM
runs on raw (zp-padded) inputs and ``const_c = bias_c - zp * sum_k W[c, k]``.

Requantization (gemmlowp MBQM, eq. 9) in float64
-------------------------------------------------
For ``shift = -e <= 0`` (left shift 0) and ``M > 0`` the double-rounding
``RDBPOT(SRDHM(a, M), e)`` equals (S = 31 + e, all divisions floors)::

    SRDHM(a, M)   = floor((a M + 2^30) / 2^31)          (ties toward +inf, both signs)
    RDBPOT(q, e)  = floor((q + 2^(e-1) - [q < 0]) / 2^e)  (e >= 1; ties away from zero)
    combined      = floor((a M + 2^30 + 2^(S-1) - [a M + 2^30 < 0] 2^31) / 2^S)

``y = a * (M / 2^S) + (2^30 + 2^(S-1)) / 2^S + zp + 128`` is computed in float64
(``+ 0`` instead of ``+ 128`` for uint8 outputs; for ``e = 0`` the ``2^(S-1)`` and sign
terms vanish);
it is exact (so ``floor`` is) when ``|a M| + 2^30 + (|zp| + 130) 2^S < 2^53``. The sign
term subtracts ``2^-e`` where ``y < zp + 128.5``. Since ``M / 2^S < 1`` the output
steps by at most one per unit of ``a``, so there is an ``a`` range ``[A_lo, A_hi]``
(found exactly in prepare, per channel) whose outputs are exactly
``act_min .. act_max``; clamping ``a`` to it first replaces the final clamp and keeps
``|a|`` small enough for the proof. ``y`` is then in ``[act_min + 128, act_max + 129)``,
a float to uint8 cast truncates (= floors, as ``y >= 0``), and ``^ 0x80`` turns
``out + 128`` into the int8 ``out``. Channels the proof does not cover (``shift > 0``,
``e > 12``, a window beyond 2^24, an accumulator that could wrap int32) use the
int64 fixed-point functions of :mod:`quantcore.fixedpoint` on their columns.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, wrap_int32

ENABLED = True   # False: every kernel runs its plain float64 reference code

F32_EXACT = 2 ** 24
F64_EXACT = 2 ** 53
MAX_F32_CHUNKS = 4
BLOCK_ELEMENTS = 65536   # accumulator elements per block (a block's temporaries stay in the
                         # 1 MiB L2; 65536 measured ~5% faster than 32768 on MobileNetV2: fewer
                         # NumPy calls per output)
WIDEN_FIRST_ELEMENTS = 8192   # requantization blocks at least this large widen float32 -> float64 first


def enabled() -> bool:
    return ENABLED


@contextmanager
def reference_kernels(on: bool = True) -> Iterator[None]:
    """``with reference_kernels():`` runs (and prepares) the plain reference code."""
    global ENABLED
    saved = ENABLED
    ENABLED = not on
    try:
        yield
    finally:
        ENABLED = saved


# ---------------------------------------------------------------------------
# Scratch buffers: one grow-only pool per thread, reused by every layer.
# ---------------------------------------------------------------------------
_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialized ``shape`` array from the thread's pool (valid until the next
    request of the same name)."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    n = 1
    for d in shape:
        n *= int(d)
    key = (name, np.dtype(dtype).char)
    buf = pool.get(key)
    if buf is None or buf.size < n:
        buf = pool[key] = np.empty(max(n, 1), dtype)
    return buf[:n].reshape(shape)


def tiled(name: str, row: np.ndarray, rows: int) -> np.ndarray:
    """``row`` repeated ``rows`` times, contiguous (a full-size operand makes NumPy run
    one long SIMD loop instead of one short loop per row)."""
    t = scratch(name, (rows, row.shape[0]), row.dtype)
    t[...] = row
    return t


# ---------------------------------------------------------------------------
# Exact GEMM plan
# ---------------------------------------------------------------------------
class ExactGemm:
    """``A @ W.T + const`` for integer-valued ``A`` (|A| <= x_max) and integer ``W``,
    exactly, on BLAS.

    ``W`` is [C, K] (int), ``const`` [C] (int): it becomes row K of the planned weight
    matrix and callers put 1 in column K of ``A`` (see :meth:`patch_width`). The
    result is float32 (one exact float32 GEMM), or float64 (chunked float32 GEMMs
    summed in float64, or one float64 GEMM), holding exact integers.
    """

    def __init__(self, w: np.ndarray, const: np.ndarray, x_max: int, *, force_f64: bool = False) -> None:
        w = np.asarray(w, np.int64)
        const = np.asarray(const, np.int64)
        c, k = w.shape
        self.k = k
        full = np.concatenate([w, const[:, None]], axis=1)      # [C, K + 1]
        mag = np.abs(full).astype(np.float64)
        mag[:, :k] *= x_max
        self.bound = mag.sum(axis=1)                             # per channel, >= any partial sum
        chunks = _split_columns(mag, F32_EXACT)
        self.mode = "f32" if len(chunks) == 1 else "f32chunks" if len(chunks) <= MAX_F32_CHUNKS else "f64"
        if force_f64:
            self.mode = "f64"
        if self.mode == "f64" and float(self.bound.max(initial=0.0)) >= F64_EXACT:
            raise ValueError("accumulator bound beyond 2^53")   # pragma: no cover (K > 2^29)
        self.chunks = chunks
        dt = np.float64 if self.mode == "f64" else np.float32
        self.wt = np.ascontiguousarray(full.T.astype(dt))        # [K + 1, C]
        self.acc_dtype = np.dtype(np.float32 if self.mode == "f32" else np.float64)
        self.in_dtype = np.dtype(dt)

    def weights(self) -> np.ndarray:
        """The planned ``W`` [C, K] (a view; float32 or float64 holding the integers)."""
        return self.wt[:self.k].T

    def __call__(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``a``: [n, K + 1] in ``in_dtype`` with ones in column K."""
        if self.mode != "f32chunks":
            return np.matmul(a, self.wt, out=out)
        res = out if out is not None else np.empty((a.shape[0], self.wt.shape[1]), np.float64)
        res[...] = 0.0
        for lo, hi in self.chunks:
            res += np.matmul(a[:, lo:hi], self.wt[lo:hi])
        return res


def _split_columns(mag: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Greedy split of columns into ranges whose per-row sums stay <= limit."""
    c, k = mag.shape
    if float(mag.sum(axis=1).max(initial=0.0)) <= limit:
        return [(0, k)]
    chunks = []
    start = 0
    run = np.zeros(c)
    for j in range(k):
        col = mag[:, j]
        if np.any(run + col > limit):
            chunks.append((start, j))
            start = j
            run = np.zeros(c)
        run += col
    chunks.append((start, k))
    return chunks


# ---------------------------------------------------------------------------
# Reference requantization (gemmlowp MBQM, double rounding)
# ---------------------------------------------------------------------------
def _mbqm(a: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    return multiply_by_quantized_multiplier(a, m, s)


def _first_at_least(target: int, m: np.ndarray, s: np.ndarray, guess: np.ndarray,
                    span: np.ndarray) -> np.ndarray:
    """Per channel, the smallest integer a with MBQM(a, m, s) >= target (monotone in a).

    ``guess`` +- 4 brackets it when ``guess`` is the continuous estimate; otherwise the
    bracket ``guess +- (span + 2)`` is searched."""
    lo = guess - 4
    hi = guess + 4
    bad = (_mbqm(lo, m, s) >= target) | (_mbqm(hi, m, s) < target)
    lo = np.where(bad, guess - span - 2, lo)       # MBQM(lo) < target
    hi = np.where(bad, guess + span + 2, hi)       # MBQM(hi) >= target
    while True:
        active = hi - lo > 1
        if not active.any():
            return hi
        mid = (lo + hi) // 2
        ok = _mbqm(mid, m, s) >= target
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid, lo)


class GemmlowpRequant:
    """``out = clamp(MBQM(wrap32(a), M_c, shift_c) + zp, act_min, act_max)`` for the exact
    accumulator ``a`` (bias included) of an :class:`ExactGemm`, written into an int8 or
    uint8 array. See the module docstring for the float64 evaluation and its proof."""

    def __init__(self, multiplier: np.ndarray, shift: np.ndarray, zp: int, act_min: int,
                 act_max: int, a_bound: np.ndarray, acc_dtype, out_dtype) -> None:
        m = np.asarray(multiplier, np.int64)
        s = np.asarray(shift, np.int64)
        c = m.shape[0]
        self.c = c
        self.m, self.s = m, s
        self.zp, self.act_min, self.act_max = int(zp), int(act_min), int(act_max)
        self.out_dtype = np.dtype(out_dtype)
        self.zo = 128 if self.out_dtype == np.int8 else 0
        self.wraps = bool(np.any(np.asarray(a_bound) >= 2 ** 31))
        e = -s
        ok = (m > 0) & (s <= 0) & (e <= 12) & (np.asarray(a_bound) < 2 ** 31)
        if self.out_dtype not in (np.int8, np.uint8):
            ok[:] = False
        limit = F32_EXACT if np.dtype(acc_dtype) == np.float32 else F64_EXACT
        big_s = (31 + np.where(ok, e, 0)).astype(np.int64)
        a_lo = np.zeros(c, np.int64)
        a_hi = np.zeros(c, np.int64)
        if ok.any():
            mm = np.where(ok, m, 1)
            ss = np.where(ok, s, 0)
            scale = np.ldexp(1.0, big_s) / mm                    # a per output step, roughly
            span = np.ceil(2 * scale + 2).astype(np.int64)
            lo_t = self.act_min - self.zp
            hi_t = self.act_max - self.zp
            # r(a) ~ a M / 2^S + 1/2: the first a reaching v is about (v - 1/2) 2^S / M
            a_lo = _first_at_least(lo_t, mm, ss, np.ceil((lo_t - 0.5) * scale).astype(np.int64), span)
            a_hi = _first_at_least(hi_t + 1, mm, ss, np.ceil((hi_t + 0.5) * scale).astype(np.int64),
                                   span) - 1
            amax = np.minimum(np.maximum(np.abs(a_lo), np.abs(a_hi)), 2 ** 31)
            # |a M| + 2^30 + 2^(S-1) + (|zp| + 128 + 1) 2^S < 2^53 (int64: every term < 2^62)
            big = amax * m + 2 ** 30 + (np.int64(1) << big_s) * (abs(self.zp) + 130)
            ok &= (big < F64_EXACT) & (amax <= limit) & (a_lo <= a_hi)
        self.fast = ok
        self.slow = np.nonzero(~ok)[0]
        self.all_slow = not ok.any()
        f = np.nonzero(ok)[0]
        self.fast_idx = None if ok.all() else f
        sel = ok if self.fast_idx is None else f
        adt = np.dtype(acc_dtype)
        self.acc_dtype = adt
        self.lo = a_lo[sel].astype(adt)
        self.hi = a_hi[sel].astype(adt)
        bs = big_s[sel]
        ee = e[sel]
        self.mm = np.ldexp(m[sel].astype(np.float64), -bs)
        kk = np.ldexp(2.0 ** 30 + np.where(ee > 0, np.ldexp(1.0, bs - 1), 0.0), -bs) + (self.zp + self.zo)
        self.kk_scalar = float(kk[0]) if kk.size and np.all(kk == kk[0]) else None
        self.kk = kk
        # sign term: where y < zp + zo + 0.5 (aM + 2^30 < 0), subtract 2^-e (e >= 1 only);
        # needless when such outputs are all clamped to act_min (act_min >= zp).
        self.neg_fix = bool(np.any(ee > 0)) and self.act_min < self.zp
        self.delta = np.where(ee > 0, np.ldexp(1.0, -ee), 0.0)
        self.delta_scalar = float(self.delta[0]) if self.delta.size and np.all(
            self.delta == self.delta[0]) else None
        self.neg_threshold = self.zp + self.zo + 0.5

    # -- evaluation ------------------------------------------------------------------
    def _slow_columns(self, a: np.ndarray, cols: np.ndarray) -> np.ndarray:
        ai = a[:, cols].astype(np.int64) if cols is not None else a.astype(np.int64)
        if self.wraps:
            ai = wrap_int32(ai)
        m = self.m if cols is None else self.m[cols]
        s = self.s if cols is None else self.s[cols]
        r = _mbqm(ai, m, s) + self.zp
        return np.clip(r, self.act_min, self.act_max)

    def __call__(self, a: np.ndarray, out: np.ndarray, tiles: dict | None = None) -> None:
        """Requantize ``a`` [n, C] (modified in place) into ``out`` [n, C] (int8/uint8)."""
        if self.all_slow:
            out[...] = self._slow_columns(a, None)
            return
        if self.fast_idx is None:
            self._fast(a, out, tiles)
        else:
            sub = np.ascontiguousarray(a[:, self.fast_idx])
            res = np.empty(sub.shape, out.dtype)
            self._fast(sub, res, None)
            out[:, self.fast_idx] = res
            out[:, self.slow] = self._slow_columns(a, self.slow)

    def _fast(self, a: np.ndarray, out: np.ndarray, tiles: dict | None) -> None:
        n = a.shape[0]
        t = tiles if tiles is not None and tiles["rows"] >= n else None
        lo = self.lo if t is None else t["lo"][:n]
        hi = self.hi if t is None else t["hi"][:n]
        mm = self.mm if t is None else t["mm"][:n]
        np.maximum(a, lo, out=a)
        np.minimum(a, hi, out=a)
        y = scratch("rq_y", a.shape, np.float64)
        if a.dtype == np.float64 or a.size < WIDEN_FIRST_ELEMENTS:
            np.multiply(a, mm, out=y)
        else:
            # the same float64 product; on large blocks a contiguous widening copy first is
            # ~10% faster than NumPy's buffered cast inside a mixed float32 x float64
            # multiply (MobileNetV2: 2.27 instead of 2.55 ms per invoke for this step)
            np.copyto(y, a)
            np.multiply(y, mm, out=y)
        if self.kk_scalar is not None:
            np.add(y, self.kk_scalar, out=y)
        else:
            np.add(y, self.kk if t is None else t["kk"][:n], out=y)
        if self.neg_fix:
            neg = scratch("rq_neg", a.shape, np.bool_)
            np.less(y, self.neg_threshold, out=neg)
            if self.delta_scalar is not None:
                d = scratch("rq_d", a.shape, np.float64)
                np.multiply(neg, self.delta_scalar, out=d)
            else:
                d = scratch("rq_d", a.shape, np.float64)
                np.multiply(neg, self.delta if t is None else t["delta"][:n], out=d)
            np.subtract(y, d, out=y)
        u = out.view(np.uint8)
        np.copyto(u, y, casting="unsafe")
        if self.zo:
            np.bitwise_xor(u, 0x80, out=u)

    def make_tiles(self, rows: int) -> dict | None:
        """Per-channel constants repeated over ``rows`` rows (scratch; per invoke)."""
        if self.all_slow or self.fast_idx is not None or rows <= 1:
            return None
        t = {"rows": rows, "lo": tiled("rq_lo", self.lo, rows), "hi": tiled("rq_hi", self.hi, rows),
             "mm": tiled("rq_mm", self.mm, rows)}
        if self.kk_scalar is None:
            t["kk"] = tiled("rq_kk", self.kk, rows)
        if self.neg_fix and self.delta_scalar is None:
            t["delta"] = tiled("rq_delta", self.delta, rows)
        return t
