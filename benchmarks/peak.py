"""The FMA peak of one core: independent vector FMA chains, measured.

24 accumulators (more than FMA latency x pipes) each doing ``acc = acc * a + b`` in a
loop: no loads, no dependencies between chains.  flops = 2 x lanes x chains x iterations.
"""
from __future__ import annotations

import ctypes
import time

import llvmlite.ir as ir


def measure_peak_gflops(target=None, chains: int = 24, iters: int = 2_000_000) -> float:
    from mlc.codegen import llvm_util as U
    from mlc.codegen.jit import LoadedCode, compile_ir
    from mlc.target import Target
    target = target or Target.host()
    L = target.lanes_f32
    vt = ir.VectorType(U.F32, L)
    m = ir.Module()
    m.triple = target.triple
    fn = ir.Function(m, ir.FunctionType(U.F32, [U.I64, U.F32, U.F32]), name="fma_peak")
    fma = ir.Function(m, ir.FunctionType(vt, [vt] * 3), name=f"llvm.fma.v{L}f32")
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    a = U.splat(b, fn.args[1], L)
    k = U.splat(b, fn.args[2], L)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(U.I64)
    i.add_incoming(ir.Constant(U.I64, 0), entry)
    accs = []
    for c in range(chains):
        p = b.phi(vt)
        p.add_incoming(U.constant(vt, 1.0 + c * 1e-3), entry)
        accs.append(p)
    # (a and k come from the caller: nothing for LLVM to fold)
    new = [b.call(fma, [acc, a, k]) for acc in accs]
    for p, n in zip(accs, new):
        p.add_incoming(n, loop)
    nxt = b.add(i, ir.Constant(U.I64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, fn.args[0]), loop, done)
    b.position_at_end(done)
    s = new[0]
    for n in new[1:]:
        s = b.fadd(s, n)
    b.ret(b.extract_element(s, ir.Constant(U.I32, 0)))
    code = LoadedCode(compile_ir(str(m), target), target)
    f = code.function("fma_peak", ctypes.c_float, ctypes.c_int64, ctypes.c_float, ctypes.c_float)
    call = lambda n: f(n, 0.999999, 1e-6)
    call(10000)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        call(iters)
        dt = time.perf_counter() - t0
        best = max(best, 2 * L * chains * iters / dt / 1e9)
    code.close()
    return best


def main(args=None):
    g = measure_peak_gflops()
    print(f"FMA peak, one core: {g:.1f} GFLOP/s")
    return g
