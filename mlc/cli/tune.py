"""``mlc tune``: measure schedules of a model's kernels on this machine (see mlc.tuning)."""
from __future__ import annotations

import argparse
import re

from .common import add_compile_options, add_debug, parse_input_shapes, positive
from ..errors import TuningError


def parse_duration(text: str) -> float:
    """'30m', '90s', '1h', '1h30m' or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 30m, 90s, 1h30m)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def register(sub) -> None:
    p = sub.add_parser(
        "tune", help="tune a model's kernels on this machine",
        description="Measure candidate schedules of every distinct kernel of the model, guided by a "
                    "learned cost model, and append every measurement to a tuning log that later "
                    "compiles apply. Stops at --trials measurements or --time-budget, whichever "
                    "comes first; --resume (the default) continues from what the log holds.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mlc tune model.onnx --trials 2000 --log tuning_logs/model.jsonl\n"
               "  mlc tune model.onnx --time-budget 30m --plot curve.png")
    p.add_argument("model", help="an ONNX model")
    p.add_argument("--trials", type=positive("--trials"), default=2000, help="measurements in all (default 2000)")
    p.add_argument("--time-budget", type=parse_duration, default=None, metavar="DURATION",
                   help="stop after this long, e.g. 30m")
    p.add_argument("--log", default=None, help="tuning log (default: ~/.cache/mlc/tuning/tune.jsonl)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="do not read the log first (measure from scratch)")
    p.add_argument("--resume", dest="resume", action="store_true", default=True,
                   help="continue from the log's records (default)")
    p.add_argument("--strategy", choices=("model", "random"), default="model",
                   help="model-guided search (default) or random search")
    p.add_argument("--batch", type=positive("--batch"), default=32, help="candidates per round (default 32)")
    p.add_argument("--confirm", type=positive("--confirm", minimum=0), default=5, metavar="N",
                   help="at the end, re-time each task's N fastest schedules side by side "
                        "(default 5; 0: off) so that the best is not merely the luckiest measurement")
    p.add_argument("--tune-threads", type=positive("--tune-threads"), default=1,
                   help="thread count to tune for (default 1: single-thread latency)")
    p.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="measure on a dask.distributed scheduler at ADDRESS")
    p.add_argument("--plot", metavar="PNG", default=None, help="write best latency vs trials to a PNG")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_compile_options(p)
    add_debug(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import mlc
    result = mlc.tune(args.model, target=args.target, trials=args.trials, log=args.log,
                      time_budget=args.time_budget, input_shapes=parse_input_shapes(args.input_shape),
                      cluster=args.cluster, strategy=args.strategy, batch=args.batch, resume=args.resume,
                      threads=args.tune_threads, progress=not args.quiet, confirm=args.confirm)
    print(result.summary())
    if args.plot:
        plot_curve(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def plot_curve(result, path: str, label: str = "model-guided", other=None) -> None:
    """Best estimated model latency (sum over tasks of weight x best) vs trials."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TuningError("--plot needs matplotlib: pip install 'mlc[plot]'") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for res, lab in [(result, label)] + ([(other, "random")] if other is not None else []):
        if res.curve:
            xs, ys = zip(*res.curve)
            ax.plot(xs, [y * 1e3 for y in ys], label=lab)
    ax.set_xlabel("trials")
    ax.set_ylabel("estimated model latency (ms, sum of tuned kernels)")
    ax.set_title("mlc tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
