"""BATCH_MATMUL: float32, int8 (int8 or int32 output), int16, int16 x int8, and hybrid
(float32 LHS, int8 RHS quantized per tensor or per output column).

Mirrors LiteRT's ``tflite/kernels/batch_matmul.cc`` (Prepare checks, the Eval
rearrangement of operands, ``EvalHybrid``) and ``tflite/kernels/internal/reference/
batch_matmul.h`` (``BatchMatMul`` float / hybrid / quantized). BATCH_MATMUL has a
single registration, so the reference and optimized resolvers run the same code.

Shapes: LHS ``[..., A, B]`` (``[..., B, A]`` with ``adj_x``), RHS ``[..., B, C]``
(``[..., C, B]`` with ``adj_y``), ranks 2 to 5, batch dimensions broadcast NumPy-style
(a dimension of 1 broadcasts); output ``[broadcast batch..., A, C]``.

Arithmetic:

* float: ``out = sum_k lhs[a, k] * rhs[k, c]`` added in float32 in order k = 0, 1, ...
* int8: ``acc = sum_k (lhs - zp_lhs) * (rhs - zp_rhs)`` (int32), then the
  double-rounding ``MultiplyByQuantizedMultiplier`` with the multiplier of
  ``double(f32(s_lhs * s_rhs)) / double(s_out)``, ``+ zp_out``, clamp to int8. With an
  int32 output: the raw ``sum_k lhs * rhs`` (zero points are not subtracted).
* int16 and int16 x int8: int64 accumulator, the 64-bit MBQM (multiplier reduced to 16
  bits); all zero points must be 0.
* hybrid: each LHS row of B values is quantized to int8 as in FULLY_CONNECTED
  (``tensor_utils::BatchQuantizeFloats``, symmetric or with ``asymmetric_quantize_inputs``),
  then ``total = int32(f32(total) - f32(row_sum * f32(input_offset)))`` and
  ``out = f32(f32(scale * pcs[c]) * f32(total))``.

LiteRT quirks reproduced:

* Eval merges the LHS dims ``[..., Q, R, S]`` into ``[..., Q*R, S]`` when ``adj_x`` is
  false, both ranks exceed 2 and the RHS has a 1 in its third-last dimension (and
  drops that 1 from the RHS). This is an equivalent reshape, but it changes the
  indexing below.
* Hybrid: the per-row scaling factors, input offsets and RHS row sums are looked up
  at ``(b0' + b1' + b2') * rows + row`` where ``bi'`` is the i-th batch index if that
  operand's i-th (5-D extended) batch dimension is not 1, else 0
  (``ioff_ext``/``woff_ext`` in reference/batch_matmul.h). With two or more batch
  dimensions larger than one this reuses the wrong rows' factors; quantcore does the
  same. The RHS row sums are computed from the weight matrices of 5-D dims 1 and 2
  only, so a rank-5 RHS with a first dimension > 1 and asymmetric inputs reads
  uninitialized sums; quantcore refuses that model.
* Hybrid row sums are computed on the first Eval only; LiteRT reuses them even when a
  non-constant RHS changes between invocations. quantcore recomputes them every time.

Integer sums use an exact float64 GEMM (see ``_matmul_hybrid.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                  wrap_int32)

from quantcore.errors import NumericsPathError

from . import _paths
from ._common import FLOAT32, INT8, INT16, INT32, OpContext
from ._matmul_hybrid import (batch_quantize_floats, exact_int_matmul, float_to_int32_trunc,
                             sequential_dot_f32, sse_reduction_sum_int8)

# One registration (Register_BATCH_MATMUL returns the _REF kernel), so LiteRT's optimized
# resolver runs the same code; measured identical on every type. XNNPACK
# (VisitBatchMatMulNode, google/XNNPACK subgraph/batch-matrix-multiply.c) takes int8 x int8
# -> int8 with per-tensor scales and an RHS zero point of 0, constant or not, and
# requantizes in fp32: scale f32(f32(s_lhs * s_rhs) / s_out), rint (ties to even), no clamp
# beyond the int8 range; everything else runs the reference kernel on that path too, except
# float x int8 (dynamically quantized in XNNPACK, not reproduced: NumericsPathError).
NUMERICS = ("reference", "optimized", "xnnpack")

F32 = np.float32


@dataclass(frozen=True)
class BatchMatMulParams:
    kind: str                   # "float", "int8", "int8_int32", "int16", "hybrid"
    adj_x: bool
    adj_y: bool
    input_offset: int = 0       # -zp of the LHS
    filter_offset: int = 0      # -zp of the RHS
    output_offset: int = 0
    output_multiplier: int = 0
    output_shift: int = 0
    output_activation_min: int = 0
    output_activation_max: int = 0
    out_dtype: type = np.float32
    asymmetric_quantize_inputs: bool = False
    filter_scale: float = 1.0
    per_channel_scale: np.ndarray | None = None
    path: str = ""
    requant: _paths.Requant | None = None   # xnnpack fp32 requantization (None: reference)


def _compressed_shapes(lshape: tuple[int, ...], rshape: tuple[int, ...],
                       adj_x: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The operand shapes batch_matmul.cc's Eval works with (see the module docstring)."""
    if not adj_x and len(rshape) > 2 and len(lshape) > 2 and rshape[-3] == 1:
        lshape = lshape[:-3] + (lshape[-3] * lshape[-2], lshape[-1])
        rshape = rshape[:-3] + rshape[-2:]
    return lshape, rshape


def _ext5(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (5 - len(shape)) + tuple(shape)


def _output_shape(lshape, rshape, adj_x: bool, adj_y: bool) -> tuple[int, ...]:
    """``ResizeOutputTensor``: broadcast batch dims, then [A, C]."""
    rank = max(len(lshape), len(rshape))
    el = (1,) * (rank - len(lshape)) + tuple(lshape)
    er = (1,) * (rank - len(rshape)) + tuple(rshape)
    batch = tuple(r if (l != r and l == 1) else l for l, r in zip(el[:-2], er[:-2]))
    a = el[-1] if adj_x else el[-2]
    c = er[-2] if adj_y else er[-1]
    return batch + (a, c)


def prepare(ctx: OpContext) -> BatchMatMulParams:
    ctx.check_io_count(2, 1)
    lhs = ctx.input(0)
    rhs = ctx.input(1)
    out = ctx.output(0)
    o = ctx.options
    adj_x = bool(o.get("adj_x", False))
    adj_y = bool(o.get("adj_y", False))
    asym = bool(o.get("asymmetric_quantize_inputs", False))

    if lhs.type not in (FLOAT32, INT8, INT16) or rhs.type not in (FLOAT32, INT8, INT16):
        raise ctx.unsupported(f"LHS {lhs.type_name} x RHS {rhs.type_name} (supported: FLOAT32, "
                              "INT8, INT16)")
    combo = (lhs.type, rhs.type)
    if combo not in ((FLOAT32, FLOAT32), (FLOAT32, INT8), (INT8, INT8), (INT16, INT16), (INT16, INT8)):
        raise ctx.unsupported(f"LHS {lhs.type_name} x RHS {rhs.type_name}")
    for t, role in ((lhs, "LHS"), (rhs, "RHS")):
        ctx.check(2 <= len(t.shape) <= 5, f"{role} rank must be 2..5, is {len(t.shape)}",
                  ctx.where(t))
    rank = max(len(lhs.shape), len(rhs.shape))
    el = (1,) * (rank - len(lhs.shape)) + tuple(lhs.shape)
    er = (1,) * (rank - len(rhs.shape)) + tuple(rhs.shape)
    for i in range(rank - 2):
        ctx.check(el[i] == er[i] or el[i] == 1 or er[i] == 1,
                  f"batch dimensions {list(lhs.shape)} and {list(rhs.shape)} do not broadcast")
    depth_l = el[-2] if adj_x else el[-1]
    depth_r = er[-1] if adj_y else er[-2]
    ctx.check(depth_l == depth_r, f"inner dimensions differ: LHS {list(lhs.shape)} (adj_x={adj_x}) "
              f"and RHS {list(rhs.shape)} (adj_y={adj_y})")
    common = dict(adj_x=adj_x, adj_y=adj_y, path=ctx.path)

    if combo == (FLOAT32, FLOAT32):
        ctx.check(out.type == FLOAT32, f"output must be FLOAT32, is {out.type_name}", ".outputs[0]")
        return BatchMatMulParams(kind="float", **common)

    if combo == (FLOAT32, INT8):
        ctx.check(out.type == FLOAT32, f"hybrid output must be FLOAT32, is {out.type_name}", ".outputs[0]")
        if _paths.path_of(ctx) == "xnnpack":
            raise NumericsPathError(f"{ctx.path}: hybrid BATCH_MATMUL (float x int8) runs in "
                                    "XNNPACK's dynamically quantized kernels on LiteRT's xnnpack "
                                    "path, which quantcore does not implement; use "
                                    "numerics='optimized'")
        ctx.check(rhs.quantized, f"hybrid RHS tensor {rhs.index} has no quantization parameters",
                  ".inputs[1]")
        ctx.check(bool(np.all(np.isfinite(rhs.scale))), "RHS scales must be finite", ".inputs[1]")
        pcs = None
        if rhs.per_channel:
            col_dim = len(rhs.shape) - 2 if adj_y else len(rhs.shape) - 1
            n_cols = rhs.shape[col_dim]
            ctx.check(rhs.quantized_dimension == col_dim and len(rhs.scale) == n_cols,
                      f"per-channel RHS must be quantized along its output-column dimension "
                      f"{col_dim} with {n_cols} scales, has dimension {rhs.quantized_dimension} "
                      f"and {len(rhs.scale)} scales", ".inputs[1]")
            pcs = rhs.scale.astype(F32)
        _, rshape = _compressed_shapes(tuple(lhs.shape), tuple(rhs.shape), adj_x)
        if asym and _ext5(rshape)[0] > 1:
            raise ctx.unsupported("hybrid BATCH_MATMUL with asymmetric_quantize_inputs and a rank-5 "
                                  "RHS whose first dimension is > 1: LiteRT reads row sums it never "
                                  "computed (reference/batch_matmul.h)")
        return BatchMatMulParams(kind="hybrid", asymmetric_quantize_inputs=asym,
                                 filter_scale=float(F32(rhs.scale[0])), per_channel_scale=pcs, **common)

    # quantized
    if lhs.type == INT8 and out.type == INT32:
        return BatchMatMulParams(kind="int8_int32", out_dtype=np.int32, **common)
    ctx.check(out.type == lhs.type, f"output type {out.type_name} must be {lhs.type_name} "
              "(or INT32 for int8 inputs)", ".outputs[0]")
    for t in (lhs, rhs, out):
        # per-tensor only: LiteRT reads the legacy scale, 0 for per-channel tensors
        ctx.require_quantized(t)
    if lhs.type == INT16:
        ctx.check(lhs.zp == 0 and rhs.zp == 0 and out.zp == 0,
                  "int16 BATCH_MATMUL needs zero points 0 (batch_matmul.cc)")
    # GetQuantizedConvolutionMultipler: double(float(s_lhs * s_rhs)) / double(s_out)
    real = float(F32(F32(lhs.s) * F32(rhs.s))) / float(out.s)
    m, s = quantize_multiplier(real)
    if lhs.type == INT16:
        ctx.check(s <= 14, "requantization multiplier >= 2^14: LiteRT's 64-bit "
                  "MultiplyByQuantizedMultiplier shifts by a negative amount (undefined)")
    info = np.iinfo(np.int8 if lhs.type == INT8 else np.int16)
    requant = None
    if _paths.path_of(ctx) == "xnnpack" and lhs.type == INT8 and rhs.type == INT8:
        scale = _paths.xnn_requantization_scale(lhs.s, rhs.scale[:1], out.s)
        if rhs.zp == 0 and all(len(t.scale) == 1 and t.quantized_dimension == 0
                               and _paths.normal_positive(t.scale) for t in (lhs, rhs, out)):
            if not 0 < float(scale[0]) <= 255.0:
                # xnn_create_batch_matrix_multiply_nc_qs8 refuses it and LiteRT then dies
                # (SIGSEGV, measured with 255.5 and 256)
                raise NumericsPathError(f"{ctx.path}: BATCH_MATMUL requantization scale "
                                        f"{float(scale[0])} is outside (0, 255]: XNNPACK refuses the "
                                        "operator and LiteRT's xnnpack path crashes (SIGSEGV); "
                                        "numerics='optimized' runs it")
            requant = _paths.Requant(mode="fp32", output_offset=out.zp, act_min=-128, act_max=127,
                                     scale=scale)
    return BatchMatMulParams(requant=requant, kind="int8" if lhs.type == INT8 else "int16", input_offset=-lhs.zp,
                             filter_offset=-rhs.zp, output_offset=out.zp, output_multiplier=m,
                             output_shift=s, output_activation_min=int(info.min),
                             output_activation_max=int(info.max), out_dtype=info.dtype.type, **common)


def _operands(p: BatchMatMulParams, lhs: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L [5-D, ..., A, B], Rt [5-D, ..., C, B]) after Eval's reshape and transposes."""
    lshape, rshape = _compressed_shapes(lhs.shape, rhs.shape, p.adj_x)
    left = lhs.reshape(lshape)
    right = rhs.reshape(rshape)
    if p.adj_x:
        left = np.swapaxes(left, -1, -2)
    if not p.adj_y:
        right = np.swapaxes(right, -1, -2)
    return left.reshape(_ext5(left.shape)), right.reshape(_ext5(right.shape))


def _eval_hybrid(p: BatchMatMulParams, left: np.ndarray, rt: np.ndarray) -> np.ndarray:
    l0, l1, l2, a, depth = left.shape
    r0, r1, r2, c, _ = rt.shape
    q, scaling, offsets = batch_quantize_floats(left.reshape(-1, depth).astype(F32),
                                                p.asymmetric_quantize_inputs)
    if p.per_channel_scale is None:
        scaling = (scaling * F32(p.filter_scale)).astype(F32)
    q = q.reshape(left.shape).astype(np.float64)
    acc = wrap_int32(exact_int_matmul(q, np.swapaxes(rt.astype(np.float64), -1, -2)))
    bd0, bd1, bd2 = acc.shape[:3]
    b0 = np.arange(bd0)[:, None, None]
    b1 = np.arange(bd1)[None, :, None]
    b2 = np.arange(bd2)[None, None, :]
    # ioff_ext / woff_ext of reference/batch_matmul.h
    s_base = (b0 * (l0 != 1) + b1 * (l1 != 1) + b2 * (l2 != 1)) * a
    w_base = (b0 * (r0 != 1) + b1 * (r1 != 1) + b2 * (r2 != 1)) * c
    sidx = s_base[..., None] + np.arange(a)            # [bd0, bd1, bd2, A]
    widx = w_base[..., None] + np.arange(c)            # [bd0, bd1, bd2, C]
    row_sums = sse_reduction_sum_int8(rt.reshape(-1, rt.shape[-1]))
    batch_scale = scaling[sidx][..., :, None]          # [.., A, 1]
    batch_offset = offsets[sidx].astype(F32)[..., :, None]
    row_sum = row_sums[widx].astype(F32)[..., None, :]  # [.., 1, C]
    total = float_to_int32_trunc((acc.astype(F32) - (row_sum * batch_offset).astype(F32)).astype(F32))
    scale = batch_scale if p.per_channel_scale is None else (
        batch_scale * p.per_channel_scale).astype(F32)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf scales (non-finite inputs), as in C
        return (scale * total.astype(F32)).astype(F32)


def eval(p: BatchMatMulParams, lhs: np.ndarray, rhs: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    out_shape = _output_shape(lhs.shape, rhs.shape, p.adj_x, p.adj_y)
    if int(np.prod(out_shape, dtype=np.int64)) == 0:
        return [np.zeros(out_shape, p.out_dtype)]
    left, rt = _operands(p, lhs, rhs)
    if p.kind == "float":
        res = sequential_dot_f32(left[..., :, None, :], rt[..., None, :, :])
        return [res.reshape(out_shape)]
    if p.kind == "hybrid":
        return [_eval_hybrid(p, left, rt).reshape(out_shape)]
    if p.kind == "int8_int32":
        acc = exact_int_matmul(left.astype(np.float64), np.swapaxes(rt.astype(np.float64), -1, -2))
        return [wrap_int32(acc).astype(np.int32).reshape(out_shape)]
    lc = left.astype(np.float64) + p.input_offset
    rc = np.swapaxes(rt.astype(np.float64) + p.filter_offset, -1, -2)
    acc = exact_int_matmul(lc, rc)
    if p.requant is not None:   # xnnpack (runtime/ops/_paths.py)
        return [p.requant.apply(acc).astype(p.out_dtype).reshape(out_shape)]
    if p.kind == "int8":
        scaled = multiply_by_quantized_multiplier(wrap_int32(acc), p.output_multiplier, p.output_shift)
    else:
        scaled = multiply_by_quantized_multiplier_int64(acc, p.output_multiplier, p.output_shift)
    out = np.clip(scaled + p.output_offset, p.output_activation_min, p.output_activation_max)
    return [out.astype(p.out_dtype).reshape(out_shape)]
