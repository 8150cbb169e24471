"""The ONNX backend *node* test cases (onnx.backend.test.case.node), for operator tests.

The installed onnx ships the case generators but not their data directory, so the cases
are generated once per test session (about 7 s: onnx imports every generator module) and
filtered by name.  ``run_node_case`` compiles a case's model with mlc and compares every
output with the case's expected outputs (computed by onnx's reference implementation).
"""
from __future__ import annotations

import functools
import re
import warnings

import numpy as np


@functools.lru_cache(maxsize=1)
def _all_cases() -> dict:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        cases = collect_testcases(None)
    return {c.name: c for c in cases}


def node_case_names(pattern: str) -> list:
    rx = re.compile(pattern)
    return sorted(n for n in _all_cases() if rx.fullmatch(n))


def node_case(name: str):
    return _all_cases()[name]


def run_node_case(name: str, rtol: float = 1e-4, atol: float = 1e-5, num_threads: int = 1):
    """Compile the case with mlc and compare with its expected outputs; returns the model."""
    import mlc
    case = node_case(name)
    mod = mlc.compile(case.model, num_threads=num_threads)
    for inputs, expected in case.data_sets:
        names = [vi.name for vi in case.model.graph.input]
        feeds = {n: np.asarray(v) for n, v in zip(names, inputs)}
        got = mod.run({n: feeds[n] for n in mod.input_names})
        for vi, exp in zip(case.model.graph.output, expected):
            g = got[vi.name]
            exp = np.asarray(exp)
            assert g.shape == exp.shape, f"{name} {vi.name}: shape {g.shape} != {exp.shape}"
            if exp.dtype.kind in "fc":
                np.testing.assert_allclose(g, exp, rtol=rtol, atol=atol, err_msg=f"{name} {vi.name}")
            else:
                np.testing.assert_array_equal(g, exp, err_msg=f"{name} {vi.name}")
    return mod
