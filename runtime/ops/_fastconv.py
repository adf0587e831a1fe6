"""Fast exact paths of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (int8, uint8).

Built once in ``prepare`` (``attach_*``) from the kernel's own Params and used by its
``eval`` while :data:`runtime.ops._gemm.ENABLED` is true; the kernels' plain float64
code stays the reference (``tests/test_fast_kernels.py`` checks one against the
other and both against LiteRT).

* CONV_2D: per block of output rows, the zero-point-padded input rows are cast to
  float32 into a scratch slab, the patches (a strided view; a 1x1 stride-1
  convolution reads the input directly) are copied into an im2col block with a
  column of ones, and one exact float32 GEMM (:class:`_gemm.ExactGemm`, K chunked or
  float64 where the 2^24 bound is not proved) gives the int32 accumulators with the
  bias and the folded input offset. :class:`_gemm.GemmlowpRequant` requantizes the
  block in float64 into the output.
* DEPTHWISE_CONV_2D: per block of output rows, the sum over taps of shifted slab
  slices times the tap's per-channel weights, vectorized over channels, in float32
  (exact: each channel's bound ``x_max * sum |w| + |const|`` is checked <= 2^24 in
  prepare; otherwise the plain path runs).
* FULLY_CONNECTED: the exact GEMM for the accumulators; the kernel's own
  requantization follows.

On the non-reference numerics paths (``params.requant`` set by
:mod:`runtime.ops._paths`) the same exact accumulators go to ``requant.apply``.
Blocks keep every temporary in a per-thread scratch pool, so ``invoke`` allocates
only the output arrays.
"""
from __future__ import annotations

import numpy as np

from quantcore.fixedpoint import wrap_int32

from . import _gemm
from ._gemm import F32_EXACT, ExactGemm, GemmlowpRequant, scratch
from ._im2col import padded_rows, patches, strided_view

_PATHS = ("reference", "optimized", "xnnpack")
MIN_BLOCK_PIXELS = 256
SMALL_DW_PRODUCTS = 150_000   # depthwise blocks with fewer tap products take one multiply + one sum


def _x_max(dtype) -> int:
    return 128 if np.dtype(dtype) == np.int8 else 255


def _numerics_ok(ctx) -> bool:
    return getattr(ctx, "numerics", "reference") in _PATHS


def _block_rows(oh: int, ow: int, width: int) -> int:
    """Output rows per block: about ``_gemm.BLOCK_ELEMENTS`` accumulators (temporaries stay
    in cache), but at least ``MIN_BLOCK_PIXELS`` pixels (GEMM efficiency)."""
    rows = _gemm.BLOCK_ELEMENTS // max(ow * width, 1)
    rows = max(rows, -(-MIN_BLOCK_PIXELS // max(ow, 1)), 1)
    return min(rows, oh)


def _trailing_pad(out: int, stride: int, k: int, dil: int, size: int, lead: int) -> int:
    """Padding needed after the input so every tap the output loops reach exists."""
    return max((out - 1) * stride + (k - 1) * dil + 1 - size - lead, 0)


# ---------------------------------------------------------------------------
# CONV_2D
# ---------------------------------------------------------------------------
class FastConv:
    """Exact int8/uint8 CONV_2D on float32 BLAS (see the module docstring)."""

    def __init__(self, p, x_shape: tuple[int, ...], x_dtype) -> None:
        n, h, w, cin = x_shape
        cout, kh, kw, cf = p.filter.shape
        self.x_shape = tuple(x_shape)
        self.x_dtype = np.dtype(x_dtype)
        self.out_dtype = np.dtype(p.out_dtype)
        self.kh, self.kw, self.cf, self.cout, self.cin = kh, kw, cf, cout, cin
        self.groups = p.groups
        self.stride, self.dilation = tuple(p.stride), tuple(p.dilation)
        pt, _, pl, _ = p.padding
        oh, ow = p.out_hw
        self.oh, self.ow = oh, ow
        self.pt, self.pl = pt, pl
        self.wp = pl + w + _trailing_pad(ow, self.stride[1], kw, self.dilation[1], w, pl)
        self.zp = -int(p.input_offset)
        self.pointwise = (kh == 1 and kw == 1 and self.stride == (1, 1) and pt == 0 and pl == 0
                          and oh == h and ow == w)
        wint = np.rint(p.filter).astype(np.int64)             # uint8: weights_offset applied
        bias = np.asarray(p.bias, np.int64)
        x_max = _x_max(x_dtype)
        fpg = cout // self.groups
        self.k = kh * kw * cf
        wmats = [wint[g * fpg:(g + 1) * fpg].reshape(fpg, self.k) for g in range(self.groups)]
        consts = [bias[g * fpg:(g + 1) * fpg] - self.zp * wm.sum(axis=1) for g, wm in enumerate(wmats)]
        self.gemms = [ExactGemm(wm, cst, x_max) for wm, cst in zip(wmats, consts)]
        if len({g.mode for g in self.gemms}) > 1:
            self.gemms = [ExactGemm(wm, cst, x_max, force_f64=True) for wm, cst in zip(wmats, consts)]
        self.in_dtype = self.gemms[0].in_dtype
        self.acc_dtype = self.gemms[0].acc_dtype
        a_bound = np.concatenate([g.bound for g in self.gemms])
        self.requant = None
        if p.kind in ("int8", "uint8") and not p.int64_bias:
            self.requant = GemmlowpRequant(p.output_multiplier, p.output_shift, p.output_offset,
                                           p.output_activation_min, p.output_activation_max,
                                           a_bound, self.acc_dtype, self.out_dtype)
        self.block_rows = _block_rows(oh, ow, max(cout, self.k + 1))

    def _fill_block(self, x: np.ndarray, img: int, r0: int, rows: int, a: np.ndarray) -> None:
        """im2col rows of output rows r0 .. r0 + rows of image ``img`` into ``a`` [P, K + 1]."""
        k = self.k
        if self.pointwise:
            np.copyto(a[:, :k], x[img, r0:r0 + rows].reshape(rows * self.ow, self.cin))
            return
        sh = self.stride[0]
        rows_in = (rows - 1) * sh + (self.kh - 1) * self.dilation[0] + 1
        slab = scratch("cv_slab", (rows_in, self.wp, self.cin), self.in_dtype)
        padded_rows(x[img], r0 * sh, slab, self.pt, self.pl, self.zp)
        if self.groups == 1:
            dst = a[:, :k].reshape(rows, self.ow, self.kh, self.kw, self.cin)
            np.copyto(dst, patches(slab, rows, self.ow, self.kh, self.kw, self.stride, self.dilation))

    def accumulate(self, x: np.ndarray, img: int, r0: int, rows: int) -> np.ndarray:
        """Exact accumulators (bias included) [rows * OW, Cout] of one block (scratch)."""
        p_rows = rows * self.ow
        k = self.k
        a = scratch("cv_a", (p_rows, k + 1), self.in_dtype)
        a[:, k] = 1
        acc = scratch("cv_acc", (p_rows, self.cout), self.acc_dtype)
        if self.groups == 1:
            self._fill_block(x, img, r0, rows, a)
            self.gemms[0](a, out=acc)
            return acc
        sh = self.stride[0]
        rows_in = (rows - 1) * sh + (self.kh - 1) * self.dilation[0] + 1
        slab = scratch("cv_slab", (rows_in, self.wp, self.cin), self.in_dtype)
        padded_rows(x[img], r0 * sh, slab, self.pt, self.pl, self.zp)
        fpg = self.cout // self.groups
        for g, gemm in enumerate(self.gemms):
            dst = a[:, :k].reshape(rows, self.ow, self.kh, self.kw, self.cf)
            np.copyto(dst, patches(slab, rows, self.ow, self.kh, self.kw, self.stride, self.dilation,
                                   g * self.cf, (g + 1) * self.cf))
            acc[:, g * fpg:(g + 1) * fpg] = gemm(a)
        return acc

    def __call__(self, x: np.ndarray, requant=None) -> np.ndarray:
        n = x.shape[0]
        oh, ow, cout = self.oh, self.ow, self.cout
        if requant is None and self.requant is not None:
            out = np.empty((n, oh, ow, cout), self.out_dtype)
            flat = out.reshape(n * oh * ow, cout)
            tiles = self.requant.make_tiles(self.block_rows * ow) if oh > self.block_rows or n > 1 else None
            for img in range(n):
                for r0 in range(0, oh, self.block_rows):
                    rows = min(self.block_rows, oh - r0)
                    acc = self.accumulate(x, img, r0, rows)
                    base = (img * oh + r0) * ow
                    self.requant(acc, flat[base:base + rows * ow], tiles)
            return out
        # other numerics paths: exact int64 accumulators, then the path's requantization
        acc_all = np.empty((n, oh, ow, cout), np.int64)
        flat = acc_all.reshape(n * oh * ow, cout)
        for img in range(n):
            for r0 in range(0, oh, self.block_rows):
                rows = min(self.block_rows, oh - r0)
                base = (img * oh + r0) * ow
                flat[base:base + rows * ow] = self.accumulate(x, img, r0, rows)
        return requant.apply(acc_all).astype(self.out_dtype)

    def matches(self, x: np.ndarray) -> bool:
        return x.shape == self.x_shape and x.dtype == self.x_dtype


def attach_conv(p, ctx):
    """``p`` with a :class:`FastConv` in ``p.fast`` when the fast path applies."""
    if not _gemm.ENABLED or p.kind not in ("int8", "uint8") or not _numerics_ok(ctx):
        return p
    x = ctx.input(0)
    try:
        fast = FastConv(p, tuple(x.shape), x.dtype)
    except ValueError:
        return p
    changes = {"fast": fast}
    if fast.groups == 1:
        # the plain path reads the same integers from the fast plan's weights (a view,
        # float32 or float64; it casts to float64 itself), instead of a float64 copy
        changes["filter"] = fast.gemms[0].weights().reshape(p.filter.shape)
    return _replace(p, **changes)


def _replace(p, **changes):
    import dataclasses
    return dataclasses.replace(p, **changes)


# ---------------------------------------------------------------------------
# DEPTHWISE_CONV_2D
# ---------------------------------------------------------------------------
class FastDepthwise:
    """Exact int8/uint8 DEPTHWISE_CONV_2D as a float32 sum of shifted slices."""

    def __init__(self, p, x_shape: tuple[int, ...], x_dtype, w_data: np.ndarray,
                 bias: np.ndarray | None) -> None:
        n, h, w, cin = x_shape
        _, kh, kw, cout = w_data.shape
        self.x_shape = tuple(x_shape)
        self.x_dtype = np.dtype(x_dtype)
        self.out_dtype = np.dtype(p.out_dtype)
        self.kh, self.kw, self.cin, self.cout = kh, kw, cin, cout
        self.dm = p.depth_multiplier
        self.stride, self.dilation = tuple(p.stride), tuple(p.dilation)
        pt, _, pl, _ = p.padding_values
        self.oh, self.ow = p.out_hw
        self.pt, self.pl = pt, pl
        self.wp = pl + w + _trailing_pad(self.ow, self.stride[1], kw, self.dilation[1], w, pl)
        self.zp = -int(p.input_offset)
        wint = w_data.astype(np.int64)[0] + int(p.weights_offset)     # [KH, KW, Cout]
        b = np.zeros(cout, np.int64) if bias is None else np.asarray(bias, np.int64)
        const = b - self.zp * wint.sum(axis=(0, 1))
        bound = _x_max(x_dtype) * np.abs(wint).sum(axis=(0, 1)) + np.abs(const)
        if float(bound.max()) > F32_EXACT:
            raise ValueError("depthwise accumulator bound beyond 2^24")
        self.w = wint.astype(np.float32)
        if self.dm > 1:
            self.w = self.w.reshape(kh, kw, cin, self.dm)
        self.const = const.astype(np.float32)
        self.requant = None
        if p.kind in ("int8", "uint8"):
            self.requant = GemmlowpRequant(p.output_multiplier, p.output_shift, p.output_offset,
                                           p.quantized_activation_min, p.quantized_activation_max,
                                           bound, np.float32, self.out_dtype)
        self.block_rows = _block_rows(self.oh, self.ow, cout)
        self._tiles = None
        if self.dm == 1 and kh * kw * self.ow * cout <= 65536:
            self._tiles = tuple(t.copy() for t in self.weight_tiles())

    def weight_tiles(self) -> tuple[np.ndarray, np.ndarray]:
        """Each tap's weights and the constant repeated over OW: with operands of the
        window's [OW, C] shape NumPy runs one long loop per output row instead of one per
        pixel. Kept when small (64K values), else rebuilt per invoke in scratch."""
        if self._tiles is not None:
            return self._tiles
        kh, kw, ow, cout = self.kh, self.kw, self.ow, self.cout
        wt = scratch("dw_wtile", (kh * kw, ow, cout), np.float32)
        wt[...] = self.w.reshape(kh * kw, 1, cout)
        ct = scratch("dw_ctile", (ow, cout), np.float32)
        ct[...] = self.const
        return wt, ct

    def accumulate(self, x: np.ndarray, img: int, r0: int, rows: int,
                   tiles: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        sh, sw = self.stride
        dh, dw = self.dilation
        rows_in = (rows - 1) * sh + (self.kh - 1) * dh + 1
        slab = scratch("dw_slab", (rows_in, self.wp, self.cin), np.float32)
        padded_rows(x[img], r0 * sh, slab, self.pt, self.pl, self.zp)
        taps = self.kh * self.kw
        small = self.dm == 1 and tiles is not None and taps * rows * self.ow * self.cout <= SMALL_DW_PRODUCTS
        phases = [slab]
        if sw > 1 and not small:   # column phases: each tap's window contiguous along (OW, C)
            phases = []
            for q in range(sw):
                src = slab[:, q::sw]
                ph = scratch(f"dw_phase{q}", src.shape, np.float32)
                np.copyto(ph, src)
                phases.append(ph)
        acc = scratch("dw_acc", (rows, self.ow, self.cout), np.float32)
        dm = self.dm
        if small:
            # small blocks: every tap's product in one call, then one sum over the taps
            # (fewer NumPy calls; any summation order is exact, see _gemm)
            s0, s1, s2 = slab.strides
            view = strided_view(slab, (self.kh, self.kw, rows, self.ow, self.cin),
                                (dh * s0, dw * s1, sh * s0, sw * s1, s2))
            prod = scratch("dw_prod", (taps, rows, self.ow, self.cout), np.float32)
            np.multiply(view, tiles[0].reshape(self.kh, self.kw, 1, self.ow, self.cout),
                        out=prod.reshape(self.kh, self.kw, rows, self.ow, self.cout))
            np.add.reduce(prod, axis=0, out=acc)
            np.add(acc, tiles[1], out=acc)
            return acc.reshape(rows * self.ow, self.cout)
        tmp = scratch("dw_tmp", (rows, self.ow, self.cout), np.float32)
        if dm > 1:
            acc4 = acc.reshape(rows, self.ow, self.cin, dm)
            tmp4 = tmp.reshape(rows, self.ow, self.cin, dm)
        t = 0
        for fy in range(self.kh):
            y0 = fy * dh
            for fx in range(self.kw):
                col = fx * dw
                ph = phases[col % sw]
                j0 = col // sw
                win = ph[y0:y0 + (rows - 1) * sh + 1:sh, j0:j0 + self.ow]
                dst = acc if t == 0 else tmp
                if dm > 1:
                    np.multiply(win[..., None], self.w[fy, fx], out=acc4 if t == 0 else tmp4)
                else:
                    np.multiply(win, self.w[fy, fx] if tiles is None else tiles[0][t], out=dst)
                if t == 0:
                    np.add(acc, self.const if tiles is None else tiles[1], out=acc)
                else:
                    np.add(acc, tmp, out=acc)
                t += 1
        return acc.reshape(rows * self.ow, self.cout)

    def __call__(self, x: np.ndarray, requant=None) -> np.ndarray:
        n = x.shape[0]
        oh, ow, cout = self.oh, self.ow, self.cout
        wtiles = self.weight_tiles() if self.dm == 1 else None
        if requant is None and self.requant is not None:
            out = np.empty((n, oh, ow, cout), self.out_dtype)
            flat = out.reshape(n * oh * ow, cout)
            tiles = self.requant.make_tiles(self.block_rows * ow) if oh > self.block_rows or n > 1 else None
            for img in range(n):
                for r0 in range(0, oh, self.block_rows):
                    rows = min(self.block_rows, oh - r0)
                    acc = self.accumulate(x, img, r0, rows, wtiles)
                    base = (img * oh + r0) * ow
                    self.requant(acc, flat[base:base + rows * ow], tiles)
            return out
        acc_all = np.empty((n, oh, ow, cout), np.int64)
        flat = acc_all.reshape(n * oh * ow, cout)
        for img in range(n):
            for r0 in range(0, oh, self.block_rows):
                rows = min(self.block_rows, oh - r0)
                base = (img * oh + r0) * ow
                flat[base:base + rows * ow] = self.accumulate(x, img, r0, rows, wtiles)
        return requant.apply(acc_all).astype(self.out_dtype)

    def matches(self, x: np.ndarray) -> bool:
        return x.shape == self.x_shape and x.dtype == self.x_dtype


def attach_depthwise(p, ctx):
    if not _gemm.ENABLED or p.kind not in ("int8", "uint8") or not _numerics_ok(ctx):
        return p
    x = ctx.input(0)
    w = ctx.input(1)
    b = ctx.input(2, optional=True) if len(ctx.inputs) == 3 else None
    if w.data is None or (b is not None and b.data is None):
        return p
    try:
        fast = FastDepthwise(p, tuple(x.shape), x.dtype, w.data, None if b is None else b.data)
    except ValueError:
        return p
    return _replace(p, fast=fast)


# ---------------------------------------------------------------------------
# FULLY_CONNECTED
# ---------------------------------------------------------------------------
_JUST_BELOW_HALF = float(np.nextafter(0.5, 0.0))    # 0.49999999999999994


class FastFullyConnected:
    """Exact accumulators ``sum (x + input_offset)(w + weights_offset) + bias`` (int64),
    and, for the reference int8/uint8 kernels, their double requantization in 8 NumPy
    calls instead of ~25 (:meth:`requantize`)."""

    def __init__(self, p, x_dtype) -> None:
        wint = np.rint(p.filter).astype(np.int64)              # weights_offset applied
        bias = np.zeros(wint.shape[0], np.int64) if p.bias is None else np.asarray(p.bias, np.int64)
        const = bias + int(p.input_offset) * wint.sum(axis=1)
        self.gemm = ExactGemm(wint, const, _x_max(x_dtype))
        self.k = wint.shape[1]
        self.x_dtype = np.dtype(x_dtype)
        self.double = (p.kind in ("int8", "uint8") and p.effective_scale is not None
                       and _double_requant_ok(self.gemm.bound, np.asarray(p.effective_scale, np.float64)))
        if self.double:
            self.scale = np.asarray(p.effective_scale, np.float64)
            self.zp = float(p.output_offset)
            self.lo, self.hi = float(p.output_activation_min), float(p.output_activation_max)
            self.out_dtype = np.dtype(p.out_dtype)

    def accumulate(self, x2: np.ndarray) -> np.ndarray:
        n = x2.shape[0]
        a = scratch("fc_a", (n, self.k + 1), self.gemm.in_dtype)
        a[:, self.k] = 1
        np.copyto(a[:, :self.k], x2)
        return self.gemm(a)

    def __call__(self, x2: np.ndarray) -> np.ndarray:
        return self.accumulate(x2).astype(np.int64)

    def requantize(self, x2: np.ndarray) -> np.ndarray:
        """``reference_integer_ops::FullyConnected``'s output stage,
        ``clamp(int32(round_half_away(double(acc) * scale)) + zp)``, computed as
        ``copysign(floor(|v| + 0.5), v)``: ``|v| + 0.5`` rounds across an integer only for
        ``|v| = 0.5 - 2^-54`` (excluded in prepare, see :func:`_double_requant_ok`), and
        ``|v| < 2^31 - 256`` there, so no int32 overflow or wrap can occur."""
        v = np.multiply(self.accumulate(x2), self.scale, dtype=np.float64)
        t = np.abs(v)
        t += 0.5
        np.floor(t, out=t)
        np.copysign(t, v, out=t)
        t += self.zp
        np.clip(t, self.lo, self.hi, out=t)
        return t.astype(self.out_dtype)


def _double_requant_ok(bound: np.ndarray, scale: np.ndarray) -> bool:
    """Per channel: ``|acc| <= bound`` keeps ``|acc * scale| < 2^31 - 256``, and no integer
    ``acc`` gives ``fl(acc * scale) = +-(0.5 - 2^-54)`` (``fl(a * s)`` is monotone in
    ``a``, so only the integers next to ``0.5 / s`` can)."""
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        return False
    if np.any(bound * scale >= 2.0**31 - 256):
        return False
    for s in scale[scale > 0]:
        c = int(np.floor(0.5 / s))
        cand = np.arange(c - 2, c + 3, dtype=np.float64)
        if np.any(np.abs(cand * s) == _JUST_BELOW_HALF):
            return False
    return True


def attach_fully_connected(p, ctx):
    if (not _gemm.ENABLED or p.kind not in ("int8", "uint8", "uint8_int16") or p.filter is None
            or (p.has_bias and p.bias is None) or not _numerics_ok(ctx)):
        return p
    x = ctx.input(0)
    try:
        fast = FastFullyConnected(p, x.dtype)
    except ValueError:
        return p
    return _replace(p, fast=fast, filter=fast.gemm.weights())


__all__ = ["FastConv", "FastDepthwise", "FastFullyConnected", "attach_conv", "attach_depthwise",
           "attach_fully_connected", "wrap_int32"]
