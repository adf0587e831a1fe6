"""Child process of :class:`quantcore.oracle.LiteRTOracle`: runs LiteRT on request.

Reads length-prefixed pickled requests on stdin and answers on stdout until EOF.
If LiteRT aborts, this process dies and the parent reports it.
"""
from __future__ import annotations

import os
import pickle
import struct
import sys


def _serve() -> None:
    out = os.fdopen(os.dup(1), "wb")
    # Anything LiteRT prints must not corrupt the reply stream.
    os.dup2(2, 1)
    try:
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as e:  # pragma: no cover
        Interpreter = None
        import_error = f"ai-edge-litert is not installed ({e}); pip install 'quantcore[test]'"
    inp = sys.stdin.buffer
    while True:
        header = inp.read(8)
        if len(header) < 8:
            return
        (n,) = struct.unpack("<Q", header)
        req = pickle.loads(inp.read(n))
        if Interpreter is None:
            reply = {"unavailable": import_error}
        else:
            reply = _run(req, Interpreter, OpResolverType, np)
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(struct.pack("<Q", len(data)))
        out.write(data)
        out.flush()


def _run(req, Interpreter, OpResolverType, np) -> dict:
    try:
        it = Interpreter(model_content=req["model"],
                         experimental_op_resolver_type=getattr(OpResolverType, req["resolver"]),
                         experimental_preserve_all_tensors=req["preserve"],
                         num_threads=req["threads"])
        it.allocate_tensors()
        details = it.get_input_details()
        inputs = req["inputs"]
        items = inputs.items() if isinstance(inputs, dict) else enumerate(inputs)
        for i, value in items:
            d = details[i]
            value = np.asarray(value)
            if list(value.shape) != list(d["shape"]):
                it.resize_tensor_input(d["index"], value.shape)
                it.allocate_tensors()
        for i, value in items if isinstance(inputs, dict) else enumerate(inputs):
            it.set_tensor(details[i]["index"], np.asarray(value))
        it.invoke()
        outputs = [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]
        tensors = {}
        if req["preserve"]:
            for d in it.get_tensor_details():
                try:
                    tensors[d["index"]] = np.array(it.get_tensor(d["index"]))
                except ValueError:
                    pass
        return {"outputs": outputs, "tensors": tensors}
    except Exception as e:  # LiteRT refused the model or the inputs
        return {"error": f"{type(e).__name__}: {e}"}


if __name__ == "__main__":
    _serve()
