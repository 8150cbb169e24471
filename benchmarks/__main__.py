"""python -m benchmarks [models|gemm|peak|fusion|memory|tuning] [options]"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    what = argv.pop(0) if argv and not argv[0].startswith("-") else "all"
    from . import gemm, models, peak
    tables = {"models": models.main, "gemm": gemm.main, "peak": peak.main}
    try:
        from . import fusion
        tables["fusion"] = fusion.main
        tables["memory"] = fusion.memory_main
    except ImportError:
        pass
    try:
        from . import tuning
        tables["tuning"] = tuning.main
    except ImportError:
        pass
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
