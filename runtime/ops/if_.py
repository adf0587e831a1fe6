"""IF: run the then or the else subgraph on inputs[1:], as inputs[0] (a bool) says.

Mirrors LiteRT's ``tflite/kernels/if.cc``: Prepare requires at least one input, a BOOL
condition with exactly one element, both branches taking ``len(inputs) - 1`` inputs
and giving ``len(outputs)`` outputs; Eval runs the chosen branch and copies its
outputs (a branch output that is one of its inputs is that input's value).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import BOOL, NUMERICS as _ALL, OpContext, copy_array
from ._control_flow import check_input_types, check_signature, interpreter_of, subgraph_index

NUMERICS = _ALL


@dataclass(frozen=True)
class Params:
    then_subgraph_index: int
    else_subgraph_index: int
    interpreter: Any


def prepare(ctx: OpContext) -> Params:
    ctx.check(len(ctx.inputs) > 0, "needs the condition input", ".inputs")
    cond = ctx.input(0)
    ctx.check(cond.type == BOOL, f"condition has type {cond.type_name}, expected BOOL", ".inputs[0]")
    ctx.check(cond.num_elements == 1, f"condition has {cond.num_elements} elements, expected 1",
              ".inputs[0]")
    then_ = subgraph_index(ctx, "then_subgraph_index")
    else_ = subgraph_index(ctx, "else_subgraph_index")
    for idx, role in ((then_, "then"), (else_, "else")):
        check_signature(ctx, idx, len(ctx.inputs) - 1, len(ctx.outputs), role)
        check_input_types(ctx, idx, ctx.inputs[1:], role)
    return Params(then_, else_, interpreter_of(ctx))


def eval(p: Params, cond: np.ndarray, *inputs: np.ndarray) -> list[np.ndarray]:
    branch = p.then_subgraph_index if bool(np.asarray(cond).reshape(-1)[0]) else p.else_subgraph_index
    return [copy_array(v) for v in p.interpreter.invoke_subgraph(branch, list(inputs))]
