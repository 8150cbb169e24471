"""A measurement worker process: ``python -m mlc.tuning.worker``.

Reads jobs from stdin and writes results to stdout, each a length-prefixed pickle
``(function name, args)`` -> result.  Running as its own interpreter (rather than through
multiprocessing) means it never re-imports the caller's ``__main__``, so ``mlc.tune``
works from any script, notebook or REPL, and a crash kills only this process.
"""
from __future__ import annotations

import os
import pickle
import struct
import sys


def _read(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _write(stream, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def main():
    # keep the protocol channel private: anything else printing to stdout would corrupt it
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    from . import measure
    handlers = {"build": measure.build_candidate, "run": measure.run_in_process}
    while True:
        job = _read(inp)
        if job is None:
            return
        name, args = job
        _write(out, handlers[name](*args))


if __name__ == "__main__":
    main()
