"""VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE: resource variables (tf.Variable state).

Mirrors LiteRT's ``tflite/kernels/var_handle.cc``, ``read_variable.cc`` and
``assign_variable.cc``:

* VAR_HANDLE writes its resource id (int32) to its RESOURCE output. Ids are handed out
  when the operators are created, in subgraph then operator order, one per distinct
  ``(container, shared_name)``: the n-th distinct name gets id n, shared by every
  VAR_HANDLE naming it (in any subgraph);
* ASSIGN_VARIABLE (resource, value), no outputs: the variable takes a copy of value
  (type and shape included), created on first assignment;
* READ_VARIABLE (resource) -> value: the variable's value; reading a variable never
  assigned fails (LiteRT's Eval fails; here InputError). A rank-0 declared output takes
  the variable's shape; otherwise the element count must match the declared shape
  (LiteRT would memcpy ``output->bytes``, reading out of bounds on a mismatch).

The variables live in ``Interpreter.resources`` and persist across invokes;
``reset_all_variables`` leaves them alone, as in LiteRT.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantcore.errors import InputError
from quantcore.schema.model import TensorType

from ._common import INT32, NUMERICS as _ALL, OpContext
from ._control_flow import interpreter_of

NUMERICS = _ALL
RESOURCE = int(TensorType.RESOURCE)


@dataclass(frozen=True)
class Params:
    op: str
    interpreter: Any
    resource_id: int = -1          # VAR_HANDLE
    out_shape: tuple | None = None  # READ_VARIABLE: declared shape (None: dynamic)
    out_dtype: Any = None
    path: str = ""


def _key(options: dict) -> tuple[str, str]:
    return (options.get("container") or "", options.get("shared_name") or "")


def resource_ids(model) -> dict[tuple[str, str], int]:
    """(container, shared_name) -> id, in the order LiteRT's VAR_HANDLE Init assigns them."""
    ids: dict[tuple[str, str], int] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            if model.operator_codes[op.opcode_index].name == "VAR_HANDLE":
                ids.setdefault(_key(op.options), len(ids))
    return ids


def _check_resource(ctx: OpContext) -> None:
    r = ctx.input(0)
    ctx.check(r.type in (RESOURCE, INT32), f"resource input has type {r.type_name}, expected "
              "RESOURCE or INT32", ".inputs[0]")
    ctx.check(r.num_elements == 1, f"resource input has {r.num_elements} elements, expected 1",
              ".inputs[0]")


def prepare(ctx: OpContext) -> Params:
    it = interpreter_of(ctx)
    if ctx.op_name == "VAR_HANDLE":
        ctx.check(len(ctx.outputs) == 1, f"expects 1 output, has {len(ctx.outputs)}", ".outputs")
        return Params("VAR_HANDLE", it, resource_id=resource_ids(ctx.model)[_key(ctx.options)],
                      out_shape=ctx.output(0).shape)
    if ctx.op_name == "READ_VARIABLE":
        ctx.check_io_count(1, 1)
        _check_resource(ctx)
        out = ctx.output(0)
        return Params("READ_VARIABLE", it, out_shape=None if len(out.shape) == 0 else out.shape,
                      out_dtype=out.dtype, path=ctx.path)
    ctx.check_io_count(2, 0)
    _check_resource(ctx)
    return Params("ASSIGN_VARIABLE", it, path=ctx.path)


def eval(p: Params, *inputs: np.ndarray) -> list[np.ndarray]:
    if p.op == "VAR_HANDLE":
        return [np.full(p.out_shape, p.resource_id, np.int32)]
    rid = int(np.asarray(inputs[0]).reshape(-1)[0])
    if p.op == "ASSIGN_VARIABLE":
        p.interpreter.resources[rid] = np.array(inputs[1], copy=True)
        return []
    value = p.interpreter.resources.get(rid)
    if value is None:
        raise InputError(f"{p.path}: READ_VARIABLE of resource {rid}, which was never assigned")
    if value.dtype != p.out_dtype:
        raise InputError(f"{p.path}: resource {rid} holds {value.dtype}, the output is {p.out_dtype}")
    if p.out_shape is None:
        return [np.array(value, copy=True)]
    if value.size != int(np.prod(p.out_shape, dtype=np.int64)):
        raise InputError(f"{p.path}: resource {rid} has shape {list(value.shape)}, the output "
                         f"declares {list(p.out_shape)}")
    return [np.array(value, copy=True).reshape(p.out_shape)]
