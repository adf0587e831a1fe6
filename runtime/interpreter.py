"""The quantcore interpreter: the ``tf.lite.Interpreter`` interface over NumPy kernels.

A script written for ``ai_edge_litert.interpreter.Interpreter`` runs unchanged::

    it = Interpreter(model_path="model.tflite")
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])

Execution is a plain loop over the operators in stored order (the model reader has
checked that this order is topological). Every operator was prepared once in
``allocate_tensors``; ``invoke`` only calls ``eval``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from quantcore.errors import InputError, ModelFormatError, NumericsPathError, ResourceLimitError
from quantcore.schema import DEFAULT_MEMORY_BUDGET, read_model
from quantcore.schema import _schema_desc as _desc
from quantcore.schema.builder import options_table_for
from quantcore.schema.model import Model, Operator, TensorType, numpy_dtype

from .ops import get_kernel
from .ops._common import NUMERICS, OpContext, TensorInfo

# Float arithmetic follows C: a result beyond float32 is +-inf (as LiteRT computes it)
# and tiny ones flush toward 0; neither is an error worth a NumPy warning. (Prepare
# checks that the multipliers it derives from scales are finite: its float
# arithmetic on extreme scales may give inf or NaN silently.) In eval, NaN-producing
# operations and integer division by zero still warn.
_FLOAT_RANGE = {"over": "ignore", "under": "ignore"}
_PREPARE_FLOAT = {"all": "ignore"}

# Operators evaluated once at allocation when all their inputs are constant.
_FOLDABLE = frozenset({"DEQUANTIZE", "DENSIFY", "QUANTIZE"})


@dataclass
class _PreparedOp:
    index: int
    name: str
    kernel: Any
    params: Any
    inputs: list[int]
    outputs: list[int]
    folded: bool = False      # evaluated once in allocate_tensors (constant inputs)
    in_shapes: tuple = ()     # the input shapes prepare saw (None for absent inputs)
    out_dtypes: tuple = ()    # the declared NumPy dtype of each output (None for absent)


def _constant(model: Model, s: int, i: int) -> np.ndarray | None:
    """A tensor's constant value. An empty data vector is data too (the validator
    makes such a tensor a constant): a zero-element tensor's value is an empty array."""
    value = model.tensor_data(s, i)
    t = model.subgraphs[s].tensors[i]
    if value is None and t.buffer and model.buffers[t.buffer].data is not None and t.num_elements == 0:
        value = np.zeros(t.shape, numpy_dtype(t.type))
    return value


def _options(op: Operator, name: str) -> dict:
    """The operator's builtin options. When the model omits the options table, every
    scalar field is zero / false, as in LiteRT's zero-initialized params struct (not
    the schema's defaults: an absent AddOptions has pot_scale_int16 false), so kernels
    can read every field."""
    opts = op.options
    table = options_table_for(name) if not op.builtin_options_type else None
    if table is not None:
        zeros = {row[0]: (False if row[3] == "bool" else 0.0 if row[3].startswith("float") else 0)
                 for row in _desc.TABLES[table] if not row[5] and row[2] in ("scalar", "enum")}
        opts = {**zeros, **opts}
    return opts


def _as_array(value: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists, objects NumPy cannot convert
        raise InputError(f"{what}: not an array ({e})") from None


def _new_shape(tensor_size: Any, tensor) -> tuple[int, ...]:
    """A shape for ``resize_tensor_input``: integers in [0, 2^31) (LiteRT's int32 dims)
    whose bytes fit the reader's memory budget."""
    arr = _as_array(tensor_size, "resize_tensor_input")
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InputError(f"resize_tensor_input needs a list of integers, got {tensor_size!r}")
    shape = tuple(int(d) for d in arr)
    if any(not 0 <= d < 2**31 for d in shape):
        raise InputError(f"invalid shape {list(shape)}: dimensions must be in [0, 2^31)")
    nbytes = math.prod(shape) * numpy_dtype(tensor.type).itemsize
    if nbytes > DEFAULT_MEMORY_BUDGET:
        raise InputError(f"shape {list(shape)} needs {nbytes} bytes, over the memory budget of "
                         f"{DEFAULT_MEMORY_BUDGET} bytes")
    return shape


class _SubgraphState:
    """Shapes, values and prepared operators of one subgraph."""

    def __init__(self, model: Model, index: int) -> None:
        self.model = model
        self.index = index
        sg = model.subgraphs[index]
        self.sg = sg
        self.shapes: list[tuple[int, ...]] = [tuple(t.shape) for t in sg.tensors]
        self.constants: list[np.ndarray | None] = [_constant(model, index, i) for i in range(len(sg.tensors))]
        self.values: list[np.ndarray | None] = list(self.constants)
        self.ops: list[_PreparedOp] = []
        self.allocated = False

    def tensor_info(self, i: int) -> TensorInfo:
        t = self.sg.tensors[i]
        qp = t.qparams()
        return TensorInfo(
            index=i, name=t.name, type=t.type, dtype=numpy_dtype(t.type), shape=self.shapes[i],
            scale=None if qp is None else qp[0], zero_point=None if qp is None else qp[1],
            quantized_dimension=t.quantization.quantized_dimension if t.quantization else 0,
            data=self.constants[i], is_variable=t.is_variable)


class Interpreter:
    """Runs a .tflite model with quantcore's NumPy kernels.

    ``numerics`` selects whose arithmetic the integer kernels reproduce:
    ``"reference"`` (LiteRT ``BUILTIN_REF``), ``"optimized"``
    (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``), ``"xnnpack"`` (``BUILTIN``) or
    ``"micro"`` (TFLite Micro); a kernel that does not implement the requested path
    raises ``NumericsPathError`` at construction. An operator without a kernel
    raises ``UnsupportedOpError`` at construction, listing the supported set.
    ``experimental_preserve_all_tensors`` is accepted for compatibility: quantcore
    always keeps every intermediate tensor readable.

    Several subgraphs: control-flow kernels (WHILE, IF, CALL_ONCE) run a subgraph
    through :meth:`invoke_subgraph`. A WHILE loop that has run
    ``max_loop_iterations`` body iterations (default 1,000,000) raises
    ``LoopLimitError`` (a QuantcoreError) instead of hanging; so does, in Prepare, a
    sequence op (LSTM, RNN) whose time loop would run more steps than that. State persists across
    ``invoke`` as in LiteRT: variable tensors (``is_variable``, set to zero, or to the
    zero point for int8, when a subgraph is first allocated and by
    :meth:`reset_all_variables`), resource variables (VAR_HANDLE / ASSIGN_VARIABLE /
    READ_VARIABLE, kept in ``self.resources`` by resource id; not reset, as in
    LiteRT) and which CALL_ONCE init subgraphs have run.
    """

    def __init__(self, model_path: str | os.PathLike | None = None,
                 model_content: bytes | None = None, *, numerics: str = "reference",
                 experimental_preserve_all_tensors: bool = False,
                 num_threads: int | None = None, model: Model | None = None,
                 max_loop_iterations: int = 1_000_000) -> None:
        given = [x is not None for x in (model_path, model_content, model)]
        if sum(given) != 1:
            raise InputError("give exactly one of model_path, model_content or model")
        if numerics not in NUMERICS:
            raise InputError(f"numerics must be one of {', '.join(NUMERICS)}, not {numerics!r}")
        self.numerics = numerics
        self.model = model if model is not None else read_model(
            model_path if model_path is not None else model_content,
            micro=numerics == "micro")  # TFLM accepts more quantized_dimension values
        self.preserve_all_tensors = experimental_preserve_all_tensors
        self._states = [_SubgraphState(self.model, i) for i in range(len(self.model.subgraphs))]
        self.max_loop_iterations = int(max_loop_iterations)
        self.resources: dict[int, np.ndarray] = {}   # resource variables by resource id
        self.initialized_subgraphs: set[int] = set()  # CALL_ONCE init subgraphs already run
        # Called after every operator of every subgraph, when set (calibration of loop
        # bodies: a WHILE body's tensors are observed at every iteration):
        # ``op_observer(subgraph_index, prepared_op, input_values, output_values)``.
        # Input values are those the operator read (a kernel that updates a variable
        # tensor in place, such as the LSTM's state, shows the updated value).
        self.op_observer: Callable[[int, Any, list, list], None] | None = None
        self._kernels = self._resolve_kernels()

    # -- construction --------------------------------------------------------------
    def _resolve_kernels(self) -> dict[tuple[int, int], Any]:
        kernels = {}
        for s, sg in enumerate(self.model.subgraphs):
            for o, op in enumerate(sg.operators):
                code = self.model.operator_codes[op.opcode_index]
                path = f"subgraphs[{s}].operators[{o}]"
                kernel = get_kernel(code.name, code.version, path)
                paths = getattr(kernel, "NUMERICS", ("reference",))
                if self.numerics == "micro":  # TFLM's kernels and types: runtime/micro.py
                    from .micro import micro_paths
                    paths = micro_paths(self.model, s, o, paths, path)
                if self.numerics not in paths:
                    raise NumericsPathError(
                        f"{path}: {code.name} has no '{self.numerics}' numerics path in quantcore "
                        f"yet (available: {', '.join(paths)})")
                kernels[(s, o)] = kernel
        return kernels

    def _prepare(self, state: _SubgraphState) -> None:
        if not state.allocated:
            self._reset_variables(state)
        state.ops = []
        state.constants = [_constant(self.model, state.index, i) for i in range(len(state.sg.tensors))]
        # A called subgraph's inputs get the caller's types and shapes at invoke (LiteRT's
        # control-flow kernels copy them over): an operator refusing what they declare is
        # prepared again at invoke, after the caller's own checks.
        produced: set[int] = set(state.sg.inputs) if state.index > 0 else set()
        for o, op in enumerate(state.sg.operators):
            code = self.model.operator_codes[op.opcode_index]
            kernel = self._kernels[(state.index, o)]
            try:
                prepared = self._prepare_op(state, o)
            except ModelFormatError:
                if not produced.intersection(op.inputs):
                    raise
                # It reads a tensor an earlier operator computes, with a declared shape
                # that may not be the computed one (LiteRT's Prepare sees the computed
                # shapes): prepare it again at invoke, with the actual shapes.
                state.ops.append(_PreparedOp(o, code.name, kernel, None, list(op.inputs),
                                             list(op.outputs), in_shapes=None))
                produced.update(op.outputs)
                continue
            produced.update(op.outputs)
            params = prepared.params
            if code.name in _FOLDABLE and op.inputs and all(
                    i >= 0 and state.constants[i] is not None for i in op.inputs):
                # A DEQUANTIZE or DENSIFY of a constant (float16, int8 or sparse weights)
                # gives a constant: compute it once here, as LiteRT does for constant
                # inputs, so the operators that read it see constant weights (a QUANTIZE
                # of a constant, in QAT float models, likewise).
                results = kernel.eval(params, *[state.constants[i] for i in op.inputs])
                for t, r in zip(op.outputs, results):
                    state.constants[t] = r
                    state.values[t] = r
                    state.shapes[t] = tuple(r.shape)
                prepared.folded = True
            state.ops.append(prepared)
        state.allocated = True

    def _prepare_op(self, state: _SubgraphState, o: int) -> _PreparedOp:
        """Prepare one operator with the current shapes of its tensors."""
        op = state.sg.operators[o]
        code = self.model.operator_codes[op.opcode_index]
        ctx = OpContext(
            model=self.model, subgraph=state.index, index=o, op=op, op_name=code.name,
            version=code.version,
            inputs=[None if i < 0 else state.tensor_info(i) for i in op.inputs],
            outputs=[state.tensor_info(i) for i in op.outputs],
            options=_options(op, code.name), numerics=self.numerics, extra={"interpreter": self})
        for j, i in enumerate(op.inputs):
            if i >= 0 and state.sg.tensors[i].sparsity is not None and \
                    not (code.name == "DENSIFY" or (code.name == "FULLY_CONNECTED" and j == 1)):
                raise ModelFormatError(
                    f"{code.name}: input {j} (tensor {i}) is stored in TFLite's sparse format, which "
                    "only DENSIFY and FULLY_CONNECTED weights read; LiteRT would read the stored "
                    "values as the dense tensor (out of bounds)",
                    f"subgraphs[{state.index}].operators[{o}].inputs[{j}]")
        kernel = self._kernels[(state.index, o)]
        with np.errstate(**_PREPARE_FLOAT):
            params = kernel.prepare(ctx)
        in_shapes = tuple(None if i < 0 else tuple(state.shapes[i]) for i in op.inputs)
        out_dtypes = tuple(None if t < 0 else numpy_dtype(state.sg.tensors[t].type) for t in op.outputs)
        return _PreparedOp(o, code.name, kernel, params, list(op.inputs), list(op.outputs),
                           in_shapes=in_shapes, out_dtypes=out_dtypes)

    def _reset_variables(self, state: _SubgraphState) -> None:
        """``ResetVariableTensor``: zeros, the int8 zero point for int8 (a memset)."""
        for i, t in enumerate(state.sg.tensors):
            if t.is_variable and state.constants[i] is None:
                qp = t.qparams()
                fill = int(qp[1][0]) if t.type == TensorType.INT8 and qp is not None else 0
                if not -128 <= fill <= 127:
                    raise ModelFormatError(f"variable int8 tensor {t.name!r} has zero point {fill}, "
                                           "outside [-128, 127] (its reset value)",
                                           f"subgraphs[{state.index}].tensors[{i}].quantization")
                try:
                    state.values[i] = np.full(state.shapes[i], fill, numpy_dtype(t.type))
                except MemoryError:
                    raise ResourceLimitError(
                        f"subgraphs[{state.index}].tensors[{i}]: variable tensor {t.name!r} of shape {list(state.shapes[i])} does not fit "
                        "in the machine's free memory (it is within the reader's memory budget)",
                    ) from None

    def reset_all_variables(self) -> None:
        """Reset every variable tensor of every subgraph (LiteRT's ``ResetVariableTensors``;
        resource variables keep their values, as in LiteRT)."""
        for state in self._states:
            self._reset_variables(state)

    def invoke_subgraph(self, index: int, inputs: list[np.ndarray | None]) -> list[np.ndarray]:
        """Run subgraph ``index`` on ``inputs`` (one array per subgraph input, in order)
        and return its outputs. Used by control-flow kernels; an input whose shape differs
        from the declared one re-prepares the operators that read it."""
        state = self._states[index]
        sg = state.sg
        if len(inputs) != len(sg.inputs):
            raise ModelFormatError(f"subgraph {index} takes {len(sg.inputs)} inputs, got "
                                   f"{len(inputs)}", f"subgraphs[{index}].inputs")
        for t, v in zip(sg.inputs, inputs):
            if t < 0 or v is None:
                continue
            state.shapes[t] = tuple(np.shape(v))
            state.values[t] = v
        self._run(state)
        out = []
        for t in sg.outputs:
            v = state.values[t]
            if v is None:
                raise ModelFormatError(f"output tensor {t} of subgraph {index} has no value",
                                       f"subgraphs[{index}].outputs")
            out.append(v)
        return out

    def allocate_tensors(self) -> None:
        """Prepare every operator: validation, multipliers and tables, computed once."""
        for state in self._states:
            self._prepare(state)

    # -- details -------------------------------------------------------------------
    def _details(self, state: _SubgraphState, i: int) -> dict:
        t = state.sg.tensors[i]
        qp = t.qparams()
        if qp is None:
            scales = np.zeros(0, np.float32)
            zps = np.zeros(0, np.int32)
        else:
            scales, zps = qp[0], qp[1].astype(np.int32)
        legacy = (float(scales[0]), int(zps[0])) if len(scales) == 1 else (0.0, 0)
        shape = np.array(state.shapes[i], np.int32)
        sig = t.shape_signature if t.shape_signature is not None else list(state.shapes[i])
        dtype = numpy_dtype(t.type)
        return {
            "name": t.name, "index": i, "shape": shape,
            "shape_signature": np.array(sig, np.int32),
            "dtype": np.object_ if t.type == TensorType.STRING else dtype.type,
            "quantization": legacy,
            "quantization_parameters": {
                "scales": scales, "zero_points": zps,
                "quantized_dimension": t.quantization.quantized_dimension if t.quantization else 0},
            "sparsity_parameters": {} if t.sparsity is None else t.sparsity,
        }

    def get_input_details(self) -> list[dict]:
        s = self._states[0]
        return [self._details(s, i) for i in s.sg.inputs]

    def get_output_details(self) -> list[dict]:
        s = self._states[0]
        return [self._details(s, i) for i in s.sg.outputs]

    def get_tensor_details(self) -> list[dict]:
        s = self._states[0]
        return [self._details(s, i) for i in range(len(s.sg.tensors))]

    # -- data ----------------------------------------------------------------------
    def _state(self, subgraph_index: Any) -> _SubgraphState:
        if not isinstance(subgraph_index, (int, np.integer)) or \
                not 0 <= int(subgraph_index) < len(self._states):
            raise InputError(f"subgraph index {subgraph_index!r} out of range [0, {len(self._states)})")
        return self._states[int(subgraph_index)]

    def _index(self, state: _SubgraphState, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < len(state.sg.tensors):
            raise InputError(f"tensor index {index!r} out of range [0, {len(state.sg.tensors)})")
        return int(index)

    def set_tensor(self, tensor_index: int, value: Any, subgraph_index: int = 0) -> None:
        """Copy ``value`` into an input (or variable) tensor; dtype and shape must match."""
        state = self._state(subgraph_index)
        i = self._index(state, tensor_index)
        t = state.sg.tensors[i]
        if state.constants[i] is not None:
            raise InputError(f"cannot set tensor {i} ({t.name!r}): it is a constant of the model")
        value = _as_array(value, f"cannot set tensor {i} ({t.name!r})")
        want = numpy_dtype(t.type)
        if t.type == TensorType.STRING:
            value = np.asarray(value, dtype=object)
        elif value.dtype != want:
            raise InputError(f"cannot set tensor {i} ({t.name!r}): got {value.dtype}, expected {want}")
        if tuple(value.shape) != tuple(state.shapes[i]):
            raise InputError(f"cannot set tensor {i} ({t.name!r}): got shape {list(value.shape)}, "
                             f"expected {list(state.shapes[i])}")
        state.values[i] = np.array(value, copy=True)

    def get_tensor(self, tensor_index: int, subgraph_index: int = 0) -> np.ndarray:
        """A copy of a tensor's current value."""
        state = self._state(subgraph_index)
        i = self._index(state, tensor_index)
        v = state.values[i]
        if v is None:
            raise InputError(f"tensor {i} ({state.sg.tensors[i].name!r}) has no value yet")
        return np.array(v, copy=True)

    def tensor(self, tensor_index: int) -> Callable[[], np.ndarray]:
        """A function returning the tensor's current value without copying (as in LiteRT)."""
        state = self._states[0]
        i = self._index(state, tensor_index)
        return lambda: state.values[i]

    def resize_tensor_input(self, input_index: int, tensor_size, strict: bool = False) -> None:
        state = self._states[0]
        i = self._index(state, input_index)
        if i not in state.sg.inputs:
            raise InputError(f"tensor {i} is not an input")
        shape = _new_shape(tensor_size, state.sg.tensors[i])
        sig = state.sg.tensors[i].shape_signature
        if strict and sig is not None:
            for d, (new, s) in enumerate(zip(shape, sig)):
                if s != -1 and new != s:
                    raise InputError(f"dimension {d} of tensor {i} is fixed at {s}")
        state.shapes[i] = shape
        state.values[i] = None
        state.allocated = False

    # -- execution -----------------------------------------------------------------
    def invoke(self) -> None:
        """Run subgraph 0."""
        self._run(self._states[0])

    def _run(self, state: _SubgraphState) -> None:
        if not state.allocated:
            self._prepare(state)
        for i in state.sg.inputs:
            if state.values[i] is None:
                raise InputError(f"input tensor {i} ({state.sg.tensors[i].name!r}) was not set")
        values, shapes = state.values, state.shapes
        observer = self.op_observer
        with np.errstate(**_FLOAT_RANGE):       # once per invoke, not per operator
            for k, p in enumerate(state.ops):
                if p.folded:
                    continue
                args = [None if i < 0 else values[i] for i in p.inputs]
                if tuple(None if a is None else a.shape for a in args) != p.in_shapes:
                    # An earlier operator produced a shape other than the declared one
                    # (LiteRT's Prepare resizes every output): prepare again with the
                    # shapes the operator actually gets.
                    p = state.ops[k] = self._prepare_op(state, p.index)
                try:
                    results = p.kernel.eval(p.params, *args)
                except MemoryError:
                    raise ResourceLimitError(
                        f"subgraphs[{state.index}].operators[{p.index}]: {p.name} ran out of memory "
                        f"for its working arrays (input shapes "
                        f"{[None if a is None else list(a.shape) for a in args]}); the model's tensors "
                        "are within the reader's memory budget, the machine's free memory is not "
                        "enough") from None
                if len(results) != len(p.outputs):
                    raise ModelFormatError(f"{p.name} produced {len(results)} outputs, the model "
                                           f"declares {len(p.outputs)}",
                                           f"subgraphs[{state.index}].operators[{p.index}]")
                for j, (t, r, declared) in enumerate(zip(p.outputs, results, p.out_dtypes)):
                    if t < 0:
                        continue
                    if r.dtype != declared:
                        # The operators reading t were prepared for the declared type.
                        raise ModelFormatError(
                            f"{p.name} computes {r.dtype} for tensor {t}, the model declares "
                            f"{state.sg.tensors[t].type_name}",
                            f"subgraphs[{state.index}].operators[{p.index}].outputs[{j}]")
                    shape = r.shape
                    if shape and max(shape) >= 2**31:  # empty, yet dims LiteRT cannot hold
                        raise InputError(f"subgraphs[{state.index}].operators[{p.index}]: {p.name} "
                                         f"computes shape {list(shape)}, beyond int32 dimensions")
                    values[t] = r
                    shapes[t] = shape
                if observer is not None:
                    observer(state.index, p, args, results)

    # -- signatures ----------------------------------------------------------------
    def get_signature_list(self) -> dict[str, dict[str, list[str]]]:
        return {s.signature_key: {"inputs": [m.name for m in s.inputs],
                                  "outputs": [m.name for m in s.outputs]}
                for s in self.model.signature_defs or []}

    def get_signature_runner(self, signature_key: str | None = None) -> "SignatureRunner":
        sigs = self.model.signature_defs or []
        if not sigs:
            raise InputError("the model has no signature defs")
        if signature_key is None:
            if len(sigs) != 1:
                raise InputError("the model has several signatures: name one of "
                                 f"{[s.signature_key for s in sigs]}")
            return SignatureRunner(self, sigs[0])
        for s in sigs:
            if s.signature_key == signature_key:
                return SignatureRunner(self, s)
        raise InputError(f"no signature {signature_key!r}; the model has "
                         f"{[s.signature_key for s in sigs]}")


class SignatureRunner:
    """Calls a signature with keyword arrays and returns ``{output name: array}``."""

    def __init__(self, interpreter: Interpreter, sig) -> None:
        self._it = interpreter
        self._sig = sig
        self._state = interpreter._states[sig.subgraph_index]

    def get_input_details(self) -> dict[str, dict]:
        return {m.name: self._it._details(self._state, m.tensor_index) for m in self._sig.inputs}

    def get_output_details(self) -> dict[str, dict]:
        return {m.name: self._it._details(self._state, m.tensor_index) for m in self._sig.outputs}

    def __call__(self, **kwargs: Any) -> dict[str, np.ndarray]:
        names = {m.name: m.tensor_index for m in self._sig.inputs}
        unknown = set(kwargs) - set(names)
        missing = set(names) - set(kwargs)
        if unknown or missing:
            raise InputError(f"signature {self._sig.signature_key!r} takes inputs {sorted(names)}; "
                             f"unknown: {sorted(unknown)}, missing: {sorted(missing)}")
        state = self._state
        for name, value in kwargs.items():
            i = names[name]
            value = _as_array(value, f"signature input {name!r}")
            if tuple(value.shape) != state.shapes[i]:
                state.shapes[i] = tuple(value.shape)
                state.allocated = False
            self._it.set_tensor(i, value, subgraph_index=self._sig.subgraph_index)
        self._it._run(state)
        return {m.name: np.array(state.values[m.tensor_index], copy=True) for m in self._sig.outputs}
