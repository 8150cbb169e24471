"""``mlc compile``: ONNX -> a saved .mlc artifact or a C-callable shared library."""
from __future__ import annotations

import argparse
import os
import time

from ..errors import MlcError
from .common import add_compile_options, add_debug, check_exists


def register(sub) -> None:
    p = sub.add_parser(
        "compile", help="compile an ONNX model to an .mlc artifact or a shared library",
        description="Compile an ONNX model.  --emit mlc (default) writes one .mlc file for "
                    "mlc.load / `mlc run`; --emit so links a shared library with a C API and "
                    "writes its header next to it (needs a C compiler).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mlc compile model.onnx -o model.mlc\n"
               "  mlc compile model.onnx --emit so -o libmodel.so --input-shape x:1,3,224,224")
    p.add_argument("model", help="the ONNX model file")
    p.add_argument("-o", "--output", help="output path (default: the model's name with .mlc or .so)")
    p.add_argument("--emit", choices=("mlc", "so"), default=None,
                   help="artifact kind (default: from the -o extension, else mlc)")
    p.add_argument("--header", help="with --emit so: where to write the C header (default: OUTPUT with .h)")
    p.add_argument("--prefix", default="mlc_model",
                   help="with --emit so: prefix of the C API's names (default mlc_model)")
    add_compile_options(p)
    add_debug(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import mlc
    from .common import parse_input_shapes
    check_exists(args.model)
    emit = args.emit or ("so" if args.output and args.output.endswith(".so") else "mlc")
    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + "." + emit
    t0 = time.perf_counter()
    mod = mlc.compile(args.model, target=args.target, input_shapes=parse_input_shapes(args.input_shape),
                      num_threads=1)
    t_compile = time.perf_counter() - t0
    from ..api import tuning_summary
    from ..runtime.compiled_model import CompiledModel
    if not isinstance(mod, CompiledModel):
        from .common import symbolic_dims
        mod.close()
        raise MlcError(f"{args.model} has symbolic input dimensions ({symbolic_dims(mod)}): an artifact "
                       "is compiled for fixed shapes; bind them with --input-shape NAME:D1,D2,...")
    try:
        if emit == "so":
            mod.export_library(out, header=args.header, prefix=args.prefix)
            from ..runtime.library import default_header_path
            extra = f" + header {args.header or default_header_path(out)}"
        else:
            mod.save(out)
            extra = ""
    finally:
        mod.close()
    st = mod.stats
    print(f"{args.model} -> {out}{extra}: {st['kernels']} kernels, weights {st['weights_bytes'] / 1e6:.1f} MB, "
          f"arena {st['arena_bytes'] / 1e6:.1f} MB, target {mod.target.cpu}; compiled in {t_compile:.2f} s, "
          f"{os.path.getsize(out) / 1e6:.1f} MB written; {tuning_summary(st)}")
    return 0
