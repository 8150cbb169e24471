"""Einsum (kernels/einsum.py) against onnxruntime (and numpy.einsum where onnxruntime
cannot run an equation)."""
from __future__ import annotations

import numpy as np
import pytest

import mlc
from mlc.errors import UnsupportedError

from _opcheck import case, make, run_cases

# (equation, operand shapes): what real models use, then the general features
EQUATIONS = [
    ("ij,jk->ik", [(13, 17), (17, 19)]),
    ("bij,bjk->bik", [(3, 7, 17), (3, 17, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 11, 16), (2, 3, 13, 16)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 11, 13), (2, 3, 13, 16)]),
    ("bqhd,bkhd->bhqk", [(2, 11, 3, 8), (2, 13, 3, 8)]),
    ("ij->ji", [(7, 13)]),
    ("ij->i", [(7, 13)]),
    ("ij->j", [(7, 13)]),
    ("ij->", [(7, 13)]),
    ("ii->i", [(9, 9)]),
    ("ii->", [(9, 9)]),
    ("ii", [(9, 9)]),                      # implicit: trace
    ("i,j->ij", [(7,), (11,)]),
    ("i,i->", [(37,)] * 2),
    ("i,i", [(37,)] * 2),                  # implicit: dot
    ("ij,jk", [(5, 6), (6, 7)]),          # implicit: matmul
    ("ba,ab", [(5, 6), (6, 5)]),          # implicit: scalar
    ("ij,kj->ik", [(5, 17), (7, 17)]),
    ("bn,anm,bm->ba", [(3, 5), (4, 5, 6), (3, 6)]),   # bilinear, three operands
    ("...ij,...jk->...ik", [(2, 3, 5, 7), (2, 3, 7, 4)]),
    ("...ij,...jk->...ik", [(2, 1, 5, 7), (1, 3, 7, 4)]),  # broadcast batch dims
    ("...ii->...i", [(3, 4, 4)]),
    ("i...->...", [(5, 2, 3)]),
    ("...,...->...", [(3, 1, 5), (1, 4, 1)]),
    ("bij,jk->bik", [(4, 5, 6), (6, 7)]),
    ("abc->cab", [(2, 3, 4)]),
    ("iJ,Jk->ik", [(5, 6), (6, 7)]),      # upper-case labels
    ("ijk,ikl->ijl", [(1, 5, 6), (1, 6, 7)]),
]


def _ref(eq):
    return lambda *ops: np.einsum(eq, *[o.astype(np.float64) if o.dtype.kind == "f" else o for o in ops])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_einsum_equations(dtype, rng):
    for k in range(0, len(EQUATIONS), 10):          # a few compiles of ten nodes each
        cases = []
        for eq, shapes in EQUATIONS[k:k + 10]:
            if dtype.startswith("float"):
                ops = {f"x{i}": rng.uniform(-2, 2, size=s).astype(dtype) for i, s in enumerate(shapes)}
            else:
                ops = {f"x{i}": rng.integers(-5, 6, size=s).astype(dtype) for i, s in enumerate(shapes)}
            # where onnxruntime's Einsum has no kernel for a type, numpy stands in
            cases.append(case(ops, attrs={"equation": eq}, ref=_ref(eq)))
        run_cases("Einsum", cases, None, 12)


def test_einsum_float16(rng):
    cases = []
    for eq, shapes in EQUATIONS[:8]:
        ops = {f"x{i}": rng.uniform(-1, 1, size=s).astype(np.float16) for i, s in enumerate(shapes)}
        cases.append(case(ops, attrs={"equation": eq}, ref=_ref(eq)))
    run_cases("Einsum", cases, None, 12, tol=(5e-3, 5e-3))


def test_einsum_numpy_agrees(rng):
    """The same equations against numpy.einsum (guards the ORT comparison itself)."""
    cases, refs = [], []
    for eq, shapes in EQUATIONS:
        ops = {f"x{i}": rng.uniform(-2, 2, size=s).astype(np.float32) for i, s in enumerate(shapes)}
        cases.append(case(ops, attrs={"equation": eq}))
        refs.append(np.einsum(eq, *[o.astype(np.float64) for o in ops.values()]))
    from _opcheck import _combined
    model = _combined("Einsum", cases, None, 12)
    feeds = {f"{n}_{k}": a for k, c in enumerate(cases) for n, a in c["inputs"].items()}
    got = mlc.compile(model, num_threads=1).run(feeds)
    for k, (eq, _) in enumerate(EQUATIONS):
        np.testing.assert_allclose(got[f"out_{k}"], refs[k], rtol=1e-4, atol=1e-4, err_msg=eq)


def test_einsum_constant_operand_and_threads(rng):
    """A weight operand (constant) and a larger contraction run multi-threaded."""
    x = rng.standard_normal((4, 33, 64)).astype(np.float32)
    w = rng.standard_normal((64, 48)).astype(np.float32)
    q = rng.standard_normal((2, 4, 37, 32)).astype(np.float32)
    kk = rng.standard_normal((2, 4, 41, 32)).astype(np.float32)
    run_cases("Einsum", [case({"x": x}, {"w": w}, attrs={"equation": "bsd,de->bse"}),
                         case({"q": q, "k": kk}, attrs={"equation": "bhqd,bhkd->bhqk"})],
              None, 12, num_threads=4)


def test_einsum_mismatched_sizes_rejected():
    ops = {"x0": np.zeros((3, 4), np.float32), "x1": np.zeros((5, 6), np.float32)}
    with pytest.raises(Exception):
        mlc.compile(make("Einsum", ops, {"equation": "ij,jk->ik"}, 12))


def test_einsum_parse_errors_are_unsupported():
    from mlc.kernels.einsum import parse_equation
    with pytest.raises(ValueError):
        parse_equation("ij,jk->ik", [(3, 4)])
    with pytest.raises(ValueError):
        parse_equation("ij->k", [(3, 4)])
    with pytest.raises(ValueError):
        parse_equation("ij->ii", [(3, 3)])
    with pytest.raises(ValueError):
        parse_equation("i.j->ij", [(3, 4)])       # (onnx shape inference hangs on this one)
    with pytest.raises(ValueError):
        parse_equation("ij,jk->ik", [(3, 4), (5, 6)])
    spec = parse_equation("b...ij,...jk", [(2, 3, 5, 7), (3, 7, 4)])
    assert spec.output == ["_e0", "b", "i", "k"]


def test_einsum_unsupported_bool():
    a = np.ones((3, 3), bool)
    try:
        model = make("Einsum", {"a": a}, {"equation": "ij->ji"}, 12)
    except Exception:
        pytest.skip("onnx rejects bool Einsum")
    with pytest.raises(UnsupportedError):
        mlc.compile(model)
