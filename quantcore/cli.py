"""The ``quantcore`` command line.

``quantcore <command> [options]``; each command is one entry of :data:`_commands`:
a name, a one-line help, a function adding its arguments to an ``argparse``
subparser and a function running it that returns the exit code. Adding a command
(run, compare, quantize, debug, explain) is adding one :class:`Command`.

Exit codes: 0 success, 1 the command ran and reports a negative result (for
example a comparison that found differences), 2 bad usage or bad input, 70 an
internal error (a bug in quantcore: please report it), 130 interrupted. Any
:class:`~quantcore.errors.QuantcoreError` (a malformed model, a missing file, an
unsupported operator) prints one line, ``quantcore: error: <message>``, on stderr
and exits with 2; ``--debug`` adds the traceback (and shows Python warnings, which
are otherwise silenced so that stderr holds only that line). Output files are
written atomically: an error or an interrupt leaves no partial file.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from dataclasses import dataclass
from typing import Callable

from quantcore import __version__
from quantcore.errors import ModelFormatError, QuantcoreError

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 70   # EX_SOFTWARE


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------
def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output (every per-channel value in full)")
    p.add_argument("--no-validate", action="store_true",
                   help="show a model that decodes but fails the consistency checks")
    p.add_argument("--compression", action="store_true",
                   help="per weight tensor sparsity, distinct values, entropy (bits/weight), and "
                        "the model's size raw and gzip-compressed")


def _inspect_run(args: argparse.Namespace) -> int:
    from quantcore.inspect import format_text, inspect_model

    if args.compression:
        return _inspect_compression(args)
    try:
        info = inspect_model(args.model, validate=not args.no_validate)
    except ModelFormatError as e:
        raise ModelFormatError(f"{args.model}: {e}") from e
    if args.json:
        sys.stdout.write(json.dumps(info, indent=1) + "\n")
    else:
        sys.stdout.write(format_text(info))
    return EXIT_OK


def _inspect_compression(args: argparse.Namespace) -> int:
    from quantcore.compress import compression_stats, format_stats

    try:
        stats = compression_stats(args.model)
    except OSError as e:
        raise ModelFormatError(f"cannot read model file {args.model!r}: {e.strerror}") from e
    except ModelFormatError as e:
        raise ModelFormatError(f"{args.model}: {e}") from e
    sys.stdout.write(json.dumps(stats, indent=1) + "\n" if args.json else format_stats(stats))
    return EXIT_OK


# ---------------------------------------------------------------------------
# prune, cluster
# ---------------------------------------------------------------------------
def _compress_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=".tflite model (float or quantized)")
    p.add_argument("-o", "--output", required=True, help=".tflite to write")
    p.add_argument("--ops", default=None,
                   help="comma-separated operators whose weights to change (default: CONV_2D, "
                        "DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV)")


def _prune_arguments(p: argparse.ArgumentParser) -> None:
    _compress_common(p)
    p.add_argument("--sparsity", type=float, default=0.5, help="fraction of weights set to zero (0.5)")
    p.add_argument("--block", default="1x1", help="prune blocks of ROWSxCOLS weights, e.g. 1x4 (1x1)")
    p.add_argument("--sparse-format", action="store_true",
                   help="store pruned weights in TFLite's sparse format (DENSIFY where needed)")


def _compress_report(before: bytes, after: bytes, output: str) -> None:
    from quantcore.compress import compression_stats

    a, b = compression_stats(before)["model"], compression_stats(after)["model"]
    print(f"wrote {output}: {b['size_bytes']:,} bytes ({b['gzip_bytes']:,} gzip-compressed; "
          f"was {a['size_bytes']:,} / {a['gzip_bytes']:,}), weights {b['weight_sparsity']:.1%} zeros")


def _read_model_file(path: str, **kwargs):
    """``read_model(path)`` with the file named in the error: ``model.tflite: <what and
    where>``."""
    return _read_model_and_bytes(path, **kwargs)[0]


def _read_model_and_bytes(path: str, **kwargs):
    """(model, file bytes), the file read once; reader errors name the file."""
    from quantcore.schema import read_model

    data = _read_input(path)
    try:
        return read_model(data, **kwargs), data
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from e


def _read_input(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ModelFormatError(f"cannot read model file {path!r}: {e.strerror}") from e


def _prune_run(args: argparse.Namespace) -> int:
    from quantcore.compress import prune
    from quantcore.schema import atomic_write

    data = _read_input(args.model)
    out = prune(data, sparsity=args.sparsity, block=args.block,
                ops=args.ops.split(",") if args.ops else None, sparse_format=args.sparse_format)
    atomic_write(args.output, out)
    _compress_report(data, out, args.output)
    return EXIT_OK


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    _compress_common(p)
    p.add_argument("--clusters", type=int, default=16, help="distinct values per weight tensor (16)")
    p.add_argument("--per-channel", action="store_true", help="cluster each output channel separately")
    p.add_argument("--seed", type=int, default=1234, help="k-means++ seed (1234)")


def _cluster_run(args: argparse.Namespace) -> int:
    from quantcore.compress import cluster
    from quantcore.schema import atomic_write

    data = _read_input(args.model)
    out = cluster(data, clusters=args.clusters, per_channel=args.per_channel,
                  ops=args.ops.split(",") if args.ops else None, seed=args.seed)
    atomic_write(args.output, out)
    _compress_report(data, out, args.output)
    return EXIT_OK


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------
def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--inputs", help=".npy (one input) or .npz (by input name); default: seeded random")
    p.add_argument("-o", "--output", help="write the outputs to this .npz (by output name)")
    p.add_argument("--numerics", default="reference", choices=["reference", "optimized", "xnnpack", "micro"])
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")


def _run_run(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from quantcore.compare import default_inputs, load_inputs
    from quantcore.runtime import Interpreter
    from quantcore.schema import atomic_write

    model = _read_model_file(args.model)
    inputs = load_inputs(args.inputs, model) if args.inputs else default_inputs(model, args.seed)
    it = Interpreter(model=model, numerics=args.numerics)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    outputs = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
    for name, value in outputs.items():
        flat = value.reshape(-1)
        head = ", ".join(f"{v:g}" if value.dtype.kind == "f" else str(v) for v in flat[:8])
        print(f"{name}: {value.dtype} {list(value.shape)} [{head}{', ...' if flat.size > 8 else ''}]")
    if args.output:
        buf = io.BytesIO()
        np.savez(buf, **outputs)
        atomic_write(args.output, buf.getvalue())
        print(f"wrote {args.output}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# quantize
# ---------------------------------------------------------------------------
def _quantize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="float .tflite model")
    p.add_argument("-o", "--output", required=True, help="quantized .tflite to write")
    p.add_argument("--data", help="calibration data: .npy, .npz or a directory of .npy files or images")
    p.add_argument("--mode", default="int8", choices=["int8", "int16x8", "dynamic", "float16", "uint8"])
    p.add_argument("--io", default="float32", choices=["float32", "int8", "uint8", "int16"],
                   help="type of the model's inputs and outputs (default float32)")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weights")
    p.add_argument("--calibrator", default="minmax", help="minmax, moving_average, percentile, mse, entropy")
    p.add_argument("--denylist", default="", help="comma-separated op types, tensor names or op indices "
                   "to keep in float")
    p.add_argument("--default-ranges", nargs=2, type=float, metavar=("MIN", "MAX"),
                   help="range for activations without statistics (dummy quantization)")
    p.add_argument("--workers", default=None, metavar="N|ray|ray://ADDRESS",
                   help="calibrate in N local processes, or on Ray: 'ray' uses the cluster in "
                        "RAY_ADDRESS or starts a local one, 'ray://ADDRESS' connects to that cluster "
                        "(same result as one process; Ray: pip install 'quantcore[ray]')")
    p.add_argument("--dynamic-min-elements", type=int, default=1024, metavar="N",
                   help="dynamic mode: weights with fewer elements stay float (default 1024, as the "
                        "TensorFlow converter)")


def _quantize_run(args: argparse.Namespace) -> int:
    import numpy as np

    from quantcore.datasets import representative_dataset
    from quantcore.quantizer import QuantizationReport, quantize
    from quantcore.schema import atomic_write

    from quantcore.distributed import RayOptions, import_ray, parse_workers

    workers = parse_workers(args.workers)
    if isinstance(workers, RayOptions):
        import_ray()                      # before reading anything: say how to install Ray
    model = _read_model_file(args.model)
    if args.data and (isinstance(workers, RayOptions) or _is_glob(args.data)):
        dataset = args.data               # a path: Ray tasks read their own shards
    else:
        dataset = representative_dataset(args.data, model) if args.data else None
    report = QuantizationReport([])
    io_type = np.dtype(args.io)
    data = quantize(model, representative_dataset=dataset, mode=args.mode, per_channel=not args.per_tensor,
                    inference_input_type=io_type, inference_output_type=io_type,
                    calibrator=args.calibrator,
                    denylist=[d for d in args.denylist.split(",") if d],
                    default_ranges=tuple(args.default_ranges) if args.default_ranges else None,
                    report=report, workers=workers, dynamic_min_elements=args.dynamic_min_elements)
    atomic_write(args.output, data)
    print(f"wrote {args.output} ({len(data)} bytes, mode {args.mode}, I/O {args.io})")
    for o, name, reason in report.float_ops:
        print(f"  kept in float: operator {o} {name} ({reason})")
    for note in report.notes:
        print(f"  {note}")
    return EXIT_OK


def _is_glob(path: str) -> bool:
    import os

    return not os.path.exists(path) and any(c in path for c in "*?[")


# ---------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------
def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--inputs", help=".npy or .npz; default: seeded random full-range inputs")
    p.add_argument("--numerics", default="reference",
                   choices=["reference", "optimized", "xnnpack", "micro", "all"],
                   help="LiteRT path to compare with: reference (BUILTIN_REF), optimized "
                        "(BUILTIN_WITHOUT_DEFAULT_DELEGATES), xnnpack (BUILTIN); micro: TFLite "
                        "Micro (pip install 'quantcore[micro]'); or all: the three LiteRT paths "
                        "side by side, plus TFLite Micro when tflite-micro is installed, naming "
                        "the path that explains each difference")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the table as JSON")
    p.add_argument("--seed", type=int, default=0)
    _model_explorer_arguments(p, "per operator: differing elements and max LSB difference; with "
                              "--numerics all: which LiteRT path disagrees")
    _view_flag(p)


def _compare_run(args: argparse.Namespace) -> int:
    from quantcore.compare import compare, compare_all, load_inputs, write_json

    if args.view:
        _require_view()
    model, data = _read_model_and_bytes(args.model)
    inputs = load_inputs(args.inputs, model) if args.inputs else None
    if args.numerics == "all":
        result = compare_all(data, inputs, seed=args.seed)
    else:
        result = compare(data, inputs, numerics=args.numerics, seed=args.seed)
    print(result.format())
    if args.json_out:
        write_json(result, args.json_out)
    if args.model_explorer or args.view:
        from quantcore.overlays import compare_all_overlays, compare_overlays

        overlays = (compare_all_overlays if args.numerics == "all" else compare_overlays)(model, result)
        _overlays_out(args, args.model, model, overlays)
    return result.exit_code


# ---------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------
def _explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--tensor", required=True, help="output tensor name or index")
    p.add_argument("--at", required=True, help="element index, comma-separated (e.g. 0,3,4,7)")
    p.add_argument("--inputs", help=".npy or .npz; default: seeded random inputs")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the steps as JSON")
    p.add_argument("--seed", type=int, default=0)


def _explain_run(args: argparse.Namespace) -> int:
    from quantcore.compare import load_inputs
    from quantcore.errors import InputError
    from quantcore.explain import explain
    from quantcore.schema import atomic_write

    model = _read_model_file(args.model)
    try:
        at = tuple(int(v) for v in args.at.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise InputError(f"--at must be comma-separated integers, not {args.at!r}") from None
    tensor = int(args.tensor) if args.tensor.isdigit() and not any(
        t.name == args.tensor for t in model.subgraphs[0].tensors) else args.tensor
    inputs = load_inputs(args.inputs, model) if args.inputs else None
    result = explain(model, tensor, at, inputs=inputs, seed=args.seed)
    print(result.format())
    if args.json_out:
        atomic_write(args.json_out, json.dumps(result.to_json(), indent=1).encode())
    return EXIT_OK


# ---------------------------------------------------------------------------
# debug
# ---------------------------------------------------------------------------
def _debug_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("float_model", help="the float .tflite model")
    p.add_argument("quant_model", help="its quantized .tflite model")
    p.add_argument("--data", required=True,
                   help="input samples: .npy, .npz or a directory of .npy files or images")
    p.add_argument("--json", dest="json_out", metavar="OUT",
                   help="also write every row and the suggestion as JSON")
    p.add_argument("--plot", metavar="OUT.png",
                   help="per-layer SQNR chart and histograms of the worst layers (needs quantcore[plot])")
    p.add_argument("--selective", action="store_true",
                   help="re-quantize with each suggested layer kept in float and report the output SQNR")
    p.add_argument("--top", type=int, default=0, metavar="N", help="show only the N worst rows (default all)")
    p.add_argument("--sort", default="local", choices=["local", "sqnr", "rmse", "op"],
                   help="local: SQNR this layer adds by itself (default); sqnr: whole-model SQNR; "
                        "rmse: error in LSB; op: execution order")
    p.add_argument("--margin", type=float, default=10.0, metavar="DB",
                   help="suggest layers whose local SQNR is more than DB below the median (default 10)")
    p.add_argument("--max-samples", type=int, metavar="N", help="use at most N samples")
    p.add_argument("--html", metavar="OUT.html",
                   help="also write a self-contained HTML report: the per-layer table worst first, the "
                        "suggested denylist, and the plots when matplotlib is installed")
    _model_explorer_arguments(p, "per operator of the quantized model: local SQNR, SQNR, MSE, RMS error "
                              "in LSB, suggested denylist")
    _view_flag(p)


def _debug_run(args: argparse.Namespace) -> int:
    from quantcore.debug import _matplotlib, debug, plot, write_json
    from quantcore.errors import InputError

    if args.top < 0:
        raise InputError(f"--top must be >= 0, not {args.top}")
    if args.plot:
        _matplotlib()  # fail before the work when matplotlib is missing
    if args.view:
        _require_view()
    result = debug(args.float_model, args.quant_model, args.data, max_samples=args.max_samples,
                   sort=args.sort, margin_db=args.margin, selective=args.selective)
    print(result.format(top=args.top, float_model=args.float_model, data=args.data))
    if args.json_out:
        write_json(result, args.json_out)
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    if args.html:
        from quantcore.report_html import write_debug_html

        write_debug_html(result, args.html, float_model=args.float_model, quant_model=args.quant_model,
                         data=args.data)
        print(f"wrote {args.html}")
    if args.model_explorer or args.view:
        from quantcore.overlays import debug_overlays

        model = _read_model_file(args.quant_model)
        _overlays_out(args, args.quant_model, model, debug_overlays(model, result))
    return EXIT_OK


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------
def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="small_cnn_int8.tflite",
                   help="where to write the quantized example (default ./small_cnn_int8.tflite)")


def _demo_run(args: argparse.Namespace) -> int:
    """Quantize the bundled float model, then compare it with LiteRT tensor by tensor."""
    from importlib import resources

    import numpy as np

    from quantcore.compare import compare
    from quantcore.quantizer import quantize
    from quantcore.runtime import Interpreter
    from quantcore.schema import atomic_write

    base = resources.files("quantcore") / "examples"
    float_model = (base / "small_cnn_float32.tflite").read_bytes()
    with resources.as_file(base / "small_cnn_calib.npy") as path:
        calib = np.load(path)
    print(f"1. quantize the bundled float model (small_cnn_float32.tflite) to int8 with "
          f"{len(calib)} calibration samples")
    q = quantize(float_model, representative_dataset=lambda: ([x[None]] for x in calib))
    atomic_write(args.output, q)
    print(f"   wrote {args.output} ({len(q)} bytes)")
    f_it, q_it = Interpreter(model_content=float_model), Interpreter(model_content=q)
    f_it.allocate_tensors()
    q_it.allocate_tensors()
    err, sig = 0.0, 0.0
    for x in calib:
        outs = []
        for it in (f_it, q_it):
            it.set_tensor(it.get_input_details()[0]["index"], x[None])
            it.invoke()
            outs.append(it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float64))
        sig += float(np.sum(outs[0] ** 2))
        err += float(np.sum((outs[0] - outs[1]) ** 2))
    sqnr = 10 * np.log10(sig / err) if err > 0 else float("inf")
    print(f"2. output SQNR of the int8 model against the float model: {sqnr:.1f} dB")
    print("3. run it in quantcore and in LiteRT (BUILTIN_REF, in a child process) and compare "
          "every tensor:\n")
    result = compare(q, [calib[:1]], numerics="reference")
    print(result.format())
    return result.exit_code


_commands: list[Command] = [
    Command("demo", "quantize the bundled example and check it against LiteRT", _demo_arguments, _demo_run),
    Command("inspect", "show the operators, tensors, quantization and signatures of a model",
            _inspect_arguments, _inspect_run),
    Command("quantize", "quantize a float .tflite model (int8, int16x8, dynamic, float16, uint8)",
            _quantize_arguments, _quantize_run),
    Command("prune", "zero the smallest weights (magnitude pruning), optionally in TFLite's sparse format",
            _prune_arguments, _prune_run),
    Command("cluster", "cluster each weight tensor to at most N distinct values (k-means)",
            _cluster_arguments, _cluster_run),
    Command("run", "run a model in quantcore's runtime", _run_arguments, _run_run),
    Command("compare", "compare every tensor of quantcore and LiteRT on the same inputs",
            _compare_arguments, _compare_run),
    Command("explain", "show the integer arithmetic of one output element", _explain_arguments,
            _explain_run),
    Command("debug", "per-layer quantization error of a quantized model against its float model",
            _debug_arguments, _debug_run),
]


# ---------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------
def _diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", help="the reference .tflite model")
    p.add_argument("new", help="the .tflite model to compare with it")
    p.add_argument("--inputs", help=".npy or .npz for either model (converted through the input "
                   "quantization for the other); default: seeded random over the input range")
    p.add_argument("--numerics", default="reference", choices=["reference", "optimized", "xnnpack", "micro"],
                   help="quantcore numerics path both models run in (default reference)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the result as JSON")
    p.add_argument("--tolerance", type=int, default=0, metavar="LSB",
                   help="outputs differing by at most this many LSB count as identical (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--no-run", action="store_true", help="compare graph and tensors only")
    _model_explorer_arguments(p, "per operator of NEW: what changed (added, op, weights, quantization, "
                              "output) and the max LSB difference; OUT.old.json: the same for OLD")


def _diff_run(args: argparse.Namespace) -> int:
    from quantcore.diff import diff, write_json

    result = diff(args.old, args.new, inputs=args.inputs, numerics=args.numerics,
                  tolerance=args.tolerance, seed=args.seed, run=not args.no_run)
    print(result.format())
    if args.json_out:
        write_json(result, args.json_out)
    if args.model_explorer:
        from quantcore.overlays import diff_overlays, write_diff_overlays

        old, new = _read_model_file(args.old), _read_model_file(args.new)
        paths = write_diff_overlays(diff_overlays(old, new, result), old, new, args.model_explorer)
        print(f"wrote {', '.join(paths)}")
        print(f"view: quantcore view {_quote(args.new)} --overlay {' '.join(_quote(p) for p in paths[:-1])}")
        print(f"      quantcore view {_quote(args.old)} --overlay {_quote(paths[-1])}")
    return result.exit_code


# ---------------------------------------------------------------------------
# baseline
# ---------------------------------------------------------------------------
def _numerics_list(text: str) -> list[str]:
    from quantcore.errors import InputError

    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("reference", "optimized", "xnnpack", "micro")]
    if bad or not modes:
        raise InputError(f"--numerics takes a comma-separated list of reference, optimized, xnnpack, "
                         f"micro; not {text!r}")
    return modes


def _baseline_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="baseline_command", metavar="{record,check}")
    sub.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    r = sub.add_parser("record", parents=[common], help="record models' parameters and outputs",
                       description="Store per model its sha256, quantization parameters and quantcore's "
                                   "outputs (DIR/<model>.json + DIR/<model>.npz, written atomically).")
    r.add_argument("models", nargs="+", metavar="MODEL", help=".tflite files (named by file stem)")
    r.add_argument("--inputs", help=".npy or .npz (by input name); float arrays are quantized for "
                   "integer inputs; default: seeded random over the input range")
    r.add_argument("-o", "--output", required=True, metavar="DIR", help="baseline directory")
    r.add_argument("--numerics", default="reference", help="comma-separated numerics modes "
                   "(default reference), e.g. reference,optimized")
    r.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check", parents=[common], help="re-run recorded models and report what changed",
                       description="Re-run every recorded model and compare graph, quantization and "
                                   "outputs with the baseline. Exit 0 all match, 1 some changed, 2 error.")
    c.add_argument("directory", metavar="DIR", help="baseline directory")
    c.add_argument("--models", nargs="+", metavar="MODEL", help="baseline names, or model paths "
                   "(checked in place of the recorded file of the same name)")
    c.add_argument("--junit", metavar="OUT.xml", help="write JUnit XML (one testcase per model x numerics)")
    c.add_argument("--json", dest="json_out", metavar="OUT", help="also write the result as JSON")
    c.add_argument("--tolerance", type=int, default=0, metavar="LSB",
                   help="outputs within this many LSB of the recorded ones pass (default 0)")
    c.add_argument("--numerics", help="check only these comma-separated modes (default: all recorded)")
    c.add_argument("--workers", default=None, metavar="N|ray|ray://ADDRESS",
                   help="check in N local processes or on Ray, one task per model x numerics mode "
                        "(same report as one process)")


def _baseline_run(args: argparse.Namespace) -> int:
    from quantcore import baseline
    from quantcore.schema import atomic_write

    if args.baseline_command == "record":
        for r in baseline.record(args.models, args.output, inputs=args.inputs,
                                 numerics=_numerics_list(args.numerics), seed=args.seed):
            print(r.format())
        return EXIT_OK
    from quantcore.distributed import RayOptions, import_ray, parse_workers

    workers = parse_workers(args.workers)
    if isinstance(workers, RayOptions):
        import_ray()
    result = baseline.check(args.directory, args.models, tolerance=args.tolerance,
                            numerics=_numerics_list(args.numerics) if args.numerics else None,
                            workers=workers)
    print(result.format())
    if args.junit:
        baseline.write_junit(result, args.junit)
    if args.json_out:
        atomic_write(args.json_out, json.dumps(result.to_json(), indent=1).encode())
    return result.exit_code


_commands += [
    Command("diff", "what changed between two models: graph, tensors, quantization and outputs",
            _diff_arguments, _diff_run),
    Command("baseline", "record golden baselines of models, or check models against them (CI)",
            _baseline_arguments, _baseline_run),
]


# ---------------------------------------------------------------------------
# micro
# ---------------------------------------------------------------------------
def _micro_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output: ops, unsupported, resolver, arena, flash_bytes, "
                        "peak_op, timeline, buffers")
    p.add_argument("--arena-limit", metavar="SIZE",
                   help="the device's tensor arena (e.g. 256K, 1M, 300000): exit 1 if the model "
                        "does not fit")
    p.add_argument("--plot", metavar="OUT.png", help="draw the arena plan (needs matplotlib)")
    _model_explorer_arguments(p, "per operator of every subgraph: live tensor-arena bytes, the peak "
                              "operator in red")


def _micro_run(args: argparse.Namespace) -> int:
    from quantcore.micro import analyze, format_text, parse_size, plot, to_json_text

    limit = parse_size(args.arena_limit) if args.arena_limit is not None else None
    try:
        report = analyze(args.model, arena_limit=limit)
    except ModelFormatError as e:
        raise ModelFormatError(f"{args.model}: {e}") from e
    sys.stdout.write(to_json_text(report) if args.json else format_text(report))
    if args.plot:
        plot(report, args.plot)
        if not args.json:
            print(f"wrote {args.plot}")
    if args.model_explorer:
        from quantcore.overlays import micro_overlays
        from quantcore.schema import read_model

        model = read_model(args.model, micro=True)
        _overlays_out(args, args.model, model, micro_overlays(model, report), stream=sys.stderr if args.json
                      else sys.stdout)
    if report.fits is False:
        print(f"quantcore: {args.model} does not fit: it needs {report.total:,} B of tensor arena "
              f"(head {report.head:,} + tail ~{report.tail:,}), the limit is {limit:,} B",
              file=sys.stderr)
        return EXIT_NEGATIVE
    return EXIT_OK


_commands += [
    Command("micro", "TFLite Micro: supported operators, resolver code, tensor arena and flash size",
            _micro_arguments, _micro_run),
]


# ---------------------------------------------------------------------------
# view (Model Explorer) and the --model-explorer / --view options of other commands
# ---------------------------------------------------------------------------
def _model_explorer_arguments(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--model-explorer", metavar="OUT.json",
                   help=f"write Model Explorer overlays ({what}): the main one to OUT.json, the others "
                        "beside it as OUT.<metric>.json; open them with `quantcore view`")


def _view_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--view", action="store_true",
                   help="open the result in Model Explorer (offline, on 127.0.0.1; Ctrl-C stops it; "
                        "needs quantcore[view])")


def _require_view() -> None:
    from quantcore.view import require_model_explorer

    require_model_explorer()      # before the work: say how to install it


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(str(text))


def _overlays_out(args: argparse.Namespace, model_path: str, model, overlays, stream=None) -> None:
    """Write the overlays to --model-explorer (and say how to open them), then
    --view them when asked (blocks until Ctrl-C)."""
    stream = stream or sys.stdout
    paths = None
    if args.model_explorer:
        from quantcore.overlays import write_overlays

        paths = write_overlays(overlays, model, args.model_explorer)
        print(f"wrote {', '.join(paths)}", file=stream)
        if not getattr(args, "view", False):
            print(f"view: quantcore view {_quote(model_path)} --overlay "
                  f"{' '.join(_quote(p) for p in paths)}", file=stream)
    if getattr(args, "view", False):
        from quantcore.view import show

        sys.stdout.flush()
        show(model_path, overlays, paths=paths, out=stream)


def _view_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .tflite model to show")
    p.add_argument("--overlay", nargs="+", action="extend", default=[], metavar="A.json",
                   help="Model Explorer node-data files (from --model-explorer of compare, debug, diff, "
                        "micro); the first colours the graph, all are columns of the side tables")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; Model Explorer's server reads any file "
                        "you can read when asked, so keep it on loopback)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL")


def _view_run(args: argparse.Namespace) -> int:
    from quantcore.schema import read_model
    from quantcore.view import require_model_explorer, serve

    require_model_explorer()
    try:
        read_model(args.model)
    except OSError as e:
        raise ModelFormatError(f"cannot read model file {args.model!r}: {e.strerror}") from e
    except ModelFormatError as e:
        raise ModelFormatError(f"{args.model}: {e}") from e
    return serve(args.model, args.overlay, host=args.host, port=args.port, open_browser=not args.no_browser)


_commands += [
    Command("view", "open a model and quantcore overlays in Model Explorer (offline; needs quantcore[view])",
            _view_arguments, _view_run),
]


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantcore",
        description="Affine quantization engine and integer reference runtime for TFLite models.")
    parser.add_argument("--version", action="version", version=f"quantcore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # --debug is accepted after the command too; SUPPRESS keeps a value given
    # before the command from being reset by the subparser's default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for cmd in _commands:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, parents=[common])
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 and a usage message on bad usage
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.simplefilter("ignore")
            return int(args._run(args))
    except QuantcoreError as e:
        if args.debug:
            traceback.print_exc()
        print(f"quantcore: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("quantcore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`
        try:
            sys.stdout = None  # type: ignore[assignment]
        except Exception:  # pragma: no cover
            pass
        return EXIT_OK
    except Exception as e:  # a bug: still one line, the traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"quantcore: internal error: {type(e).__name__}: {_one_line(e)} (a bug in quantcore; "
              "--debug shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
