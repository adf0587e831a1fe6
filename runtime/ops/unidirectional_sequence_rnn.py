"""UNIDIRECTIONAL_SEQUENCE_RNN: the basic RNN cell over a sequence; float32 and hybrid.

Mirrors LiteRT's ``tflite/kernels/unidirectional_sequence_rnn.cc``: input [B, T,
input_size] (``[T, B, input_size]`` with ``time_major``), weights, recurrent weights,
bias, hidden state [B, units] (variable: persists across invokes); output [B, T,
units] (or time major). Each step is ``RnnBatchStep`` (see ``rnn.py``).
"""
from __future__ import annotations

import numpy as np

from ._common import OpContext
from .rnn import Params, _weights, bias_values, prepare_common, rnn_step

NUMERICS = ("reference",)


def prepare(ctx: OpContext) -> Params:
    return prepare_common(ctx, sequence=True)


def eval(p: Params, x, w, r, b, h_var):
    w, r, sums = _weights(p, w, r)
    b = bias_values(b, w)
    xt = x if p.time_major else np.swapaxes(x, 0, 1)
    h = h_var.astype(np.float32)
    outs = np.empty(xt.shape[:2] + (h.shape[1],), np.float32)
    for t in range(xt.shape[0]):
        h = rnn_step(p, xt[t], w, r, b, h, sums)
        outs[t] = h
    np.copyto(h_var, h)
    return [np.ascontiguousarray(outs if p.time_major else np.swapaxes(outs, 0, 1))]
