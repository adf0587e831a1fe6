#!/usr/bin/env python3
"""Generate the runtime regression corpus in ``tests/fixtures/regressions/``.

One small model per failure the runtime fuzzer (``tests/test_fuzz_runtime.py``)
found after the reader: a model the reader accepts but whose prepare or invoke
raised something other than a :class:`~quantcore.errors.QuantcoreError` (an
IndexError, a plain ValueError, a MemoryError, a NumPy warning, a hang), computed a
wrong answer, or refused a model LiteRT runs. Each is rebuilt here with
:class:`~quantcore.schema.builder.ModelBuilder`, reduced to the one field that
triggered it. ``expected.json`` maps ``<name>.tflite`` to:

* ``error``: the QuantcoreError subclass ``Interpreter`` + ``allocate_tensors`` +
  ``set_tensor`` + ``invoke`` must raise, and ``message``, a substring of it; or
  ``error: null`` when the model must run (then ``output``, when given, is the
  expected first output);
* ``inputs``: ``<name>.npz`` with the input arrays (``arr_0``, ...), when the model
  has inputs;
* ``why``: the bug (operator, input, what escaped before the fix).

``tests/test_regressions.py`` checks every entry and that this script still
produces the files on disk. Usage::

    python scripts/make_regressions.py [--out tests/fixtures/regressions] [--check]

The output is deterministic.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from quantcore.schema import read_model, write_model
from quantcore.schema.builder import ModelBuilder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "regressions"

Case = tuple[bytes, list[np.ndarray], dict]
CASES: dict[str, Callable[[], Case]] = {}


def case(fn: Callable[[], Case]) -> Callable[[], Case]:
    CASES[fn.__name__] = fn
    return fn


def expect(error: str | None, message: str = "", why: str = "", output=None) -> dict:
    e = {"error": error, "message": message, "why": why}
    if output is not None:
        e["output"] = np.asarray(output).tolist()
        e["output_shape"] = list(np.shape(output))
    return e


def unary(op: str, x_shape, dtype, *, x_q=None, y_q=None, y_dtype=None, y_shape=None,
          **options) -> tuple[ModelBuilder, int, int]:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", x_shape, dtype, **(x_q or {}))
    y = b.add_tensor("y", y_shape if y_shape is not None else x_shape, y_dtype or dtype, **(y_q or {}))
    b.add_operator(op, [x], [y], **options)
    b.mark_outputs(y)
    return b, x, y


def absent_input(op: str, build: Callable[[ModelBuilder], tuple[list[int], int]], j: int,
                 **options) -> bytes:
    """An operator whose input ``j`` is replaced by -1 (CVE-2020-15211)."""
    b = ModelBuilder("quantcore runtime regression")
    ins, out = build(b)
    b.add_operator(op, ins, [out], **options)
    b.mark_outputs(out)
    m = read_model(b.to_bytes())
    m.subgraphs[0].operators[0].inputs[j] = -1
    return write_model(m)


# ---------------------------------------------------------------------------
# Required inputs marked absent (-1): TypeError / AttributeError in eval before
# ---------------------------------------------------------------------------
def _x(b, shape=(2, 3), dtype=np.float32):
    return b.add_input("x", list(shape), dtype)


@case
def shape_input_absent() -> Case:
    data = absent_input("SHAPE", lambda b: ([_x(b)], b.add_tensor("y", [2], np.int32)), 0, out_type="INT32")
    return data, [], expect("ModelFormatError", "input 0 is required but marked absent",
                            "SHAPE input -1: AttributeError 'NoneType' has no attribute 'shape' in eval")


@case
def expand_dims_axis_absent() -> Case:
    data = absent_input("EXPAND_DIMS", lambda b: ([_x(b), b.add_constant("a", np.array([0], np.int32))],
                                                  b.add_tensor("y", [1, 2, 3], np.float32)), 1)
    return data, [np.ones((2, 3), np.float32)], expect(
        "ModelFormatError", "input 1 is required but marked absent", "EXPAND_DIMS axis -1: TypeError in eval")


@case
def split_v_sizes_absent() -> Case:
    def build(b):
        x = _x(b, (4, 3))
        sizes = b.add_constant("sizes", np.array([1, 3], np.int32))
        axis = b.add_constant("axis", np.array([0], np.int32))
        b.add_tensor("y0", [1, 3], np.float32)
        return [x, sizes, axis], b.add_tensor("y1", [3, 3], np.float32)
    b = ModelBuilder("quantcore runtime regression")
    ins, y1 = build(b)
    b.add_operator("SPLIT_V", ins, [y1 - 1, y1], num_splits=2)
    b.mark_outputs(y1 - 1, y1)
    m = read_model(b.to_bytes())
    m.subgraphs[0].operators[0].inputs[1] = -1
    return write_model(m), [np.ones((4, 3), np.float32)], expect(
        "ModelFormatError", "input 1 is required but marked absent", "SPLIT_V size_splits -1: TypeError in eval")


@case
def batch_to_space_crops_absent() -> Case:
    data = absent_input("BATCH_TO_SPACE_ND", lambda b: (
        [_x(b, (4, 1, 1, 1)), b.add_constant("block", np.array([2, 2], np.int32)),
         b.add_constant("crops", np.zeros((2, 2), np.int32))], b.add_tensor("y", [1, 2, 2, 1], np.float32)), 2)
    return data, [np.ones((4, 1, 1, 1), np.float32)], expect(
        "ModelFormatError", "input 2 is required but marked absent", "BATCH_TO_SPACE_ND crops -1: TypeError in eval")


@case
def mirror_pad_paddings_absent() -> Case:
    data = absent_input("MIRROR_PAD", lambda b: ([_x(b), b.add_constant("p", np.ones((2, 2), np.int32))],
                                                 b.add_tensor("y", [4, 5], np.float32)), 1, mode="REFLECT")
    return data, [np.ones((2, 3), np.float32)], expect(
        "ModelFormatError", "input 1 is required but marked absent", "MIRROR_PAD paddings -1: TypeError in eval")


# ---------------------------------------------------------------------------
# Integer parameter tensors of the wrong type: int(NaN) ValueError before
# ---------------------------------------------------------------------------
@case
def strided_slice_float_begin() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (4,))
    begin = b.add_constant("begin", np.array([np.nan], np.float32))
    end = b.add_constant("end", np.array([3], np.int32))
    strides = b.add_constant("strides", np.array([1], np.int32))
    y = b.add_tensor("y", [3], np.float32)
    b.add_operator("STRIDED_SLICE", [x, begin, end, strides], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.arange(4, dtype=np.float32)], expect(
        "UnsupportedOpError", "begin tensor", "STRIDED_SLICE float begin: ValueError int(NaN) in eval")


@case
def split_v_float_size_splits() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (4, 3))
    sizes = b.add_constant("sizes", np.array([1.0, np.nan], np.float32))
    axis = b.add_constant("axis", np.array([0], np.int32))
    y0 = b.add_tensor("y0", [1, 3], np.float32)
    y1 = b.add_tensor("y1", [3, 3], np.float32)
    b.add_operator("SPLIT_V", [x, sizes, axis], [y0, y1], num_splits=2)
    b.mark_outputs(y0, y1)
    return b.to_bytes(), [np.ones((4, 3), np.float32)], expect(
        "UnsupportedOpError", "size_splits tensor", "SPLIT_V float size_splits: ValueError int(NaN) in eval")


@case
def gather_float_indices() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (4,))
    idx = b.add_constant("idx", np.array([np.nan], np.float64))
    y = b.add_tensor("y", [1], np.float32)
    b.add_operator("GATHER", [x, idx], [y], axis=0)
    b.mark_outputs(y)
    return b.to_bytes(), [np.arange(4, dtype=np.float32)], expect(
        "UnsupportedOpError", "indices tensor", "GATHER float64 indices: RuntimeWarning invalid cast in eval")


@case
def slice_float_size() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (4,))
    begin = b.add_constant("begin", np.array([0], np.int32))
    size = b.add_constant("size", np.array([np.nan], np.float32))
    y = b.add_tensor("y", [2], np.float32)
    b.add_operator("SLICE", [x, begin, size], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.arange(4, dtype=np.float32)], expect(
        "UnsupportedOpError", "size tensor", "SLICE float size: ValueError int(NaN) in eval")


@case
def reshape_float_shape_tensor_uses_option() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (2, 3))
    shape = b.add_constant("shape", np.array([np.nan, 1.0], np.float32))
    y = b.add_tensor("y", [3, 2], np.float32)
    b.add_operator("RESHAPE", [x, shape], [y], new_shape=[3, 2])
    b.mark_outputs(y)
    x_value = np.arange(6, dtype=np.float32).reshape(2, 3)
    return b.to_bytes(), [x_value], expect(
        None, "", "RESHAPE with a float shape tensor: ValueError int(NaN); LiteRT (ShapeIsVector) "
        "ignores a shape tensor that is not an int32 vector and uses new_shape", x_value.reshape(3, 2))


# ---------------------------------------------------------------------------
# Data-dependent output sizes: MemoryError (or an out-of-memory kill) before
# ---------------------------------------------------------------------------
def _sized(op: str, x_shape, param: np.ndarray, y_shape, **options) -> bytes:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, x_shape)
    p = b.add_constant("param", param)
    y = b.add_tensor("y", y_shape, np.float32)
    b.add_operator(op, [x, p], [y], **options)
    b.mark_outputs(y)
    return b.to_bytes()


@case
def resize_bilinear_huge_size() -> Case:
    data = _sized("RESIZE_BILINEAR", (1, 2, 2, 1), np.array([2**31 - 1, 2], np.int32), [1, 4, 4, 1])
    return data, [np.ones((1, 2, 2, 1), np.float32)], expect(
        "InputError", "over the limit", "RESIZE_BILINEAR size 2^31-1: MemoryError")


@case
def resize_nearest_huge_size() -> Case:
    data = _sized("RESIZE_NEAREST_NEIGHBOR", (1, 2, 2, 1), np.array([65535, 65535], np.int32), [1, 4, 4, 1])
    return data, [np.ones((1, 2, 2, 1), np.float32)], expect(
        "InputError", "over the limit", "RESIZE_NEAREST_NEIGHBOR size 65535x65535: MemoryError")


@case
def resize_nearest_empty_batch_huge_size() -> Case:
    data = _sized("RESIZE_NEAREST_NEIGHBOR", (0, 2, 2, 1), np.array([2, 2**31 - 1], np.int32), [0, 2, 2, 1])
    return data, [np.zeros((0, 2, 2, 1), np.float32)], expect(
        "InputError", "over the limit", "RESIZE_NEAREST_NEIGHBOR of an empty batch to width 2^31-1: "
        "the empty output passed the size check, the 8 GiB index vector did not (MemoryError)")


@case
def pad_huge_paddings() -> Case:
    data = _sized("PAD", (2, 3), np.array([[0, 2**62], [0, 0]], np.int64), [2, 3])
    return data, [np.ones((2, 3), np.float32)], expect(
        "InputError", "beyond int32", "PAD int64 paddings 2^62: ValueError 'Maximum allowed dimension exceeded'")


@case
def fill_huge_dims() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    dims = b.add_constant("dims", np.array([2**31 - 1, 3, 4], np.int32))
    value = b.add_constant("value", np.array(1.0, np.float32))
    y = b.add_tensor("y", [1], np.float32)
    b.add_operator("FILL", [dims, value], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [], expect("InputError", "over the limit", "FILL dims [2^31-1, 3, 4]: MemoryError")


@case
def broadcast_to_huge_shape() -> Case:
    data = _sized("BROADCAST_TO", (1, 3), np.array([2**31 - 1, 3], np.int32), [2, 3])
    return data, [np.ones((1, 3), np.float32)], expect(
        "InputError", "over the limit", "BROADCAST_TO shape [2^31-1, 3]: MemoryError")


@case
def space_to_batch_huge_paddings() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (1, 2, 2, 1))
    block = b.add_constant("block", np.array([1, 1], np.int32))
    pads = b.add_constant("pads", np.array([[0, 2**31 - 1], [0, 0]], np.int32))
    y = b.add_tensor("y", [1, 2, 2, 1], np.float32)
    b.add_operator("SPACE_TO_BATCH_ND", [x, block, pads], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.ones((1, 2, 2, 1), np.float32)], expect(
        "InputError", "beyond int32", "SPACE_TO_BATCH_ND paddings 2^31-1: MemoryError")


@case
def conv_huge_dilation() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (1, 4, 4, 1))
    w = b.add_constant("w", np.ones((1, 3, 3, 1), np.float32))
    bias = b.add_constant("bias", np.zeros(1, np.float32))
    y = b.add_tensor("y", [1, 4, 4, 1], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
                   dilation_w_factor=2**31 - 1, dilation_h_factor=1)
    b.mark_outputs(y)
    return b.to_bytes(), [np.ones((1, 4, 4, 1), np.float32)], expect(
        "ModelFormatError", "over the memory budget", "CONV_2D dilation 2^31-1 (SAME): MemoryError padding the input")


@case
def average_pool_huge_filter_runs() -> Case:
    b, x, y = unary("AVERAGE_POOL_2D", [1, 3, 3, 1], np.float32, y_shape=[1, 3, 3, 1], padding="SAME",
                    stride_w=1, stride_h=1, filter_width=2**20, filter_height=2**20)
    x_value = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    return b.to_bytes(), [x_value], expect(
        None, "", "AVERAGE_POOL_2D filter 2^20 (SAME): the padded input took gigabytes and 2^40 taps "
        "(a hang); only taps that can reach the image are visited now, as LiteRT's loops do",
        np.full((1, 3, 3, 1), 4.0, np.float32))


# ---------------------------------------------------------------------------
# Derived multipliers out of range: RuntimeWarning, ValueError, OverflowError before
# ---------------------------------------------------------------------------
_Q8 = {"scale": 0.05, "zero_point": 0}


@case
def leaky_relu_huge_alpha() -> Case:
    b, _, _ = unary("LEAKY_RELU", [4], np.int8, x_q=_Q8, y_q={"scale": 1e-6, "zero_point": 0}, alpha=3.4e38)
    return b.to_bytes(), [np.arange(4, dtype=np.int8)], expect(
        "ModelFormatError", "not a finite number", "int8 LEAKY_RELU alpha 3.4e38: RuntimeWarning then "
        "ValueError from quantize_multiplier(inf)")


@case
def abs_huge_scale_ratio() -> Case:
    b, _, _ = unary("ABS", [4], np.int8, x_q={"scale": 3.4e38, "zero_point": 0}, y_q={"scale": 1e-3, "zero_point": 0})
    return b.to_bytes(), [np.arange(4, dtype=np.int8)], expect(
        "ModelFormatError", "not a finite number", "int8 ABS input scale 3.4e38: RuntimeWarning, ValueError")


@case
def hard_swish_huge_scale_ratio() -> Case:
    b, _, _ = unary("HARD_SWISH", [4], np.int8, x_q={"scale": 3.4e38, "zero_point": 0},
                    y_q={"scale": 1e-30, "zero_point": 0})
    return b.to_bytes(), [np.arange(4, dtype=np.int8)], expect(
        "ModelFormatError", "not a finite number", "int8 HARD_SWISH scale ratio overflows: ValueError")


@case
def relu_huge_scale_ratio() -> Case:
    b, _, _ = unary("RELU", [4], np.int8, x_q={"scale": 3.4e38, "zero_point": 0}, y_q={"scale": 1e-30, "zero_point": 0})
    return b.to_bytes(), [np.arange(4, dtype=np.int8)], expect(
        "ModelFormatError", "not a finite number", "int8 RELU scale ratio overflows: ValueError")


@case
def softmax_nan_beta() -> Case:
    b, _, _ = unary("SOFTMAX", [1, 4], np.int8, x_q=_Q8, y_q={"scale": 1 / 256, "zero_point": -128}, beta=float("nan"))
    return b.to_bytes(), [np.arange(4, dtype=np.int8).reshape(1, 4)], expect(
        "ModelFormatError", "beta is nan", "int8 SOFTMAX beta NaN: ValueError from quantize_multiplier")


@case
def tanh_int16_huge_input_scale() -> Case:
    b, _, _ = unary("TANH", [4], np.int16, x_q={"scale": 3.4e38, "zero_point": 0},
                    y_q={"scale": 2.0**-15, "zero_point": 0})
    return b.to_bytes(), [np.arange(4, dtype=np.int16)], expect(
        "ModelFormatError", "beyond int32", "int16 TANH input scale 3.4e38: OverflowError in eval")


@case
def concatenation_uint8_tiny_output_scale() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [2], np.uint8, scale=1.0, zero_point=3)
    y = b.add_input("y", [2], np.uint8, scale=1.0, zero_point=3)
    z = b.add_tensor("z", [4], np.uint8, scale=1.4e-45, zero_point=0)
    b.add_operator("CONCATENATION", [x, y], [z], axis=0)
    b.mark_outputs(z)
    return b.to_bytes(), [np.ones(2, np.uint8), np.ones(2, np.uint8)], expect(
        "ModelFormatError", "not a finite number", "uint8 CONCATENATION rescale by 1/1.4e-45: RuntimeWarning")


# ---------------------------------------------------------------------------
# Shapes and types the kernels did not expect
# ---------------------------------------------------------------------------
@case
def strided_slice_new_axis_mask_all_bits() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (4,))
    consts = [b.add_constant(n, np.array([v], np.int32)) for n, v in (("b", 0), ("e", 4), ("s", 1))]
    y = b.add_tensor("y", [1, 4], np.float32)
    b.add_operator("STRIDED_SLICE", [x, *consts], [y], new_axis_mask=-1)
    b.mark_outputs(y)
    return b.to_bytes(), [np.arange(4, dtype=np.float32)], expect(
        "InputError", "new_axis_mask", "STRIDED_SLICE new_axis_mask -1: ValueError reshape in eval "
        "(LiteRT's effective shape no longer covers the input)")


@case
def wrong_declared_intermediate_shape_runs() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [2, 3], np.float32)
    y = b.add_input("y", [2, 3], np.float32)
    s = b.add_tensor("sum", [7, 7], np.float32)
    r = b.add_tensor("relu", [2, 3], np.float32)
    b.add_operator("ADD", [x, y], [s])
    b.add_operator("RELU", [s], [r])
    b.mark_outputs(r)
    xv = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    return b.to_bytes(), [xv, np.ones((2, 3), np.float32)], expect(
        None, "", "an intermediate declared [7, 7] computed [2, 3]: kernels prepared with the declared "
        "shape failed in eval (ValueError, IndexError); LiteRT resizes outputs in Prepare and runs it",
        np.maximum(xv + 1, 0))


@case
def split_v_declared_output_type_differs() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (4, 3))
    sizes = b.add_constant("sizes", np.array([1, 3], np.int32))
    axis = b.add_constant("axis", np.array([0], np.int32))
    y0 = b.add_tensor("y0", [1, 3], np.int16, scale=0.1, zero_point=0)
    y1 = b.add_tensor("y1", [3, 3], np.float32)
    z = b.add_tensor("z", [1, 3], np.bool_)
    b.add_operator("SPLIT_V", [x, sizes, axis], [y0, y1], num_splits=2)
    b.add_operator("LESS", [y0, y0], [z])
    b.mark_outputs(z, y1)
    return b.to_bytes(), [np.ones((4, 3), np.float32)], expect(
        "ModelFormatError", "computes float32 for tensor", "SPLIT_V output declared INT16 for a float "
        "input: LESS was prepared for int16 and got float32 (RuntimeWarning invalid cast)")


@case
def average_pool_without_options() -> Case:
    b, _, _ = unary("LOGISTIC", [1, 2, 2, 1], np.float32)
    m = read_model(b.to_bytes())
    code = m.operator_codes[0]
    code.builtin_code = code.deprecated_builtin_code = 1  # AVERAGE_POOL_2D, options absent
    return write_model(m), [np.ones((1, 2, 2, 1), np.float32)], expect(
        "ModelFormatError", "strides must be > 0", "AVERAGE_POOL_2D without builtin options: KeyError "
        "'padding' (LiteRT default-initializes the params)")


@case
def pad_int8_zero_point_out_of_range() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [2], np.int8, scale=0.1, zero_point=0)
    p = b.add_constant("p", np.array([[1, 1]], np.int32))
    y = b.add_tensor("y", [4], np.int8, scale=0.1, zero_point=255)
    b.add_operator("PAD", [x, p], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.ones(2, np.int8)], expect(
        "ModelFormatError", "zero point outside the INT8 range", "int8 PAD output zero point 255: "
        "OverflowError in np.pad")


@case
def resize_bilinear_empty_image() -> Case:
    data = _sized("RESIZE_BILINEAR", (1, 0, 2, 1), np.array([2, 2], np.int32), [1, 2, 2, 1])
    return data, [np.ones((1, 0, 2, 1), np.float32)], expect(
        "ModelFormatError", "has no pixels", "RESIZE_BILINEAR of a 0-row image: IndexError in eval")


@case
def softmax_empty_last_axis_runs() -> Case:
    b, _, _ = unary("SOFTMAX", [2, 0], np.float32, beta=1.0)
    return b.to_bytes(), [np.zeros((2, 0), np.float32)], expect(
        None, "", "SOFTMAX over an empty axis: ValueError 'zero-size array to reduction operation maximum'",
        np.zeros((2, 0), np.float32))


@case
def concatenation_of_scalar_inputs() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [], np.float32)
    y = b.add_input("y", [], np.float32)
    z = b.add_tensor("z", [2], np.float32)
    b.add_operator("CONCATENATION", [x, y], [z], axis=0)
    b.mark_outputs(z)
    return b.to_bytes(), [np.float32(1), np.float32(2)], expect(
        "ModelFormatError", "scalar inputs can only be concatenated", "CONCATENATION of non-constant "
        "scalars: ValueError 'zero-dimensional arrays cannot be concatenated'")


@case
def equal_shapes_do_not_broadcast() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [3], np.float32)
    y = b.add_input("y", [4], np.float32)
    z = b.add_tensor("z", [4], np.bool_)
    b.add_operator("EQUAL", [x, y], [z])
    b.mark_outputs(z)
    return b.to_bytes(), [np.ones(3, np.float32), np.ones(4, np.float32)], expect(
        "ModelFormatError", "do not broadcast", "EQUAL of shapes [3] and [4]: ValueError in eval")


@case
def fully_connected_float64_output() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [1, 2], np.int8, scale=0.1, zero_point=0)
    w = b.add_constant("w", np.ones((2, 2), np.int8), scale=0.1, zero_point=0)
    y = b.add_tensor("y", [1, 2], np.float64, scale=0.1, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.ones((1, 2), np.int8)], expect(
        "UnsupportedOpError", "output tensor", "int8 FULLY_CONNECTED with a quantized FLOAT64 output: "
        "KeyError in the activation range")


@case
def cast_float_to_int64_saturates() -> Case:
    b, _, _ = unary("CAST", [6], np.float32, y_dtype=np.int64, in_data_type="FLOAT32", out_data_type="INT64")
    x = np.array([1e19, -1e19, 9.3e18, np.inf, np.nan, -2.5], np.float32)
    hi, lo = 2**63 - 1, -(2**63)
    return b.to_bytes(), [x], expect(
        None, "", "CAST float32 -> int64 of values >= 2^63, inf and NaN gave INT64_MIN (float(int64 max) "
        "rounds to 2^63); LiteRT saturates to INT64_MAX", np.array([hi, lo, hi, hi, hi, -2], np.int64))


@case
def hybrid_conv_infinite_input() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (1, 2, 2, 1))
    w = b.add_constant("w", np.ones((2, 1, 1, 1), np.int8), scale=np.array([0.1, 0.2], np.float32),
                       zero_point=np.zeros(2, np.int64), quantized_dimension=0)
    bias = b.add_constant("bias", np.zeros(2, np.float32))
    y = b.add_tensor("y", [1, 2, 2, 2], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="VALID", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    xv = np.array([np.inf, 1, 2, 3], np.float32).reshape(1, 2, 2, 1)
    # expected output: LiteRT 2.3 BUILTIN_REF on this model and input
    e = expect(None, "", "hybrid CONV_2D (per-channel, asymmetric input quantization) of an infinite "
               "input: ValueError int(NaN) for the zero point (x86 gives 0), then RuntimeWarnings "
               "from the NaN arithmetic", np.full((1, 2, 2, 2), np.nan, np.float32))
    return b.to_bytes(), [xv], e


@case
def float_conv_inf_weight_with_padding() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (1, 3, 3, 1))
    wv = np.ones((1, 3, 3, 1), np.float32)
    wv[0, 0, 0, 0] = np.inf
    w = b.add_constant("w", wv)
    bias = b.add_constant("bias", np.zeros(1, np.float32))
    y = b.add_tensor("y", [1, 3, 3, 1], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    big = float(np.finfo(np.float32).max)
    # expected output: LiteRT 2.3 BUILTIN_REF (reference_ops::Conv skips taps outside the image)
    want = np.array([4, 6, 4, 6, big, big, 4, big, big], np.float32).reshape(1, 3, 3, 1)
    return b.to_bytes(), [np.ones((1, 3, 3, 1), np.float32)], expect(
        None, "", "float CONV_2D multiplied SAME padding by an inf weight (im2col): NaN and a "
        "RuntimeWarning where LiteRT BUILTIN_REF skips the out-of-image taps", want)


def _hybrid_fc_nan(asym: bool) -> bytes:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (2, 20))
    w = b.add_constant("w", (np.eye(3, 20) * 100).astype(np.int8), scale=np.float32(0.01), zero_point=0)
    y = b.add_tensor("y", [2, 3], np.float32)
    b.add_operator("FULLY_CONNECTED", [x, w, -1], [y], asymmetric_quantize_inputs=asym)
    b.mark_outputs(y)
    return b.to_bytes()


def _nan_rows() -> np.ndarray:
    xv = np.tile(np.linspace(-1, 1.5, 20).astype(np.float32), (2, 1))
    xv[0, 1] = np.nan
    xv[1, 19] = np.nan
    xv[1, 2] = np.inf
    return xv


@case
def hybrid_fc_nan_inputs_symmetric() -> Case:
    # expected output: LiteRT 2.3 BUILTIN_REF (std::minmax_element ignores most NaN)
    want = np.array([-1.003937005996704, -1.5, -0.7322834730148315, -1.0, -0.8661417365074158, 1.0],
                    np.float32).reshape(2, 3)
    return _hybrid_fc_nan(False), [_nan_rows()], expect(
        None, "", "hybrid FULLY_CONNECTED with NaN/inf inputs: NaN ranges and RuntimeWarnings where "
        "LiteRT's std::minmax_element skips the NaN", want)


@case
def hybrid_fc_nan_inputs_asymmetric() -> Case:
    # expected output: LiteRT 2.3 BUILTIN_REF (NeonMinMax ignores NaN; the infinite range
    # gives an infinite scale)
    want = np.array([-1.0, 1.5, -0.7352941036224365, np.nan, np.nan, -np.inf], np.float32).reshape(2, 3)
    return _hybrid_fc_nan(True), [_nan_rows()], expect(
        None, "", "hybrid FULLY_CONNECTED (asymmetric inputs) with NaN/inf inputs: NaN zero points "
        "and RuntimeWarnings where LiteRT's NeonMinMax ignores the NaN", want)


@case
def hybrid_conv_empty_batch_runs() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (0, 2, 2, 1))
    w = b.add_constant("w", np.ones((2, 1, 1, 1), np.int8), scale=np.array([0.1, 0.2], np.float32),
                       zero_point=np.zeros(2, np.int64), quantized_dimension=0)
    bias = b.add_constant("bias", np.zeros(2, np.float32))
    y = b.add_tensor("y", [0, 2, 2, 2], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="VALID", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    return b.to_bytes(), [np.zeros((0, 2, 2, 1), np.float32)], expect(
        None, "", "hybrid CONV_2D with an empty batch: ValueError reshape(0, -1)", np.zeros((0, 2, 2, 2), np.float32))


@case
def logical_and_shapes_do_not_broadcast() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [4], np.bool_)
    y = b.add_input("y", [0], np.bool_)
    z = b.add_tensor("z", [4], np.bool_)
    b.add_operator("LOGICAL_AND", [x, y], [z])
    b.mark_outputs(z)
    return b.to_bytes(), [np.ones(4, bool), np.ones(0, bool)], expect(
        "ModelFormatError", "do not broadcast", "LOGICAL_AND of shapes [4] and [0]: ValueError in eval")


@case
def mirror_pad_paddings_wrong_shape() -> Case:
    data = _sized("MIRROR_PAD", (2, 3), np.array([1, 1, 1], np.int32), [4, 5], mode="REFLECT")
    return data, [np.ones((2, 3), np.float32)], expect(
        "ModelFormatError", "paddings must have shape [2, 2]", "MIRROR_PAD paddings of shape [3]: "
        "ValueError reshape in eval")


@case
def space_to_batch_paddings_wrong_shape() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (1, 2, 2, 1))
    block = b.add_constant("block", np.array([1, 1], np.int32))
    pads = b.add_constant("pads", np.array([0, 0, 0], np.int32))
    y = b.add_tensor("y", [1, 2, 2, 1], np.float32)
    b.add_operator("SPACE_TO_BATCH_ND", [x, block, pads], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.ones((1, 2, 2, 1), np.float32)], expect(
        "ModelFormatError", "paddings must have shape [2, 2]", "SPACE_TO_BATCH_ND paddings of shape "
        "[3]: ValueError reshape in eval")


@case
def batch_to_space_dimension_beyond_int32() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (0, 3, 1, 1))
    block = b.add_constant("block", np.array([2**31 - 1, 1], np.int32))
    crops = b.add_constant("crops", np.zeros((2, 2), np.int32))
    y = b.add_tensor("y", [0, 3, 1, 1], np.float32)
    b.add_operator("BATCH_TO_SPACE_ND", [x, block, crops], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.zeros((0, 3, 1, 1), np.float32)], expect(
        "InputError", "beyond int32", "BATCH_TO_SPACE_ND of an empty batch with block "
        "2^31-1: an empty output of shape [0, 6442450941, 1, 1]; OverflowError in get_output_details")


@case
def squared_difference_huge_scales() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [2], np.int8, scale=3.4e38, zero_point=0)
    y = b.add_input("y", [2], np.int8, scale=3.4e38, zero_point=0)
    z = b.add_tensor("z", [2], np.int8, scale=1.0, zero_point=0)
    b.add_operator("SQUARED_DIFFERENCE", [x, y], [z])
    b.mark_outputs(z)
    return b.to_bytes(), [np.ones(2, np.int8), np.ones(2, np.int8)], expect(
        "ModelFormatError", "overflow float32 when doubled", "int8 SQUARED_DIFFERENCE input scales "
        "3.4e38: RuntimeWarning overflow in prepare")


@case
def log_softmax_float_infinite_input_runs() -> Case:
    b, _, _ = unary("LOG_SOFTMAX", [1, 3], np.float32)
    return b.to_bytes(), [np.array([[np.inf, 1.0, -np.inf]], np.float32)], expect(
        None, "", "float LOG_SOFTMAX of inf: RuntimeWarning 'invalid value encountered in subtract' "
        "(the result is NaN, as in C)")


@case
def rsqrt_int8_tiny_scales() -> Case:
    b, _, _ = unary("RSQRT", [4], np.int8, x_q={"scale": 1.4e-45, "zero_point": 0},
                    y_q={"scale": 1.4e-45, "zero_point": 0})
    return b.to_bytes(), [np.arange(1, 5, dtype=np.int8)], expect(
        "ModelFormatError", "not a finite number", "int8 RSQRT with scales 1.4e-45: ZeroDivisionError "
        "computing 1 / (sqrt(s_in) * s_out)")


@case
def div_int32_zero_divisor_with_zero_point() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [2], np.int32)
    y = b.add_input("y", [2], np.int32, scale=1.0, zero_point=3)
    z = b.add_tensor("z", [2], np.int32)
    b.add_operator("DIV", [x, y], [z])
    b.mark_outputs(z)
    return b.to_bytes(), [np.array([7, 8], np.int32), np.array([2, 0], np.int32)], expect(
        "InputError", "equal to 0", "int32 DIV whose divisor has zero point 3: the 0 passed the "
        "zero-point check and NumPy divided by zero (warning; LiteRT traps)")


@case
def fully_connected_bias_of_rank_two() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = _x(b, (2, 3))
    w = b.add_constant("w", np.ones((4, 3), np.float32))
    bias = b.add_constant("bias", np.arange(4, dtype=np.float32).reshape(4, 1))
    y = b.add_tensor("y", [2, 4], np.float32)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [np.ones((2, 3), np.float32)], expect(
        None, "", "FULLY_CONNECTED with a bias of shape [4, 1]: ValueError broadcasting it against "
        "[2, 4]; LiteRT reads the bias as 4 values", np.tile(np.arange(3, 7, dtype=np.float32), (2, 1)))


@case
def conv_int8_scalar_bias() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [1, 2, 2, 1], np.int8, scale=0.1, zero_point=0)
    w = b.add_constant("w", np.ones((1, 1, 1, 1), np.int8), scale=0.1, zero_point=0)
    bias = b.add_constant("bias", np.array(5, np.int32), scale=0.01, zero_point=0)   # shape []
    y = b.add_tensor("y", [1, 2, 2, 1], np.int8, scale=0.1, zero_point=0)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="VALID", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    return b.to_bytes(), [np.arange(4, dtype=np.int8).reshape(1, 2, 2, 1)], expect(
        None, "", "int8 CONV_2D with one output channel and a bias of shape [] (1 element): "
        "IndexError slicing the 0-d bias in the fast path (LiteRT: all 1)", np.ones((1, 2, 2, 1), np.int8))


@case
def reshape_empty_to_huge_dimensions() -> Case:
    b, _, _ = unary("RESHAPE", [0, 2], np.float32, y_shape=[1], new_shape=[2147483647, 65536, -1, 1048576, 3])
    return b.to_bytes(), [np.zeros((0, 2), np.float32)], expect(
        "InputError", "beyond int32", "RESHAPE of an empty tensor to [2^31-1, 65536, -1, 2^20, 3]: "
        "ValueError 'array is too big'")


# ---------------------------------------------------------------------------
# Differential acceptance (LiteRT BUILTIN_REF runs these): refused before, run now
# ---------------------------------------------------------------------------
@case
def pad_after_wrongly_declared_intermediate_runs() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [2, 3], np.float32)
    y = b.add_input("y", [2, 3], np.float32)
    s = b.add_tensor("sum", [3], np.float32)          # computed [2, 3]
    p = b.add_constant("p", np.array([[1, 0], [0, 1]], np.int32))
    z = b.add_tensor("z", [3, 4], np.float32)
    b.add_operator("ADD", [x, y], [s])
    b.add_operator("PAD", [s, p], [z])
    b.mark_outputs(z)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    return b.to_bytes(), [xv, np.ones((2, 3), np.float32)], expect(
        None, "", "PAD prepared with the declared rank-1 shape of its input failed at "
        "allocate_tensors (ModelFormatError: paddings must have shape [1, 2]); LiteRT prepares with "
        "the computed [2, 3] and runs it. Such operators are now prepared again at invoke",
        np.pad(xv + 1, ((1, 0), (0, 1))))


@case
def concatenation_int16_different_scales_runs() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [2], np.int16, scale=0.5, zero_point=0)
    y = b.add_input("y", [2], np.int16, scale=0.01, zero_point=0)
    z = b.add_tensor("z", [4], np.int16, scale=0.1, zero_point=0)
    b.add_operator("CONCATENATION", [x, y], [z], axis=0)
    b.mark_outputs(z)
    return b.to_bytes(), [np.array([100, -7], np.int16), np.array([3000, -32768], np.int16)], expect(
        None, "", "int16 CONCATENATION with input scales other than the output's was refused; "
        "concatenation.cc checks only int16 zero points and copies the codes (LiteRT output "
        "[100, -7, 3000, -32768])", np.array([100, -7, 3000, -32768], np.int16))


# ---------------------------------------------------------------------------
# Differential acceptance: LiteRT runs these, quantcore keeps refusing (documented)
# ---------------------------------------------------------------------------
@case
def keep_refusing_zero_point_out_of_range() -> Case:
    b, _, _ = unary("RELU", [4], np.int8, x_q={"scale": 0.1, "zero_point": -129},
                    y_q={"scale": 0.1, "zero_point": 0})
    return b.to_bytes(), [np.arange(4, dtype=np.int8)], expect(
        "ModelFormatError", "zero point outside the INT8 range", "LiteRT's RELU runs an int8 zero "
        "point of -129 (and 2^31-1, where its int32 arithmetic overflows): the codes no longer "
        "represent the quantized values, so quantcore refuses (ROBUSTNESS.md, CVE-2021-37682 class)")


@case
def keep_refusing_declared_output_type_mismatch() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    x = b.add_input("x", [3], np.float32)
    y = b.add_input("y", [3], np.float32)
    z = b.add_tensor("z", [3], np.uint8)
    b.add_operator("EQUAL", [x, y], [z])
    b.mark_outputs(z)
    return b.to_bytes(), [np.ones(3, np.float32), np.zeros(3, np.float32)], expect(
        "ModelFormatError", "output must be BOOL", "LiteRT's comparison (and SPLIT, ZEROS_LIKE, "
        "RESIZE_*) Prepare overwrites the declared output type with the computed one and runs; "
        "quantcore refuses a model whose declared types contradict its operators")


@case
def keep_refusing_unknown_activation() -> Case:
    b, _, _ = unary("RELU", [4], np.float32)
    m = read_model(b.to_bytes())
    m.operator_codes[0].builtin_code = m.operator_codes[0].deprecated_builtin_code = 18  # MUL
    from quantcore.schema.builder import make_options
    op = m.subgraphs[0].operators[0]
    op.inputs = [0, 0]
    op.builtin_options_type, op.builtin_options = make_options("MUL", fused_activation_function=11)
    return write_model(m), [np.arange(4, dtype=np.float32)], expect(
        "ModelFormatError", "fused_activation_function is 11", "LiteRT maps an unknown fused "
        "activation to NONE and runs; the reader refuses enum values the schema does not define")


@case
def empty_constant_fill_dims_runs() -> Case:
    b = ModelBuilder("quantcore runtime regression")
    dims = b.add_constant("dims", np.zeros(0, np.int32))
    value = b.add_constant("value", np.array(2.5, np.float32))
    y = b.add_tensor("y", [], np.float32)
    b.add_operator("FILL", [dims, value], [y])
    b.mark_outputs(y)
    return b.to_bytes(), [], expect(None, "", "FILL dims: a constant with an empty data vector had no "
                                    "value at run time (TypeError int(None) in eval)", np.float32(2.5))


# ---------------------------------------------------------------------------
# LSTM: byte mutants of the recurrent fixtures (one-hour fuzz run on ea74881)
# ---------------------------------------------------------------------------
RECURRENT = ROOT / "tests" / "fixtures" / "recurrent"


def _lstm_fixture(kind: str):
    """(model, LSTM operator) of the committed Keras LSTM fixture (float32 or int8)."""
    m = read_model((RECURRENT / f"lstm_tfkeras_{kind}.tflite").read_bytes())
    sg = m.subgraphs[0]
    op = next(o for o in sg.operators
              if m.operator_codes[o.opcode_index].builtin_code == 44)   # UNIDIRECTIONAL_SEQUENCE_LSTM
    return m, op


def _lstm_input() -> list[np.ndarray]:
    return [np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 8, 4)]   # float I/O, both kinds


def _lstm_state_scale(state_slot: int, what: str) -> Case:
    m, op = _lstm_fixture("int8")
    t = m.subgraphs[0].tensors[op.inputs[state_slot]]
    t.quantization.scale = [float("nan")]
    return write_model(m), _lstm_input(), expect(
        "ModelFormatError", "has a scale that is not finite",
        f"integer LSTM with a NaN {what} scale: ValueError from quantize_multiplier(NaN) / int(NaN) "
        "in _lstm.integer_params")


@case
def lstm_int8_nan_output_state_scale() -> Case:
    return _lstm_state_scale(18, "output state")


@case
def lstm_int8_nan_cell_state_scale() -> Case:
    return _lstm_state_scale(19, "cell state")


def _lstm_absent(slot: int, message: str, why: str) -> Case:
    m, op = _lstm_fixture("float32")
    op.inputs[slot] = -1
    return write_model(m), _lstm_input(), expect("ModelFormatError", message, why)


@case
def lstm_recurrent_to_cell_absent() -> Case:
    return _lstm_absent(7, "recurrent_to_cell_weights is missing",
                        "float LSTM without recurrent_to_cell weights: KeyError 'r2c' in eval")


@case
def lstm_input_to_forget_absent() -> Case:
    return _lstm_absent(2, "input_to_forget_weights is missing",
                        "LSTM without input_to_forget weights: AttributeError (None.shape) in prepare")


@case
def lstm_constant_output_state() -> Case:
    m, op = _lstm_fixture("float32")
    op.inputs[18] = op.inputs[15]           # the output gate bias: a constant, not a variable
    return write_model(m), _lstm_input(), expect(
        "ModelFormatError", "must be a variable tensor",
        "LSTM whose output state is a constant: 'assignment destination is read-only' in eval "
        "(LiteRT: GetVariableInput returns nullptr)")


@case
def lstm_sequence_over_loop_limit() -> Case:
    m, op = _lstm_fixture("float32")
    sg = m.subgraphs[0]
    steps = 1_000_001                       # Interpreter's default max_loop_iterations + 1
    sg.tensors[op.inputs[0]].shape = [1, steps, 4]
    out = sg.tensors[op.outputs[0]]
    out.shape = [1, steps, out.shape[-1]]
    return write_model(m), [], expect(
        "LoopLimitError", "the sequence needs 1000001 steps",
        "float LSTM over a 196,616-step sequence ran for minutes (fuzz CaseTimeout): a sequence op "
        "now counts its steps against max_loop_iterations")


# ---------------------------------------------------------------------------
def cases() -> dict[str, tuple[bytes, bytes | None, dict]]:
    """{file name: (model bytes, npz bytes or None, expectation)}."""
    out = {}
    for name, fn in CASES.items():
        data, inputs, expectation = fn()
        npz = None
        if inputs:
            buf = io.BytesIO()
            np.savez(buf, *[np.asarray(x) for x in inputs])
            npz = buf.getvalue()
            expectation["inputs"] = f"{name}.npz"
        out[f"{name}.tflite"] = (data, npz, expectation)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    args = ap.parse_args(argv)
    built = cases()
    expected_json = json.dumps({n: e for n, (_, _, e) in sorted(built.items())}, indent=1, sort_keys=True) + "\n"
    if args.check:
        stale = [n for n, (data, _, _) in built.items()
                 if not (args.out / n).is_file() or (args.out / n).read_bytes() != data]
        if not (args.out / "expected.json").is_file() or (args.out / "expected.json").read_text() != expected_json:
            stale.append("expected.json")
        for n in stale:
            print(f"stale: {n}")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for old in list(args.out.glob("*.tflite")) + list(args.out.glob("*.npz")):
        if old.name not in built and old.name.replace(".npz", ".tflite") not in built:
            old.unlink()
    for n, (data, npz, _) in built.items():
        (args.out / n).write_bytes(data)
        if npz is not None:
            (args.out / n.replace(".tflite", ".npz")).write_bytes(npz)
    (args.out / "expected.json").write_text(expected_json)
    print(f"wrote {len(built)} models to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
