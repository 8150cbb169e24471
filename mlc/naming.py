"""Fresh names: ``base``, else ``base{sep}2``, ``base{sep}3``, ... the first not in ``taken``.

Deterministic on purpose: kernels built from the same ops get the same stage names and
so the same structural key (the tuning logs' task keys depend on it).
"""
from __future__ import annotations


def fresh_name(taken: set, base: str, sep: str = "") -> str:
    """The first of ``base``, ``base{sep}2``, ... not in ``taken``; it is added to ``taken``."""
    out, i = base, 1
    while out in taken:
        i += 1
        out = f"{base}{sep}{i}"
    taken.add(out)
    return out
