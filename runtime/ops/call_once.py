"""CALL_ONCE: run the init subgraph on the first invoke only (resource initialisation).

Mirrors LiteRT's ``tflite/kernels/call_once.cc``: no inputs or outputs, the init
subgraph differs from the caller and has no inputs or outputs; whether it has run is
kept per interpreter (``Interpreter.initialized_subgraphs``), across invokes, and is not
undone by ``reset_all_variables``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._common import NUMERICS as _ALL, OpContext
from ._control_flow import check_signature, interpreter_of, subgraph_index

NUMERICS = _ALL


@dataclass(frozen=True)
class Params:
    init_subgraph_index: int
    interpreter: Any


def prepare(ctx: OpContext) -> Params:
    init = subgraph_index(ctx, "init_subgraph_index")
    it = interpreter_of(ctx)
    if init not in it.initialized_subgraphs:   # LiteRT checks only until it has run
        ctx.check(len(ctx.inputs) == 0, f"has {len(ctx.inputs)} inputs, expected 0", ".inputs")
        ctx.check(len(ctx.outputs) == 0, f"has {len(ctx.outputs)} outputs, expected 0", ".outputs")
        check_signature(ctx, init, 0, 0, "init")
    return Params(init, it)


def eval(p: Params, *inputs) -> list:
    it = p.interpreter
    if p.init_subgraph_index not in it.initialized_subgraphs:
        it.invoke_subgraph(p.init_subgraph_index, [])
        it.initialized_subgraphs.add(p.init_subgraph_index)
    return []
