"""The ``mlc`` command line.

    mlc compile model.onnx -o model.mlc [--emit mlc|so] [--target x86] [--input-shape x:1,3,224,224]
    mlc run model.mlc|model.onnx [--input x=x.npy | --inputs feeds.npz] [--output out.npz]
    mlc bench model.onnx [--repeat 50]            mlc vs onnxruntime, 1 thread and all threads
    mlc profile model.onnx|model.mlc [--repeat 50] [--json prof.json]
    mlc inspect model.onnx --stage graph|fused|loop|llvm|asm [--kernel NAME] [--dot fused.dot]

Each subcommand lives in its own module of ``mlc.cli`` with ``register(subparsers)``,
which adds its parser and sets ``func`` to the function that runs it (args -> exit
code).  A command module that is not installed is skipped, so one can be added by
dropping in its file and naming it in :data:`COMMANDS`.

Errors print one line, ``mlc: error: <message>``, and exit with status 1 (2 for usage
errors, as argparse does); ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

COMMANDS = ("compile", "run", "bench", "profile", "inspect", "tune")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = argparse.ArgumentParser(
        prog="mlc", description="mlc: an ML graph compiler for CPUs (ONNX in, machine code out).",
        epilog="Run 'mlc <command> --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"mlc {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue            # not installed (yet): e.g. `tune` comes from elsewhere
            raise
        module.register(sub)
    return parser


def main(argv: list | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:           # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    debug = getattr(args, "debug", False) or "--debug" in argv
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("mlc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:             # e.g. `mlc inspect ... | head`
        return 0
    except Exception as exc:  # noqa: BLE001 -- every error becomes one line
        if debug:
            traceback.print_exc()
        print(f"mlc: error: {_describe(exc)}", file=sys.stderr)
        if not debug and not _is_expected(exc):
            print("mlc: (this looks like a bug in mlc; run with --debug for the traceback)",
                  file=sys.stderr)
        return 1


def _is_expected(exc: BaseException) -> bool:
    from ..errors import MlcError
    return isinstance(exc, (MlcError, OSError, ValueError))


def _describe(exc: BaseException) -> str:
    from ..errors import MlcError
    if isinstance(exc, MlcError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
