"""Which ONNX backend node tests are in scope, and how one case is run and judged.

Shared by tests/test_conformance.py (the pytest module) and tests/conformance_report.py
(the full report that regenerates tests/conformance_expected.txt).

Selection.  ``onnx.backend.test.loader.load_model_tests(kind="node")`` gives 1884 cases
(onnx 1.23): 1404 single-op cases, whose model is one node, and 480 *expanded* cases,
whose model is an op's function body (``test_softmax_axis_0_expanded``, and
``..._expanded_ver18`` for the body of an older function version).  A case belongs to an
operator when

* single-op case: its model's one node is that op;
* expanded case: its base case (the name without ``_expanded`` / ``_expanded_verNN``) is
  a single-op case of that op.  An expanded case exercises the op's *decomposition* (the
  ops of its function body), so it counts for the op it expands, as onnx names it.

For the operators of ``core_ops.txt`` that is 523 single-op + 97 expanded (60
``_expanded`` + 37 ``_expanded_ver18``) = 620 cases, the figure of
shared/conformance/README.md.  ``test_loop16_seq_none`` is excluded (every backend,
the reference included, fails it), so 619 run.
"""
from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXPECTED_FILE = HERE / "conformance_expected.txt"
# the list of operators in scope: shared/conformance/ beside the repository (as CI lays it
# out), else the copy kept in tests/
_SHARED_CORE_OPS = HERE.parent.parent / "shared" / "conformance" / "core_ops.txt"
_LOCAL_CORE_OPS = HERE / "conformance_core_ops.txt"
EXCLUDED = {"test_loop16_seq_none": "fails on every backend, the onnx reference included"}
# Cases where mlc deliberately computes what onnxruntime computes and the test's expected
# output (made with onnx.reference) differs.  They are reported as "deviation", not "wrong".
DEVIATIONS = {
    name: ("align_corners with a fractional output length: the ONNX reference maps "
           "x_resized * (in - 1) / (in * scale - 1), onnxruntime and PyTorch (and mlc) use the "
           "integer output length floor(in * scale) - the spec defines length_resized as "
           "the resized tensor's length")
    for name in ("test_resize_downsample_scales_cubic_align_corners",
                 "test_resize_downsample_scales_linear_align_corners")
}
_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")


def core_ops_file() -> Path:
    env = os.environ.get("MLC_CORE_OPS")
    if env:
        return Path(env)
    return _SHARED_CORE_OPS if _SHARED_CORE_OPS.exists() else _LOCAL_CORE_OPS


def read_op_list(path: Path) -> list[str]:
    ops = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ops.append(line)
    return ops


@lru_cache(maxsize=None)
def core_ops() -> tuple[str, ...]:
    return tuple(read_op_list(core_ops_file()))


@lru_cache(maxsize=None)
def node_cases() -> dict:
    """name -> onnx.backend.test.loader TestCase (generated in memory by onnx, ~4 s once;
    onnx caches them, so BackendTest reuses the same objects)."""
    from onnx.backend.test.loader import load_model_tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # overflow warnings of onnx's case generators
        return {c.name: c for c in load_model_tests(kind="node")}


def base_name(name: str) -> str:
    return _EXPANDED.sub("", name)


def is_expanded(name: str) -> bool:
    return _EXPANDED.search(name) is not None


@lru_cache(maxsize=None)
def case_ops() -> dict:
    """case name -> the operator it tests (None for a case of no single operator)."""
    cases = node_cases()
    out = {}
    for name, case in cases.items():
        base = cases.get(base_name(name)) if is_expanded(name) else case
        nodes = list(base.model.graph.node) if base is not None and base.model is not None else []
        out[name] = nodes[0].op_type if len(nodes) == 1 else None
    return out


def in_scope(ops=None) -> list[str]:
    """Sorted names of the node cases of ``ops`` (default: core_ops.txt), excluded ones included."""
    ops = set(core_ops() if ops is None else ops)
    return sorted(n for n, op in case_ops().items() if op in ops)


def runnable() -> list[str]:
    return [n for n in in_scope() if n not in EXCLUDED]


def read_expected() -> list[str]:
    if not EXPECTED_FILE.exists():
        return []
    return [line.strip() for line in EXPECTED_FILE.read_text().splitlines() if line.strip()]


# --- running one case, as onnx's runner does, and saying why it failed ----------------------

def run_case(case, backend=None) -> tuple[str, str]:
    """Run one node case; returns (outcome, detail).

    outcome: "pass"; "unsupported" (UnsupportedError); "mlc-error" (another deliberate mlc
    error: ShapeError, InputError...); "deviation" (differs from the expected output where
    mlc deliberately follows onnxruntime, see DEVIATIONS); "internal" (an mlc error that
    reports an mlc bug, see is_internal); "shape" / "dtype" (output shape or dtype
    differs); "wrong" (values differ without an error: a bug); "crash" (an exception that
    is not an mlc error).
    """
    from onnx.backend.test.runner import Runner, _normalize_tensor

    if backend is None:
        from mlc.backend import MlcBackend as backend
    try:
        rep = backend.prepare(case.model, "CPU", num_threads=1)
        for inputs, refs in case.data_sets:
            outs = rep.run([_normalize_tensor(x) for x in inputs])
            refs = [_normalize_tensor(r) for r in refs]
            verdict = compare(outs, refs, case.rtol, case.atol)
            if verdict is not None and verdict[0] == "wrong" and case.name in DEVIATIONS:
                return "deviation", f"{verdict[1]} ({DEVIATIONS[case.name]})"
            if verdict is not None:
                return verdict
            try:       # the runner's own check is the judge (compare() only explains failures)
                Runner.assert_similar_outputs(refs, outs, case.rtol, case.atol)
            except Exception as e:  # noqa: BLE001
                return "wrong", f"onnx's runner rejects the outputs: {type(e).__name__}: {_short(e)}"
        return "pass", ""
    except Exception as e:        # noqa: BLE001 - the point is to classify it
        return classify_error(e)


def is_internal(e: BaseException) -> bool:
    """An mlc error that reports an mlc bug rather than something unsupported: a schedule
    or codegen failure, or a kernel that crashed while being built (a bare MlcError)."""
    from mlc.errors import CodegenError, MlcError, ScheduleError
    return isinstance(e, (ScheduleError, CodegenError)) or type(e) is MlcError


def classify_error(e: BaseException) -> tuple[str, str]:
    from mlc.errors import MlcError, UnsupportedError
    if is_internal(e):
        return "internal", f"{type(e).__name__}: {_short(e)}"
    if isinstance(e, MlcError):
        kind = "unsupported" if isinstance(e, UnsupportedError) else "mlc-error"
        return kind, f"{type(e).__name__}: {_short(e)}"
    return "crash", f"{type(e).__name__}: {_short(e)}"


def compare(outs, refs, rtol, atol) -> tuple[str, str] | None:
    """None when ``outs`` match ``refs`` as onnx's runner requires, else (outcome, detail)."""
    if len(outs) != len(refs):
        return "shape", f"{len(outs)} outputs, expected {len(refs)}"
    for i, (o, r) in enumerate(zip(outs, refs)):
        if isinstance(r, (list, tuple)) or r is None:
            return "crash", f"output {i}: reference is a {type(r).__name__} (sequence/optional)"
        o = np.asarray(o)
        if o.shape != r.shape:
            return "shape", f"output {i}: shape {o.shape}, expected {r.shape}"
        if r.dtype == object:
            if not np.array_equal(o, r):
                return "wrong", f"output {i}: strings differ"
            continue
        if o.dtype != r.dtype:
            return "dtype", f"output {i}: dtype {o.dtype}, expected {r.dtype}"
        tol = rtol
        if o.dtype.name == "bfloat16":
            tol = max(rtol, 2 ** -6)
            o, r = o.astype(np.float32), r.astype(np.float32)
        elif o.dtype.kind not in "biufc":      # ml_dtypes float8 / int4 ...: compare as float32
            o, r = o.astype(np.float32), r.astype(np.float32)
        try:
            np.testing.assert_allclose(o, r, rtol=tol, atol=atol)
        except AssertionError as e:
            lines = [ln for ln in str(e).splitlines() if "Mismatched" in ln or "Max abs" in ln]
            return "wrong", f"output {i}: " + "; ".join(ln.strip() for ln in lines)
    return None


def _short(e: BaseException, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(e)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def per_op(names) -> Counter:
    ops = case_ops()
    return Counter(ops[n] for n in names)
