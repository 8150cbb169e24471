"""``mlc inspect``: print one stage of the compilation (see mlc.inspect)."""
from __future__ import annotations

import argparse

from ..errors import MlcError
from .common import add_compile_options, add_debug, check_exists, is_artifact, parse_input_shapes


def register(sub) -> None:
    p = sub.add_parser(
        "inspect", help="show a compilation stage: graph, fused, loop, llvm, asm",
        description="Print one stage of the compilation of an ONNX model:\n"
                    "  graph   the graph IR after import\n"
                    "  fused   after the graph passes: kernels with fused ops, shapes, FLOPs, bytes\n"
                    "  loop    the lowered loop nests (all kernels, or --kernel NAME)\n"
                    "  llvm    optimised LLVM IR\n"
                    "  asm     assembly\n"
                    "For an .mlc artifact: its metadata (stage 'artifact', the default there).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mlc inspect model.onnx --stage fused --dot fused.dot\n"
               "  mlc inspect model.onnx --stage asm --kernel k3_Conv_Add_Relu")
    p.add_argument("model", help="an ONNX model (or an .mlc artifact)")
    p.add_argument("--stage", choices=("graph", "fused", "loop", "llvm", "asm", "artifact"), default=None,
                   help="what to show (default: fused; artifact for .mlc files)")
    p.add_argument("--kernel", metavar="NAME", help="only this kernel (loop, llvm, asm stages)")
    p.add_argument("--dot", metavar="FILE.dot", help="write the fused graph as Graphviz dot")
    p.add_argument("-o", "--output", metavar="FILE", help="write the text to FILE instead of printing it")
    add_compile_options(p)
    add_debug(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..inspect import inspect, inspect_dot
    check_exists(args.model)
    artifact = is_artifact(args.model)
    stage = args.stage or ("artifact" if artifact else "fused")
    shapes = parse_input_shapes(args.input_shape)
    if args.dot:
        if artifact:
            raise MlcError("--dot needs the ONNX model: an .mlc file does not keep the graph")
        dot = inspect_dot(args.model, input_shapes=shapes, target=args.target)
        _write(args.dot, dot)
        print(f"wrote {args.dot} (render: dot -Tsvg {args.dot} -o fused.svg)")
        if args.stage is None:
            return 0
    text = inspect(args.model, stage=stage, kernel=args.kernel, input_shapes=shapes,
                               target=args.target)
    if args.output:
        _write(args.output, text + "\n")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise MlcError(f"cannot write {path}: {exc.strerror or exc}") from None
