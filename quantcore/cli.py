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


_commands: list[Command] = [
    Command("inspect", "show the operators, tensors, quantization and signatures of a model",
            _inspect_arguments, _inspect_run),
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
