"""The ONNX backend node tests of the operators in shared/conformance/core_ops.txt, run
against mlc as an ONNX backend (mlc.backend.MlcBackend).

* 620 cases are in scope (see tests/_conformance.py for how cases map to operators and
  how ``_expanded`` cases count); ``test_loop16_seq_none`` is excluded (it fails on every
  backend).
* ``tests/conformance_expected.txt`` lists the cases that must pass.  It only grows:
  regenerate it with ``python tests/conformance_report.py --write``, which refuses to drop
  a case that passed before.
* A case not (yet) in that list must fail *cleanly*: with an mlc error (UnsupportedError,
  ShapeError, ...), reported here as xfail with the error's message.  A wrong answer, a
  wrong shape or dtype, or an exception that is not an mlc error fails the test: that is a
  bug, whatever the list says.  The exceptions, cases where mlc deliberately computes
  what onnxruntime computes and the expected output differs, are listed with their
  reason in ``DEVIATIONS`` (tests/_conformance.py) and xfail.  A case outside the list
  that passes just passes (the report then says to add it).

Only the CPU variants are collected (mlc has no other device).  The whole module compiles
~620 tiny models: about a minute on this 2-core machine.
"""
from __future__ import annotations

import functools
import re

import onnx.backend.test
import pytest

import _conformance as C
from mlc.backend import MlcBackend
from mlc.errors import MlcError


SCOPE = C.in_scope()
EXPECTED = C.read_expected()
# the expected list only grows: raise this floor when regenerating the file
MIN_EXPECTED = 611


class _OneThreadBackend(MlcBackend):
    """Tiny models: worker threads would only add overhead (and contend with other jobs)."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        kwargs.setdefault("num_threads", 1)
        return super().prepare(model, device, **kwargs)


def _must_fail_cleanly(name: str, test):
    """Run a case outside the expected list: an mlc error -> xfail with its message."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        try:
            test(*args, **kwargs)
        except MlcError as e:
            if C.is_internal(e):
                raise                             # mlc errors that are mlc bugs
            pytest.xfail(f"{type(e).__name__}: {e}")
    return run


def _deviates(name: str, test):
    """A case where mlc follows onnxruntime and the expected output does not (strict xfail)."""
    reason = C.DEVIATIONS[name[: -len("_cpu")]]

    @functools.wraps(test)
    def run(*args, **kwargs):
        try:
            test(*args, **kwargs)
        except AssertionError:
            pytest.xfail(f"mlc follows onnxruntime: {reason}")
        pytest.fail("this case passes now: remove it from DEVIATIONS in tests/_conformance.py")
    return run


def _node_test_class():
    bt = onnx.backend.test.BackendTest(_OneThreadBackend, __name__)
    bt.include("^(" + "|".join(map(re.escape, SCOPE)) + ")_cpu$")
    for name in C.EXCLUDED:
        bt.exclude(f"^{re.escape(name)}_cpu$")
    cls = bt.test_cases["OnnxBackendNodeModelTest"]
    expected = set(EXPECTED)
    keep = {f"{n}_cpu" for n in SCOPE}
    for attr in [a for a in vars(cls) if a.startswith("test_")]:
        if attr not in keep:
            delattr(cls, attr)                     # other ops, CUDA variants: not collected
        elif attr[: -len("_cpu")] in C.DEVIATIONS:
            setattr(cls, attr, _deviates(attr, getattr(cls, attr)))
        elif attr[: -len("_cpu")] not in expected and attr[: -len("_cpu")] not in C.EXCLUDED:
            setattr(cls, attr, _must_fail_cleanly(attr, getattr(cls, attr)))
    return cls


OnnxBackendNodeModelTest = _node_test_class()


# --- the bookkeeping -------------------------------------------------------------------------

def test_scope_is_the_620_cases_of_the_readme():
    assert len(SCOPE) == 620
    assert C.per_op(SCOPE)["Cast"] == 60
    assert sum(C.is_expanded(n) for n in SCOPE) == 97


def test_core_ops_copy_matches_shared():
    shared = C._SHARED_CORE_OPS
    if not shared.exists():
        pytest.skip("shared/conformance/ is not beside the repository")
    assert C.read_op_list(C._LOCAL_CORE_OPS) == C.read_op_list(shared)


def test_expected_list_is_sorted_unique_and_in_scope():
    assert EXPECTED == sorted(set(EXPECTED)), "conformance_expected.txt must be sorted, one name per line"
    assert set(EXPECTED) <= set(SCOPE) - set(C.EXCLUDED)
    assert len(EXPECTED) >= MIN_EXPECTED, "cases were removed from conformance_expected.txt"
