"""The loop-level IR end to end: computation + schedule -> lowering -> LLVM -> run, vs numpy.

Each case is one kernel with a schedule that exercises a lowering or codegen path: tails
of every kind, masked vectors, lane reductions, compute_at regions, K-blocked accumulators,
constant packing, parallel loops through the thread pool, gathers, data-dependent indexing.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from mlc.codegen.jit import LoadedCode, compile_ir
from mlc.codegen.module import Location, ModuleBuilder
from mlc.errors import ScheduleError
from mlc.loop.expr import (call, cast, const, maximum, reduce, reduce_max, reduce_sum, select)
from mlc.loop.kernel import Kernel
from mlc.loop.lower import lower, pack_array
from mlc.loop.schedule import Schedule
from mlc.loop.tensor import compute, placeholder, reduce_axis
from mlc.target import Target

T = Target.host()


def run_kernel(kernel: Kernel, schedule: Schedule, inputs: list, threads: int = 1):
    """Lower, compile and run ``kernel``; returns its outputs as numpy arrays."""
    kernel = kernel.normalize()
    lk = lower(kernel, schedule, T.lanes_f32)
    mb = ModuleBuilder(T)
    fn = mb.add_kernel(lk)
    arrays = []
    for buf, value in zip(lk.inputs, inputs):
        packs = lk.packs.get(buf.name)
        arrays.append(np.ascontiguousarray(pack_array(value, packs) if packs else value))
    outs = [np.zeros(b.shape, dtype=b.dtype if b.dtype != "bool" else np.bool_) for b in lk.outputs]
    scratch = [np.zeros(max(b.nbytes, 1), np.uint8) for b in lk.scratch]
    all_arrays = arrays + outs + scratch
    mb.add_entry([(fn, [Location("input", i) for i in range(len(all_arrays))])])
    code = LoadedCode(compile_ir(mb.ir_text(), T), T)
    try:
        code.function("mlc_set_num_threads", None, ctypes.c_int32)(threads)
        ptrs = (ctypes.c_void_p * len(all_arrays))(*[a.ctypes.data for a in all_arrays])
        code.function("mlc_run", None, *[ctypes.c_void_p] * 4)(ptrs, None, None, None)
        code.function("mlc_shutdown", None)()
    finally:
        code.close()
    return outs


def _matmul(M, N, K, bias_relu=False):
    A = placeholder((M, K), "float32", "A")
    B = placeholder((K, N), "float32", "B")
    k = reduce_axis(K, "k")
    C = compute((M, N), lambda i, j: reduce_sum(A[i, k] * B[k, j], [k]), "mm", axis_names=["i", "j"])
    if not bias_relu:
        return Kernel("mm", (A, B), (C.buffer,), [C], constant=frozenset([B])), "mm"
    bias = placeholder((N,), "float32", "bias")
    D = compute((M, N), lambda i, j: maximum(C[i, j] + bias[j], 0.0), "relu", axis_names=["i", "j"])
    return Kernel("mm", (A, B, bias), (D.buffer,), [C, D], constant=frozenset([B])), "relu"


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 13, 5), (50, 70, 33), (16, 64, 64), (33, 100, 129)])
def test_register_tiled_matmul_with_tails_and_packing(rng, M, N, K):
    kern, st = _matmul(M, N, K, bias_relu=True)
    s = (Schedule().split(st, "i", 6).split(st, "j", 32).split(st, "j.i", 16)
         .reorder(st, ["i.o", "j.o", "k", "i.i", "j.i.o", "j.i.i"])
         .unroll(st, "i.i").unroll(st, "j.i.o").vectorize(st, "j.i.i").pack("B", 1, 32))
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    (out,) = run_kernel(kern, s, [a, b, bias])
    np.testing.assert_allclose(out, np.maximum(a @ b + bias, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("distance", [1, 4, 100])
def test_prefetch_hints_the_lines_read_later_and_change_nothing(rng, distance):
    """prefetch(stage, B, "k", d) puts, at the top of loop k, one hint per cache-line
    stream of packed B (the two 16-lane column blocks of the unrolled j.i.o loop), at the
    address k + d reads; hints past the end of B are harmless."""
    from mlc.loop.stmt import Prefetch, walk_stmt
    M, N, K = 12, 64, 40
    kern, st = _matmul(M, N, K, bias_relu=True)
    s = (Schedule().split(st, "i", 6).split(st, "j", 32).split(st, "j.i", 16)
         .reorder(st, ["i.o", "j.o", "k", "i.i", "j.i.o", "j.i.i"])
         .unroll(st, "i.i").unroll(st, "j.i.o").vectorize(st, "j.i.i").pack("B", 1, 32)
         .prefetch(st, "B", "k", distance))
    lk = lower(kern.normalize(), s, T.lanes_f32)
    hints = [x for r in lk.regions for x in walk_stmt(r.stmt) if isinstance(x, Prefetch)]
    text = "\n".join(str(r.stmt) for r in lk.regions)
    assert len(hints) == 1 and hints[0].buffer.name == "B", text
    # packed B is [j.o][k][32]: k + d is 32 * d elements on; j.i.o moves 16 (one line)
    assert "for j_i_o in 0..2 unroll:\n" in text and f"prefetch B[flat" in text
    assert f"{32 * distance}" in str(hints[0].offset), str(hints[0].offset)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    (out,) = run_kernel(kern, s, [a, b, bias])
    np.testing.assert_allclose(out, np.maximum(a @ b + bias, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kc", [8, 10, 64])
def test_k_blocked_accumulator_carries_partials(rng, kc):
    M, N, K = 9, 40, 70
    kern, st = _matmul(M, N, K, bias_relu=True)
    s = (Schedule().split(st, "k", kc).split(st, "j", 16)
         .reorder(st, ["k.o", "i", "j.o", "k.i", "j.i"]).vectorize(st, "j.i").cache_write(st, "j.o"))
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    (out,) = run_kernel(kern, s, [a, b, bias])
    np.testing.assert_allclose(out, np.maximum(a @ b + bias, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", [1, 3, 15, 16, 17, 45, 100])
@pytest.mark.parametrize("combiner,ref", [("sum", np.sum), ("max", np.max), ("min", np.min), ("prod", np.prod)])
def test_lane_parallel_reductions(rng, n, combiner, ref):
    X = placeholder((4, n), "float32", "X")
    r = reduce_axis(n, "r")
    Y = compute((4,), lambda i: reduce(combiner, X[i, r], [r]), "y", axis_names=["n"])
    x = (rng.standard_normal((4, n)) * (0.3 if combiner == "prod" else 2)).astype(np.float32) + \
        (1.0 if combiner == "prod" else 0.0)
    (out,) = run_kernel(Kernel("red", (X,), (Y.buffer,), [Y]), Schedule().vectorize("y", "r"), [x])
    np.testing.assert_allclose(out, ref(x, axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 45), (3, 16), (2, 7), (1, 1000)])
def test_softmax_with_compute_at(rng, shape):
    R, L = shape
    X = placeholder((R, L), "float32", "X")
    r1, r2 = reduce_axis(L, "r"), reduce_axis(L, "r2")
    MX = compute((R,), lambda i: reduce_max(X[i, r1], [r1]), "mx", axis_names=["n"])
    SM = compute((R,), lambda i: reduce_sum(call("exp", X[i, r2] - MX[i]), [r2]), "sm", axis_names=["n"])
    Y = compute((R, L), lambda i, j: call("exp", X[i, j] - MX[i]) / SM[i], "y", axis_names=["n", "c"])
    s = (Schedule().compute_at("mx", "y", "n").compute_at("sm", "y", "n")
         .vectorize("mx", "r").vectorize("sm", "r2").vectorize("y", "c").parallel("y", "n"))
    x = (rng.standard_normal((R, L)) * 5).astype(np.float32)
    for threads in (1, 2):
        (out,) = run_kernel(Kernel("softmax", (X,), (Y.buffer,), [MX, SM, Y]), s, [x], threads)
        ref = np.exp(x - x.max(1, keepdims=True))
        np.testing.assert_allclose(out, ref / ref.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_compute_at_window_of_a_padded_input(rng):
    # a 3-tap stencil over a zero-padded row: the pad stage computes 3 columns per output
    W = 19
    X = placeholder((4, W), "float32", "X")
    P = compute((4, W + 2), lambda i, j: select((j >= 1) & (j <= W), X[i, j - 1], const(0.0, "float32")),
                "pad", axis_names=["pi", "pj"])
    r = reduce_axis(3, "r")
    Y = compute((4, W), lambda i, j: reduce_sum(P[i, j + r], [r]), "y", axis_names=["i", "j"])
    s = Schedule().compute_at("pad", "y", "j")
    kern = Kernel("stencil", (X,), (Y.buffer,), [P, Y], materialize=frozenset(["pad"]))
    x = rng.standard_normal((4, W)).astype(np.float32)
    (out,) = run_kernel(kern, s, [x])
    xp = np.pad(x, ((0, 0), (1, 1)))
    np.testing.assert_allclose(out, xp[:, :-2] + xp[:, 1:-1] + xp[:, 2:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule", ["fused_tail", "nested_split", "guarded"])
def test_elementwise_tails_guards_and_fusion(rng, schedule):
    X = placeholder((3, 5, 37), "float32", "X")
    B = placeholder((37,), "float32", "B")
    Y = compute((3, 5, 37), lambda a, b, c: X[a, b, c] * 2.0 + B[c], "y", axis_names=["a", "b", "c"])
    s = Schedule()
    if schedule == "fused_tail":
        s = s.fuse("y", ["a", "b"]).split("y", "c", 16).vectorize("y", "c.i").parallel("y", "a@b")
    elif schedule == "nested_split":
        s = s.split("y", "c", 20).split("y", "c.i", 8).unroll("y", "c.i.o").vectorize("y", "c.i.i")
    else:
        # the inner part of a tail split is fused again: no partition possible, guards instead
        s = s.split("y", "c", 16).reorder("y", ["a", "c.o", "b", "c.i"]).fuse("y", ["b", "c.i"])
    x = rng.standard_normal((3, 5, 37)).astype(np.float32)
    b = rng.standard_normal(37).astype(np.float32)
    (out,) = run_kernel(Kernel("ew", (X, B), (Y.buffer,), [Y]), s, [x, b], threads=2)
    np.testing.assert_allclose(out, x * 2 + b, rtol=1e-6)


def test_strided_loads_become_gathers(rng):
    X = placeholder((40,), "float32", "X")
    Y = compute((13,), lambda i: X[i * 3 + 1] + X[39 - i], "y")
    x = rng.standard_normal(40).astype(np.float32)
    (out,) = run_kernel(Kernel("g", (X,), (Y.buffer,), [Y]), Schedule().vectorize("y", "i0"), [x])
    np.testing.assert_allclose(out, x[1:39:3] + x[39:26:-1], rtol=1e-6)


def test_data_dependent_index(rng):
    D = placeholder((10, 7), "float32", "D")
    I = placeholder((5,), "int64", "I")
    Y = compute((5, 7), lambda i, j: D[I[i], j], "y")
    d = rng.standard_normal((10, 7)).astype(np.float32)
    idx = np.array([3, 0, 9, 3, 5], np.int64)
    (out,) = run_kernel(Kernel("gather", (D, I), (Y.buffer,), [Y]), Schedule().vectorize("y", "i1"), [d, idx])
    np.testing.assert_array_equal(out, d[idx])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64"])
def test_integer_arithmetic_and_casts(rng, dtype):
    X = placeholder((3, 21), dtype, "X")
    Y = compute((3, 21), lambda i, j: cast("float32", X[i, j]) * 0.5, "y")
    Z = compute((3, 21), lambda i, j: (X[i, j] // 3) + (X[i, j] % 3), "z")
    info = np.iinfo(dtype)
    x = rng.integers(max(info.min, -100), min(info.max, 100), (3, 21)).astype(dtype)
    kern = Kernel("ints", (X,), (Y.buffer, Z.buffer), [Y, Z])
    s = Schedule().vectorize("y", "i1").vectorize("z", "i1")
    y, z = run_kernel(kern, s, [x])
    np.testing.assert_array_equal(y, x.astype(np.float32) * 0.5)
    np.testing.assert_array_equal(z, (x // 3) + (x % 3))   # Python (floor) semantics


def test_bool_outputs(rng):
    X = placeholder((29,), "float32", "X")
    Y = compute((29,), lambda i: X[i] > 0.0, "y")
    x = rng.standard_normal(29).astype(np.float32)
    (out,) = run_kernel(Kernel("b", (X,), (Y.buffer,), [Y]), Schedule().vectorize("y", "i0"), [x])
    np.testing.assert_array_equal(out, x > 0)


def test_epilogue_merges_into_the_reduction():
    kern, _ = _matmul(4, 4, 4, bias_relu=True)
    norm = kern.normalize()
    assert len(norm.stages) == 1 and norm.stages[0].epilogue is not None


def test_kernel_key_ignores_names_but_not_structure():
    k1, _ = _matmul(8, 8, 8)
    k2, _ = _matmul(8, 8, 8)
    k3, _ = _matmul(8, 8, 9)
    assert k1.key() == k2.key() != k3.key()


@pytest.mark.parametrize("steps,msg", [
    ([("split", "mm", "zz", 4)], "no axis 'zz'"),
    ([("vectorize", "mm", "i")], "innermost"),
    ([("parallel", "mm", "k")], "outermost"),
    ([("fuse", "mm", ["i", "k"])], "adjacent"),
    ([("inline", "mm")], "reduction"),
    ([("split", "nope", "i", 2)], "no schedulable stage"),
    ([("prefetch", "mm", "C", "k", 8)], "does not read 'C'"),
    ([("prefetch", "mm", "B", "k", 0)], "distance must be >= 1"),
    ([("prefetch", "mm", "B", "k", 8), ("split", "mm", "k", 4)], "no loop 'k'"),
])
def test_illegal_steps_are_clear_errors(steps, msg):
    kern, _ = _matmul(8, 8, 8)
    s = Schedule()
    for st in steps:
        s = s.then(*st)
    with pytest.raises(ScheduleError, match=msg):
        lower(kern, s, 16)


def test_schedule_round_trips_through_json():
    s = Schedule().split("mm", "i", 4).reorder("mm", ["i.o", "k", "i.i"]).pack("B", 1, 16)
    assert Schedule.from_json(s.to_json()) == s
