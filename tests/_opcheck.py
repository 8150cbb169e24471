"""Helpers for the operator tests (test_ops_elementwise / _logic / _einsum).

``run_cases`` compiles *one* model holding one node per case (so a test with a dozen shape /
dtype / attribute variants costs one LLVM compile, not a dozen) and compares every output
with onnxruntime run on the single-node model of that case.  Where onnxruntime has no CPU
kernel for a case (float64 Tan, float16 IsInf, ...) a numpy ``ref`` stands in.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import mlc

from conftest import onnx_dtype, ort_run, single_op_model

TOL = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-12), "float16": (2e-3, 2e-3)}
_ORT_CANNOT = ("NOT_IMPLEMENTED", "Type Error", "InsertedPrecisionFreeCast")


def case(inputs: dict, inits: dict | None = None, order: list | None = None,
         attrs: dict | None = None, force_ref: bool = False, ref=None) -> dict:
    """One node's inputs (run-time), initializers, input order ("" = omitted), attributes;
    ``ref``: this case's numpy reference (else run_cases'); ``force_ref``: compare with it
    even where onnxruntime runs."""
    return {"inputs": inputs, "inits": inits or {}, "order": order, "attrs": attrs,
            "force_ref": force_ref, "ref": ref}


def make(op, inputs, attrs=None, opset=17, inits=None, order=None, domain=""):
    m = single_op_model(op, inputs, {"out": None}, attrs, initializers=inits, opset=opset,
                        input_order=order, domain=domain)
    return onnx.shape_inference.infer_shapes(m, strict_mode=True)


def _combined(op, cases, attrs, opset):
    nodes, g_in, inits = [], [], []
    for k, c in enumerate(cases):
        order = c["order"] if c["order"] is not None else list(c["inputs"]) + list(c["inits"])
        names = [f"{n}_{k}" if n else "" for n in order]
        a = dict(attrs or {})
        a.update(c["attrs"] or {})
        nodes.append(helper.make_node(op, names, [f"out_{k}"], **a))
        for n, arr in c["inputs"].items():
            g_in.append(helper.make_tensor_value_info(f"{n}_{k}", onnx_dtype(arr.dtype), arr.shape))
        for n, arr in c["inits"].items():
            inits.append(numpy_helper.from_array(np.asarray(arr), f"{n}_{k}"))
    outs = [helper.make_tensor_value_info(f"out_{k}", onnx.TensorProto.UNDEFINED, None)
            for k in range(len(cases))]
    graph = helper.make_graph(nodes, f"{op}_cases", g_in, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def reference(op, c, attrs, opset, ref=None, force_ref=False):
    """The expected output of one case, or None when nothing can compute it."""
    a = dict(attrs or {})
    a.update(c["attrs"] or {})
    model = make(op, c["inputs"], a, opset, c["inits"], c["order"])
    try:
        if force_ref:
            raise RuntimeError("NOT_IMPLEMENTED (forced)")
        return ort_run(model, c["inputs"])[0]
    except Exception as e:
        if not any(s in str(e) for s in _ORT_CANNOT):
            raise
        if ref is None:
            return None
        args = list(c["inputs"].values()) + list(c["inits"].values())
        out_dt = onnx.helper.tensor_dtype_to_np_dtype(model.graph.output[0].type.tensor_type.elem_type)
        with np.errstate(all="ignore"):
            return np.asarray(ref(*args)).astype(out_dt)


def compare(got, expected, tol=None, what=""):
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    if expected.dtype.kind == "f":
        rtol, atol = tol or TOL.get(expected.dtype.name, (1e-4, 1e-5))
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol, atol=atol, err_msg=what)
        # NaN where the reference has NaN, and nowhere else; infinities of the right sign
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=what)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=what)


def run_cases(op, cases, attrs=None, opset=17, ref=None, tol=None, force_ref=False,
              num_threads=1):
    """Compile all ``cases`` of ``op`` as one model with mlc and check each output."""
    expected = [reference(op, c, attrs, opset, c.get("ref") or ref, force_ref or c.get("force_ref", False))
                for c in cases]
    if all(e is None for e in expected):
        pytest.skip(f"onnxruntime cannot run {op} for these cases and no numpy reference given")
    model = _combined(op, cases, attrs, opset)
    feeds = {f"{n}_{k}": arr for k, c in enumerate(cases) for n, arr in c["inputs"].items()}
    got = mlc.compile(model, num_threads=num_threads).run(feeds)
    for k, (c, e) in enumerate(zip(cases, expected)):
        if e is not None:
            shapes = {n: a.shape for n, a in {**c["inputs"], **c["inits"]}.items()}
            compare(got[f"out_{k}"], e, tol, f"{op} case {k} {shapes} {c['attrs'] or ''}")
    return [got[f"out_{k}"] for k in range(len(cases))]


def check(op, inputs, attrs=None, opset=17, inits=None, order=None, ref=None, tol=None,
          force_ref=False):
    """One case: compile ``op`` with mlc, compare with onnxruntime (or ``ref``)."""
    return run_cases(op, [case(inputs, inits, order)], attrs, opset, ref, tol, force_ref)[0]


def values(rng, shape, lo, hi, specials=(), dtype="float32"):
    """Uniform values in [lo, hi) with ``specials`` written over the first elements."""
    x = rng.uniform(lo, hi, size=shape)
    flat = x.reshape(-1)
    for k, v in enumerate(specials[:flat.size]):
        flat[k] = v
    with np.errstate(over="ignore"):
        return x.astype(dtype)
