"""The ``quantcore`` command line.

``quantcore <command> [options]``; each command is one entry of :data:`_commands`:
a name, a one-line help, a function adding its arguments to an ``argparse``
subparser and a function running it that returns the exit code. Adding a command
(run, compare, quantize, debug, explain) is adding one :class:`Command`.

Exit codes: 0 success, 1 the command ran and reports a negative result (for
example a comparison that found differences), 2 bad usage or bad input. Any
:class:`~quantcore.errors.QuantcoreError` (a malformed model, a missing file, an
unsupported operator) prints one line, ``quantcore: error: <message>``, on stderr
and exits with 2; ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from dataclasses import dataclass
from typing import Callable

from quantcore import __version__
from quantcore.errors import ModelFormatError, QuantcoreError

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_ERROR = 2


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


def _inspect_run(args: argparse.Namespace) -> int:
    from quantcore.inspect import format_text, inspect_model

    try:
        info = inspect_model(args.model, validate=not args.no_validate)
    except ModelFormatError as e:
        raise ModelFormatError(f"{args.model}: {e}") from e
    if args.json:
        sys.stdout.write(json.dumps(info, indent=1) + "\n")
    else:
        sys.stdout.write(format_text(info))
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
    from quantcore.schema import atomic_write, read_model

    model = read_model(args.model)
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
    p.add_argument("--workers", type=int, default=None,
                   help="calibrate in N local processes (same result as one)")


def _quantize_run(args: argparse.Namespace) -> int:
    import numpy as np

    from quantcore.datasets import representative_dataset
    from quantcore.quantizer import QuantizationReport, quantize
    from quantcore.schema import atomic_write, read_model

    model = read_model(args.model)
    dataset = representative_dataset(args.data, model) if args.data else None
    report = QuantizationReport([])
    io_type = np.dtype(args.io)
    data = quantize(model, representative_dataset=dataset, mode=args.mode, per_channel=not args.per_tensor,
                    inference_input_type=io_type, inference_output_type=io_type,
                    calibrator=args.calibrator,
                    denylist=[d for d in args.denylist.split(",") if d],
                    default_ranges=tuple(args.default_ranges) if args.default_ranges else None,
                    report=report, workers=args.workers)
    atomic_write(args.output, data)
    print(f"wrote {args.output} ({len(data)} bytes, mode {args.mode}, I/O {args.io})")
    for o, name, reason in report.float_ops:
        print(f"  kept in float: operator {o} {name} ({reason})")
    return EXIT_OK


# ---------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------
def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--inputs", help=".npy or .npz; default: seeded random full-range inputs")
    p.add_argument("--numerics", default="reference", choices=["reference", "optimized", "xnnpack", "all"],
                   help="LiteRT path to compare with: reference (BUILTIN_REF), optimized "
                        "(BUILTIN_WITHOUT_DEFAULT_DELEGATES), xnnpack (BUILTIN), or all: the three "
                        "paths side by side, naming the path that explains each difference")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the table as JSON")
    p.add_argument("--seed", type=int, default=0)


def _compare_run(args: argparse.Namespace) -> int:
    from quantcore.compare import compare, compare_all, load_inputs, write_json
    from quantcore.schema import read_model

    with open(args.model, "rb") as fh:
        data = fh.read()
    model = read_model(data)
    inputs = load_inputs(args.inputs, model) if args.inputs else None
    if args.numerics == "all":
        result = compare_all(data, inputs, seed=args.seed)
    else:
        result = compare(data, inputs, numerics=args.numerics, seed=args.seed)
    print(result.format())
    if args.json_out:
        write_json(result, args.json_out)
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
    from quantcore.schema import atomic_write, read_model

    model = read_model(args.model)
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


def _debug_run(args: argparse.Namespace) -> int:
    from quantcore.debug import _matplotlib, debug, plot, write_json
    from quantcore.errors import InputError

    if args.top < 0:
        raise InputError(f"--top must be >= 0, not {args.top}")
    if args.plot:
        _matplotlib()  # fail before the work when matplotlib is missing
    result = debug(args.float_model, args.quant_model, args.data, max_samples=args.max_samples,
                   sort=args.sort, margin_db=args.margin, selective=args.selective)
    print(result.format(top=args.top, float_model=args.float_model, data=args.data))
    if args.json_out:
        write_json(result, args.json_out)
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
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


def _diff_run(args: argparse.Namespace) -> int:
    from quantcore.diff import diff, write_json

    result = diff(args.old, args.new, inputs=args.inputs, numerics=args.numerics,
                  tolerance=args.tolerance, seed=args.seed, run=not args.no_run)
    print(result.format())
    if args.json_out:
        write_json(result, args.json_out)
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


def _baseline_run(args: argparse.Namespace) -> int:
    from quantcore import baseline
    from quantcore.schema import atomic_write

    if args.baseline_command == "record":
        for r in baseline.record(args.models, args.output, inputs=args.inputs,
                                 numerics=_numerics_list(args.numerics), seed=args.seed):
            print(r.format())
        return EXIT_OK
    result = baseline.check(args.directory, args.models, tolerance=args.tolerance,
                            numerics=_numerics_list(args.numerics) if args.numerics else None)
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


if __name__ == "__main__":
    sys.exit(main())
