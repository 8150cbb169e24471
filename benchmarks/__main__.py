"""python -m benchmarks [models|gemm|peak|fusion|memory|dynamic|tuning] [options]"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    what = argv.pop(0) if argv and not argv[0].startswith("-") else "all"
    from . import dynamic, fusion, gemm, models, peak, tuning
    tables = {"models": models.main, "gemm": gemm.main, "peak": peak.main, "fusion": fusion.main,
              "memory": fusion.memory_main, "dynamic": dynamic.main, "tuning": tuning.main}
    if what == "all":
        models.main(argv)
        gemm.main([])
        return 0
    if what not in tables:
        print(f"unknown benchmark {what!r}; choose from {', '.join(tables)} or all", file=sys.stderr)
        return 2
    tables[what](argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
