"""Helpers of the control-flow kernels (WHILE, IF, CALL_ONCE): the interpreter handle
and prepare-time checks of a called subgraph's signature.

Mirrors the checks of LiteRT's ``tflite/kernels/while.cc``, ``if.cc`` and
``call_once.cc`` Prepare, and ``control_flow_common.cc`` (the caller's tensor types
are copied onto the callee's inputs, so they must agree with what the callee does).
"""
from __future__ import annotations

from typing import Any

from quantcore.errors import LoopLimitError  # noqa: F401 (WHILE imports it from here)

from ._common import OpContext


def check_sequence_steps(ctx: OpContext, shape: tuple, *, time_major: bool,
                         directions: int = 1, per_batch_row: bool = True) -> None:
    """Sequence ops (LSTM, RNN) loop over time steps in Python: ``directions * T``
    steps, times the batch when batch major and ``per_batch_row`` (LiteRT's loop
    order runs each batch row on its own). More than the interpreter's
    ``max_loop_iterations`` raises LoopLimitError in Prepare, before any work, as a
    WHILE loop does (a bound on time, as the memory budget is on space)."""
    it = ctx.extra.get("interpreter")
    limit = getattr(it, "max_loop_iterations", None)
    if limit is None or len(shape) < 2:
        return
    t, b = (shape[0], shape[1]) if time_major else (shape[1], shape[0])
    steps = directions * t * (b if per_batch_row and not time_major else 1)
    if steps > limit:
        raise LoopLimitError(f"{ctx.path}: {ctx.op_name}: the sequence needs {steps} steps, "
                             f"over the interpreter's max_loop_iterations={limit}")


def interpreter_of(ctx: OpContext) -> Any:
    """The running Interpreter (``invoke_subgraph``, ``resources``, ...)."""
    it = ctx.extra.get("interpreter")
    if it is None:
        raise ctx.unsupported("needs an Interpreter that runs subgraphs (ctx.extra['interpreter'])")
    return it


def subgraph_index(ctx: OpContext, field: str) -> int:
    """A ``*_subgraph_index`` option: present and in range (the reader checks it too)."""
    value = ctx.options.get(field)
    n = len(ctx.model.subgraphs)
    ctx.check(value is not None and 0 <= int(value) < n,
              f"{field} {value} is not one of the {n} subgraphs", f".builtin_options.{field}")
    ctx.check(int(value) != ctx.subgraph, f"{field} {value} is the calling subgraph itself",
              f".builtin_options.{field}")
    return int(value)


def check_signature(ctx: OpContext, index: int, n_in: int, n_out: int, role: str) -> None:
    sg = ctx.model.subgraphs[index]
    ctx.check(len(sg.inputs) == n_in,
              f"{role} subgraph {index} has {len(sg.inputs)} inputs, expected {n_in}")
    ctx.check(len(sg.outputs) == n_out,
              f"{role} subgraph {index} has {len(sg.outputs)} outputs, expected {n_out}")


def check_input_types(ctx: OpContext, index: int, callers: list, role: str) -> None:
    """The callee's input types equal the caller's tensor types (LiteRT copies them)."""
    sg = ctx.model.subgraphs[index]
    for j, (t, c) in enumerate(zip(sg.inputs, callers)):
        if t < 0 or c is None:
            continue
        mine = sg.tensors[t].type
        ctx.check(mine == c.type, f"{role} subgraph {index} input {j} has type "
                  f"{sg.tensors[t].type_name}, the caller passes {c.type_name} (LiteRT would "
                  "overwrite the declared type with the caller's and run the subgraph on it)")


def output_type(ctx: OpContext, index: int, j: int) -> int:
    sg = ctx.model.subgraphs[index]
    return sg.tensors[sg.outputs[j]].type
