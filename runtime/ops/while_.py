"""WHILE: run the body subgraph while the cond subgraph returns true.

Mirrors LiteRT's ``tflite/kernels/while.cc``: the loop variables start as the
operator's inputs; each iteration runs cond on them (its single output must be a bool
of shape [] or [1]), stops when it is false, else replaces them by the body's
outputs. The outputs are the final loop variables (an input passed straight through
the body is its own output). Checks as Prepare: as many outputs as inputs, cond and
body different, cond has the inputs and one output, body has as many inputs and
outputs, and each body output has the type of the loop variable.

The loop is bounded: after ``Interpreter(max_loop_iterations=...)`` body runs (default
one million) it raises ``LoopLimitError`` where LiteRT would never return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantcore.errors import InputError
from quantcore.schema.model import TensorType

from ._common import BOOL, NUMERICS as _ALL, OpContext, copy_array
from ._control_flow import (LoopLimitError, check_input_types, check_signature, interpreter_of,
                            output_type, subgraph_index)

NUMERICS = _ALL   # data movement only: every path runs the same loop

__all__ = ["LoopLimitError", "Params", "prepare", "eval"]


@dataclass(frozen=True)
class Params:
    cond_subgraph_index: int
    body_subgraph_index: int
    interpreter: Any
    path: str


def prepare(ctx: OpContext) -> Params:
    n = len(ctx.inputs)
    ctx.check(len(ctx.outputs) == n, f"has {n} inputs and {len(ctx.outputs)} outputs; "
              "they must match", ".outputs")
    cond = subgraph_index(ctx, "cond_subgraph_index")
    body = subgraph_index(ctx, "body_subgraph_index")
    ctx.check(cond != body, "cond and body are the same subgraph", ".builtin_options")
    check_signature(ctx, cond, n, 1, "cond")
    check_signature(ctx, body, n, n, "body")
    check_input_types(ctx, cond, ctx.inputs, "cond")
    check_input_types(ctx, body, ctx.inputs, "body")
    ctx.check(output_type(ctx, cond, 0) == BOOL,
              f"cond subgraph output type is {_type_name(output_type(ctx, cond, 0))}, not BOOL")
    for j, c in enumerate(ctx.inputs):
        if c is not None:
            ctx.check(output_type(ctx, body, j) == c.type,
                      f"body output type {_type_name(output_type(ctx, body, j))} of loop variable "
                      f"{j} differs from its type {c.type_name}")
    return Params(cond, body, interpreter_of(ctx), ctx.path)


def _type_name(t: int) -> str:
    try:
        return TensorType(t).name
    except ValueError:
        return str(t)


def _condition(p: Params, value: np.ndarray) -> bool:
    if value.dtype != np.bool_ or not (value.ndim == 0 or value.shape == (1,)):
        raise InputError(f"{p.path}: WHILE cond output must be a bool of shape [] or [1], "
                         f"got {value.dtype} {list(value.shape)}")
    return bool(value.reshape(-1)[0])


def eval(p: Params, *inputs: np.ndarray) -> list[np.ndarray]:
    it = p.interpreter
    values = list(inputs)
    limit = it.max_loop_iterations
    n = 0
    while _condition(p, it.invoke_subgraph(p.cond_subgraph_index, values)[0]):
        if n >= limit:
            raise LoopLimitError(f"{p.path}: WHILE ran {n} iterations without its condition "
                                 f"turning false (max_loop_iterations={limit})")
        values = it.invoke_subgraph(p.body_subgraph_index, values)
        n += 1
    return [copy_array(v) for v in values]
