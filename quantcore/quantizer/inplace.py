"""Which tensors the TFLite calibrator sees overwritten by in-place operators.

The TensorFlow converter calibrates by running the float model in the LiteRT
interpreter and logging every operator's inputs and outputs *after* the operator
ran (``tflite/tools/optimize/calibration/calibrator.cc``). LiteRT's arena planner
lets some operators write their output into the buffer of an input
(``ArenaPlanner::IdentifyInPlaceTensors``, ``tflite/arena_planner.cc``), so the
logged "input" values of such an operator are really its output values: the
converter's range for that input is the union of the input's and the output's
ranges. Reproducing this is necessary to match the converter's scales on residual
networks (the first operand of an ADD whose only consumer is that ADD).

An input is shared when the operator allows it (ADD, SUB, MUL, DIV: input 0 or
1, the first that qualifies; SOFTMAX: input 0), it has the output's byte size and
more than 4 bytes, it has exactly one reference (one consumer, not a model
output), it is not a model input or a constant, and the output is not a model
output.
"""
from __future__ import annotations

from quantcore.schema.model import Model, TensorType, packed_nbytes

_SHAREABLE_INPUTS = {"ADD": (0, 1), "SUB": (0, 1), "MUL": (0, 1), "DIV": (0, 1), "SOFTMAX": (0,)}
_SCALAR_BYTES = 4


def inplace_pairs(model: Model, subgraph: int = 0) -> list[tuple[int, int, int]]:
    """(operator index, shared input tensor, output tensor) for subgraph ``subgraph``."""
    sg = model.subgraphs[subgraph]
    refs = [0] * len(sg.tensors)
    for op in sg.operators:
        for t in op.inputs:
            if t >= 0:
                refs[t] += 1
    for t in sg.outputs:
        refs[t] += 1
    inputs, outputs = set(sg.inputs), set(sg.outputs)
    pairs = []
    for o, op in enumerate(sg.operators):
        shareable = _SHAREABLE_INPUTS.get(model.op_name(op))
        if not shareable or not op.outputs or op.outputs[0] < 0:
            continue
        out = op.outputs[0]
        if out in outputs:
            continue
        out_t = sg.tensors[out]
        out_bytes = packed_nbytes(out_t.type, out_t.num_elements)
        for j in shareable:
            if j >= len(op.inputs) or op.inputs[j] < 0:
                continue
            t = op.inputs[j]
            tensor = sg.tensors[t]
            if t in inputs or model.tensor_data(subgraph, t) is not None or tensor.is_variable:
                continue
            nbytes = packed_nbytes(tensor.type, tensor.num_elements)
            if tensor.type == TensorType.STRING or nbytes != out_bytes or nbytes <= _SCALAR_BYTES:
                continue
            if refs[t] > 1:
                continue
            pairs.append((o, t, out))
            break
    return pairs
