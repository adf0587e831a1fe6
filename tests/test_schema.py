"""Round trips through quantcore's reader and writer, checked against LiteRT.

For every fixture model (``tests/fixtures/models/*.tflite``):

* ``read_model -> write_model`` gives a file on which LiteRT computes exactly the
  same outputs and intermediate tensors as on the original, on the same seeded
  random inputs (``BUILTIN_REF``; ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` when the
  reference kernels refuse or abort on the original; the path used is recorded as
  the test property ``litert_path``);
* LiteRT sees the same tensors (name, shape, shape_signature, dtype, quantization,
  sparsity), signatures and constant values in both files;
* ``read -> write -> read`` gives an equal :class:`Model` and ``write`` is
  deterministic.

Models built with :class:`ModelBuilder` cover what the fixtures may not: every
tensor type as a constant (float16, packed int4, int16, int64, bool, string, ...),
sparsity, both builtin-options unions, custom options, and the writer's refusals.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from quantcore.errors import InputError, ModelFormatError
from quantcore.schema import (Buffer, Model, Operator, TensorType, read_model, save_model,
                              write_model)
from quantcore.schema import writer as writer_module
from quantcore.schema.builder import ModelBuilder

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "models"
FIXTURES = sorted(glob.glob(str(FIXTURE_DIR / "*.tflite")))
FIXTURE_PARAMS = ([pytest.param(p, id=Path(p).stem) for p in FIXTURES] or
                  [pytest.param(None, marks=pytest.mark.skip(reason="no fixture models in "
                                                             "tests/fixtures/models yet"))])


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def assert_same(a, b, path: str = "model") -> None:
    """Structural equality of models, dataclasses, dicts, lists, arrays and bytes.

    Arrays compare by dtype, shape and value (NaN equal to NaN); ``bytes`` and
    ``memoryview`` compare by content. The assertion message names the path.
    """
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict), f"{path}: dict vs {type(b).__name__}"
        assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)), f"{path}: list vs {type(b).__name__}"
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, (bytes, bytearray, memoryview)):
        assert isinstance(b, (bytes, bytearray, memoryview)), f"{path}: bytes vs {type(b).__name__}"
        assert bytes(a) == bytes(b), f"{path}: bytes differ"
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        equal_nan = a.dtype.kind in "fc"
        assert np.array_equal(a, b, equal_nan=equal_nan), f"{path}: values differ: {a} != {b}"
    elif isinstance(a, float) and isinstance(b, float) and np.isnan(a):
        assert np.isnan(b), f"{path}: nan != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def roundtrip(data: bytes) -> tuple[Model, bytes, Model]:
    """(read(data), write(read(data)), read(write(read(data))))."""
    m1 = read_model(data)
    out = write_model(m1)
    return m1, out, read_model(out)


def random_inputs(model: Model, seed: int) -> list[np.ndarray]:
    """Seeded inputs for subgraph 0: full-range integers, standard-normal floats."""
    rng = np.random.default_rng(seed)
    sg = model.subgraphs[0]
    arrays = []
    for i in sg.inputs:
        t = sg.tensors[i]
        shape = tuple(max(int(d), 1) if d >= 0 else 1 for d in t.shape)
        if t.type == TensorType.STRING:
            arrays.append(np.array([bytes(rng.integers(97, 123, 5, dtype=np.uint8))
                                    for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape))
            continue
        dt = t.dtype
        if dt.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dt))
        elif dt.kind == "b":
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        elif dt.kind in "iu":
            info = np.iinfo(dt)
            lo, hi = max(int(info.min), -128), min(int(info.max), 127)
            if t.qparams() is not None or dt.itemsize == 1:
                lo, hi = int(info.min), int(info.max)
            arrays.append(rng.integers(lo, hi, shape, endpoint=True).astype(dt))
        else:  # complex and others: real parts only
            arrays.append(rng.standard_normal(shape).astype(dt))
    return arrays


# Runs in a child process: LiteRT must never run in the test process (it can abort).
_DETAILS_SCRIPT = r"""
import os, pickle, sys
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
requests = pickle.load(sys.stdin.buffer)
replies = []
for model, constants in requests:
    try:
        it = Interpreter(model_content=model,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except Exception as e:
        replies.append({"error": f"{type(e).__name__}: {e}"})
        continue
    reply = {"details": it.get_tensor_details(), "signatures": it.get_signature_list(),
             "inputs": it.get_input_details(), "outputs": it.get_output_details(),
             "constants": {}}
    try:
        it.allocate_tensors()
        for i in constants:
            reply["constants"][i] = np.array(it.get_tensor(i))
    except Exception as e:
        reply["constants_error"] = f"{type(e).__name__}: {e}"
    replies.append(reply)
out.write(pickle.dumps(replies))
out.flush()
"""


def litert_view(models: list[bytes]) -> list[dict]:
    """What LiteRT reports about each model without running it: tensor, input and
    output details, signatures, and the values of constant tensors."""
    requests = []
    for data in models:
        m = read_model(data)
        consts = [i for i, t in enumerate(m.subgraphs[0].tensors)
                  if len(m.buffers[t.buffer]) > 0 and t.sparsity is None]
        requests.append((bytes(data), consts))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _DETAILS_SCRIPT], input=pickle.dumps(requests),
                          capture_output=True, timeout=300, env=env)
    assert proc.returncode == 0, f"LiteRT details process failed: {proc.stderr.decode()[-2000:]}"
    return pickle.loads(proc.stdout)


def assert_same_litert_view(a: dict, b: dict) -> None:
    assert "error" not in a, a.get("error")
    assert "error" not in b, b.get("error")
    keys = ("name", "index", "shape", "shape_signature", "dtype", "quantization",
            "quantization_parameters", "sparsity_parameters")
    assert len(a["details"]) == len(b["details"])
    for da, db in zip(a["details"], b["details"]):
        for k in keys:
            assert_same(da.get(k), db.get(k), f"tensor {da['index']} ({da['name']}).{k}")
    assert_same(a["signatures"], b["signatures"], "signatures")
    for kind in ("inputs", "outputs"):
        assert_same([d["index"] for d in a[kind]], [d["index"] for d in b[kind]], kind)
    assert_same(a["constants"], b["constants"], "constants")


# ---------------------------------------------------------------------------
# Fixture models
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_fixture_roundtrip_model_equal(path):
    data = Path(path).read_bytes()
    m1, out, m2 = roundtrip(data)
    assert_same(m1, m2)
    # The writer is deterministic, and its own output is a fixed point.
    assert write_model(m2) == out
    # Metadata, signatures, description and version survive.
    assert m2.metadata_dict() == m1.metadata_dict()
    if m1.metadata:
        assert "min_runtime_version" in m2.metadata_dict()
    assert_same(m1.signature_defs, m2.signature_defs, "signature_defs")
    assert (m2.description, m2.version) == (m1.description, m1.version)


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_fixture_roundtrip_litert_outputs(path, oracle, record_property):
    data = Path(path).read_bytes()
    model = read_model(data)
    rewritten = write_model(model)
    inputs = random_inputs(model, zlib.crc32(Path(path).name.encode()))
    numerics = "reference"
    ref = oracle.run(data, inputs, numerics)
    if not ref.ok:
        numerics = "optimized"
        ref = oracle.run(data, inputs, numerics)
    record_property("litert_path", numerics)
    print(f"{Path(path).name}: LiteRT path {numerics}")
    new = oracle.run(rewritten, inputs, numerics)
    if not ref.ok:
        # LiteRT refuses the original on both paths: the rewrite must fail alike.
        assert not new.ok and new.aborted == ref.aborted, (ref.error, new.error)
        pytest.skip(f"LiteRT cannot run the original: {ref.error}")
    assert new.ok, new.error
    assert len(new.outputs) == len(ref.outputs)
    for i, (x, y) in enumerate(zip(ref.outputs, new.outputs)):
        assert_same(x, y, f"output {i}")
    # Every tensor of the model; the ones LiteRT adds after them are kernel scratch
    # buffers (im2col, hybrid-quantization temporaries) holding uninitialized memory.
    n = len(model.subgraphs[0].tensors)
    model_tensors = sorted(i for i in ref.tensors if i < n)
    assert model_tensors == sorted(i for i in new.tensors if i < n)
    for i in model_tensors:
        assert_same(ref.tensors[i], new.tensors[i], f"tensor {i} ({model.subgraphs[0].tensors[i].name})")


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_fixture_roundtrip_litert_details(path):
    data = Path(path).read_bytes()
    a, b = litert_view([data, write_model(read_model(data))])
    assert_same_litert_view(a, b)


# ---------------------------------------------------------------------------
# Models built here
# ---------------------------------------------------------------------------
def _pack_int4(values: np.ndarray) -> bytes:
    nib = (values.astype(np.int8) & 0xF).astype(np.uint8).reshape(-1)
    if len(nib) % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()


TYPED_CONSTANTS = {
    "float32": np.array([[1.5, -0.0], [np.inf, 3.25]], np.float32),
    "float16": np.array([1.5, -2.25, 65504, 6e-8], np.float16),
    "float64": np.array([1e300, -1e-300], np.float64),
    "int8": np.array([-128, 0, 127], np.int8),
    "uint8": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "int16": np.array([-32768, 7, 32767], np.int16),
    "uint16": np.array([0, 65535], np.uint16),
    "int32": np.array([-2**31, 2**31 - 1], np.int32),
    "uint32": np.array([0, 2**32 - 1], np.uint32),
    "int64": np.array([[-2**63, 5], [2**63 - 1, 0]], np.int64),
    "uint64": np.array([2**64 - 1], np.uint64),
    "bool": np.array([True, False, True]),
    "complex64": np.array([1 + 2j, -3.5j], np.complex64),
    "string": np.array([b"hello", b"", b"w\x00rld", "\u00e9t\u00e9".encode()], dtype=object),
}
INT4_VALUES = np.array([-8, 7, 0, -1, 3], np.int8)  # odd count: the last byte is half used


def typed_constants_model() -> bytes:
    b = ModelBuilder("every tensor type")
    x = b.add_input("x", [2], np.float32)
    y = b.add_tensor("y", [2], np.float32)
    b.add_operator("RELU", [x], [y])
    b.mark_outputs(y)
    for name, value in TYPED_CONSTANTS.items():
        b.add_constant(name, value)
    buf = b.add_buffer(_pack_int4(INT4_VALUES))
    b.add_tensor("int4", INT4_VALUES.shape, np.int8, buffer=buf, tensor_type=int(TensorType.INT4))
    b.add_signature()
    b.add_metadata("min_runtime_version", b"1.14.0\0\0\0\0\0\0\0\0\0\0")
    return b.to_bytes()


def test_every_tensor_type_survives():
    data = typed_constants_model()
    m1, out, m2 = roundtrip(data)
    assert_same(m1, m2)
    assert out == data  # our own output is a fixed point of read -> write
    sg = m2.subgraphs[0]
    by_name = {t.name: i for i, t in enumerate(sg.tensors)}
    for name, value in TYPED_CONSTANTS.items():
        got = m2.tensor_data(0, by_name[name])
        assert got.shape == value.shape
        if name == "string":
            assert list(got.reshape(-1)) == list(value.reshape(-1))
        else:
            assert got.dtype == value.dtype, name
            np.testing.assert_array_equal(got, value)
    t4 = sg.tensors[by_name["int4"]]
    assert t4.type == TensorType.INT4 and len(m2.buffers[t4.buffer]) == 3
    np.testing.assert_array_equal(m2.tensor_data(0, by_name["int4"]), INT4_VALUES)
    assert m2.metadata_dict()["min_runtime_version"].startswith(b"1.14.0")
    assert m2.signature_defs[0].signature_key == "serving_default"


def test_every_tensor_type_matches_litert():
    """LiteRT reads the same constants (int4 unpacked, strings split) from the rewrite."""
    data = typed_constants_model()
    original, rewritten = litert_view([data, write_model(read_model(data))])
    assert_same_litert_view(original, rewritten)
    m = read_model(data)
    assert "constants_error" not in original, original.get("constants_error")
    for i, value in original["constants"].items():
        ours = m.tensor_data(0, i)
        if m.subgraphs[0].tensors[i].type == TensorType.STRING:
            assert [bytes(v) for v in value.reshape(-1)] == list(ours.reshape(-1))
        else:
            assert_same(np.asarray(ours), value, f"constant {m.subgraphs[0].tensors[i].name}")


def sparse_model() -> bytes:
    """A 4x4 int8 constant in CSR form (dense rows, sparse columns)."""
    dense = np.array([[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0], [0, 0, 4, 5]], np.int8)
    rows, cols = np.nonzero(dense)
    segments = np.searchsorted(rows, np.arange(5)).astype(np.int32)
    b = ModelBuilder("sparse")
    x = b.add_input("x", [1, 4], np.float32)
    y = b.add_tensor("y", [1, 4], np.float32)
    b.add_operator("RELU", [x], [y])
    b.mark_outputs(y)
    buf = b.add_buffer(dense[rows, cols].tobytes())
    t = b.add_tensor("sparse_w", [4, 4], np.int8, buffer=buf, scale=0.5, zero_point=0)
    b.model.subgraphs[0].tensors[t].sparsity = {
        "traversal_order": np.array([0, 1], np.int32), "block_map": None,
        "dim_metadata": [
            {"format": 0, "dense_size": 4, "array_segments_type": 0, "array_segments": None,
             "array_indices_type": 0, "array_indices": None},
            {"format": 1, "dense_size": 0,
             "array_segments_type": 1, "array_segments": {"values": segments},
             "array_indices_type": 2, "array_indices": {"values": cols.astype(np.uint16)}},
        ]}
    return b.to_bytes()


def test_sparsity_survives():
    data = sparse_model()
    m1, out, m2 = roundtrip(data)
    assert_same(m1, m2)
    sp = m2.subgraphs[0].tensors[2].sparsity
    assert sp["dim_metadata"][1]["array_indices_type"] == 2
    np.testing.assert_array_equal(sp["dim_metadata"][1]["array_indices"]["values"], [0, 3, 1, 2, 3])
    np.testing.assert_array_equal(sp["dim_metadata"][1]["array_segments"]["values"], [0, 2, 2, 3, 5])
    original, rewritten = litert_view([data, out])
    assert_same_litert_view(original, rewritten)
    sparse = original["details"][2]["sparsity_parameters"]
    assert list(sparse["traversal_order"]) == [0, 1]


def test_builtin_options_of_both_unions_and_custom_options_survive():
    b = ModelBuilder("options")
    x = b.add_input("x", [1, 4, 4, 2], np.float32)
    w = b.add_constant("w", np.ones((3, 1, 1, 2), np.float32))
    y = b.add_tensor("y", [1, 2, 2, 3], np.float32)
    b.add_operator("CONV_2D", [x, w, -1], [y], padding="VALID", stride_w=2, stride_h=2,
                   fused_activation_function="RELU6", dilation_w_factor=1)
    z = b.add_tensor("z", [1, 2, 2, 6], np.float32)
    op = b.add_operator("STABLEHLO_CONCATENATE", [y, y], [z])
    from quantcore.schema import _schema_desc as desc
    b.model.subgraphs[0].operators[op].builtin_options_2_type = \
        desc.UNIONS["BuiltinOptions2"].index("StablehloConcatenateOptions")
    b.model.subgraphs[0].operators[op].builtin_options_2 = {"dimension": 3}
    c = b.add_tensor("c", [1, 2, 2, 6], np.float32)
    b.model.subgraphs[0].operators.append(Operator(
        opcode_index=b.opcode("CUSTOM", custom_code="MyOp"), inputs=[z], outputs=[c],
        custom_options=b"\x00\x01\xfe\xffflexbuffer-ish", custom_options_format=0))
    b.mark_outputs(c)
    m1, out, m2 = roundtrip(b.to_bytes())
    assert_same(m1, m2)
    ops = m2.subgraphs[0].operators
    assert m2.op_name(ops[0]) == "CONV_2D"
    assert ops[0].options["stride_w"] == 2 and ops[0].options["padding"] == 1
    assert ops[0].options["fused_activation_function"] == 3
    assert ops[0].inputs == [x, w, -1]
    assert ops[1].builtin_options_2 == {"dimension": 3}
    assert ops[1].options["dimension"] == 3
    assert m2.op_name(ops[2]) == "CUSTOM(MyOp)"
    assert bytes(ops[2].custom_options) == b"\x00\x01\xfe\xffflexbuffer-ish"


def test_quantization_and_shape_signature_survive():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.int8, scale=0.25, zero_point=-3, shape_signature=[-1, 4])
    w_scales = np.array([0.1, 0.2, 0.3], np.float32)
    w = b.add_constant("w", np.arange(12, dtype=np.int8).reshape(3, 4), scale=w_scales,
                       zero_point=0, quantized_dimension=0)
    bias = b.add_constant("b", np.array([1, -2, 3], np.int32), scale=0.25 * w_scales, zero_point=0)
    y = b.add_tensor("y", [1, 3], np.int8, scale=0.5, zero_point=7, shape_signature=[-1, 3])
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    data = b.to_bytes()
    m1, out, m2 = roundtrip(data)
    assert_same(m1, m2)
    q = m2.subgraphs[0].tensors[w].quantization
    np.testing.assert_array_equal(q.scale, w_scales)
    assert q.zero_point.dtype == np.int64 and q.quantized_dimension == 0
    assert m2.subgraphs[0].tensors[x].shape_signature == [-1, 4]
    original, rewritten = litert_view([data, out])
    assert_same_litert_view(original, rewritten)


# ---------------------------------------------------------------------------
# Refusals and atomic saving
# ---------------------------------------------------------------------------
class _HugeData:
    """Stands in for a buffer's bytes: reports 3 GiB without allocating them."""

    def __len__(self) -> int:
        return 3 * 2**30


def test_write_refuses_models_over_2gib():
    m = read_model(typed_constants_model())
    m.buffers.append(Buffer(data=_HugeData()))
    with pytest.raises(ModelFormatError, match="2 GiB"):
        write_model(m)


def test_write_refuses_non_bytes_data():
    m = read_model(typed_constants_model())
    m.buffers[1] = Buffer(data=[1, 2, 3])
    with pytest.raises(ModelFormatError, match=r"buffers\[1\]"):
        write_model(m)


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".quantcore-")]


def test_save_model_writes_and_replaces(tmp_path):
    target = tmp_path / "m.tflite"
    data = typed_constants_model()
    save_model(read_model(data), target)
    assert target.read_bytes() == data
    save_model(b"second", target)  # ready bytes are written as they are
    assert target.read_bytes() == b"second"
    assert _leftovers(tmp_path) == []


class _FailingFile:
    """A file object that writes half of what it is given, then fails (disk full)."""

    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def write(self, data):
        self.fh.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("existing", [False, True])
def test_save_model_is_atomic_when_the_write_fails(tmp_path, monkeypatch, existing):
    target = tmp_path / "m.tflite"
    if existing:
        target.write_bytes(b"previous contents")
    real_fdopen = os.fdopen
    monkeypatch.setattr(writer_module.os, "fdopen", lambda fd, mode: _FailingFile(real_fdopen(fd, mode)))
    with pytest.raises(InputError, match="No space left"):
        save_model(read_model(typed_constants_model()), target)
    assert _leftovers(tmp_path) == []
    if existing:
        assert target.read_bytes() == b"previous contents"
    else:
        assert not target.exists()


def test_save_model_is_atomic_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"previous contents")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(b"new contents", target)
    assert target.read_bytes() == b"previous contents"
    assert _leftovers(tmp_path) == []


def test_save_model_missing_directory_is_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot write"):
        save_model(b"x", tmp_path / "no" / "such" / "dir" / "m.tflite")


def test_save_model_read_only_directory_is_input_error(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:
            probe.write_bytes(b"")  # root ignores permissions: simulate the refusal
            probe.unlink()

            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(writer_module.tempfile, "mkstemp", refuse)
        except PermissionError:
            pass
        with pytest.raises(InputError, match="Permission denied"):
            save_model(b"x", ro / "m.tflite")
        assert not (ro / "m.tflite").exists()
    finally:
        ro.chmod(0o755)


def test_read_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read model file"):
        read_model(tmp_path / "absent.tflite")
