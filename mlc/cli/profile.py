"""``mlc profile``: time per kernel, measured natively (see mlc.runtime.profile)."""
from __future__ import annotations

import argparse

from .common import (add_compile_options, add_debug, add_input_options, add_threads, fixed_model,
                     load_feed_files, load_or_compile, positive, read_feeds)


def register(sub) -> None:
    p = sub.add_parser(
        "profile", help="time every kernel of a model",
        description="Run the model's profiling entry (clock reads between kernels inside one native "
                    "call) --repeat times and print per-kernel medians: fused ops, output shapes, "
                    "ms, GFLOP/s (mlc's kernel FLOP count), share of the total; then the total, "
                    "the plain-run time and the profiler's overhead.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mlc profile model.onnx --repeat 100 --json prof.json")
    p.add_argument("model", help="an ONNX model or an .mlc artifact")
    p.add_argument("--repeat", type=positive("--repeat"), default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--top", type=positive("--top"), default=None, help="show only the N slowest kernels")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    add_threads(p)
    add_input_options(p)
    add_compile_options(p)
    add_debug(p)
    p.set_defaults(func=run)


def run(args) -> int:
    given = load_feed_files(args)
    mod, seconds, how = load_or_compile(args.model, args)
    mod = fixed_model(mod, given)
    feeds, where = read_feeds(mod, args, given)
    prof = mod.profile(feeds, repeat=args.repeat, warmup=args.warmup)
    print(f"{args.model} ({how} in {seconds:.2f} s), {where}")
    print(prof.table(top=args.top))
    if args.json:
        prof.to_json(args.json)
        print(f"wrote {args.json}")
    mod.close()
    return 0
