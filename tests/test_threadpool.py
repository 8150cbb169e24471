"""Tests of the native thread pool emitted by mlc.codegen.threadpool.

Each test module is JIT-compiled once (pool + a test kernel + small IR drivers) and called
through ctypes.  Wall times are printed (run with -s), never asserted.
"""

from __future__ import annotations

import ctypes
import statistics
import threading
import time

import llvmlite.binding as llvm
import llvmlite.ir as ir
import pytest

from mlc.codegen.threadpool import MAX_THREADS, add_thread_pool

I32, I64, PTR, VOID = ir.IntType(32), ir.IntType(64), ir.PointerType(), ir.VoidType()
KERNEL_TYPE = ir.FunctionType(VOID, [PTR, I64, I64])
LOG_CAP = 4096


class Ctx(ctypes.Structure):
    """The test kernel's closure."""
    _fields_ = [
        ("counts", ctypes.POINTER(ctypes.c_int32)),  # counts[j] += 1 for each j (or NULL)
        ("log", ctypes.POINTER(ctypes.c_int64)),     # (begin, end, pthread_self) per call
        ("ncalls", ctypes.c_int64),                  # number of kernel calls
        ("total", ctypes.c_int64),                   # sum of chunk lengths
    ]


# --------------------------------------------------------------------------- IR helpers
def _loop(b: ir.IRBuilder, start, end, body, name: str) -> None:
    """for (i = start; i < end; ++i) body(b, i) -- all i64."""
    fn = b.function
    head, loop, out = (fn.append_basic_block(f"{name}.{s}") for s in ("head", "body", "end"))
    pre = b.block
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, end), loop, out)
    b.position_at_end(loop)
    body(b, i)
    i.add_incoming(b.add(i, ir.Constant(I64, 1)), b.block)
    b.branch(head)
    b.position_at_end(out)


def _now_ns(m: ir.Module, b: ir.IRBuilder):
    cg = m.globals.get("clock_gettime") or ir.Function(m, ir.FunctionType(I32, [I32, PTR]), "clock_gettime")
    ts = b.alloca(ir.ArrayType(I64, 2))
    b.call(cg, [ir.Constant(I32, 1), ts])
    sec = b.load(b.gep(ts, [ir.Constant(I32, 0), ir.Constant(I32, 0)]), typ=I64)
    nsec = b.load(b.gep(ts, [ir.Constant(I32, 0), ir.Constant(I32, 1)]), typ=I64)
    return b.add(b.mul(sec, ir.Constant(I64, 1_000_000_000)), nsec)


def build_test_module(name: str = "pooltest", **pool_kwargs) -> ir.Module:
    m = ir.Module(name=name)
    # Kernels may be emitted against a declaration of the pool before the pool is added.
    pfor = ir.Function(m, ir.FunctionType(VOID, [PTR, PTR, I64]), "mlc_parallel_for")
    add_thread_pool(m, **pool_kwargs)
    add_thread_pool(m, **pool_kwargs)  # a second call is a no-op
    assert m.globals["mlc_parallel_for"] is pfor and not pfor.is_declaration
    self_fn = ir.Function(m, ir.FunctionType(I64, []), "pthread_self")
    pause = m.globals["llvm.x86.sse2.pause"]
    c = lambda v: ir.Constant(I64, v)  # noqa: E731
    c32 = lambda v: ir.Constant(I32, v)  # noqa: E731

    # void test_kernel(Ctx *ctx, i64 begin, i64 end)
    k = ir.Function(m, KERNEL_TYPE, "test_kernel")
    ctx, begin, end = k.args
    b = ir.IRBuilder(k.append_basic_block("entry"))
    field = lambda i: b.gep(ctx, [c32(0), c32(i)], source_etype=ir.LiteralStructType([PTR, PTR, I64, I64]))  # noqa: E731
    slot = b.atomic_rmw("add", field(2), c(1), "monotonic")
    b.atomic_rmw("add", field(3), b.sub(end, begin), "monotonic")
    with b.if_then(b.icmp_signed("<", slot, c(LOG_CAP))):
        log = b.load(field(1), typ=PTR)
        base = b.mul(slot, c(3))
        for off, v in enumerate((begin, end, b.call(self_fn, []))):
            b.store(v, b.gep(log, [b.add(base, c(off))], source_etype=I64))
    counts = b.load(field(0), typ=PTR)
    with b.if_then(b.icmp_unsigned("!=", counts, ir.Constant(PTR, None))):
        _loop(b, begin, end, lambda bb, j: bb.atomic_rmw(
            "add", bb.gep(counts, [j], source_etype=I32), c32(1), "monotonic"), "j")
    b.ret_void()

    # void nested_kernel(Ctx *inner, i64 begin, i64 end): each chunk calls
    # parallel_for(test_kernel, inner, 4) -- the pool is busy, so that runs serially
    nk = ir.Function(m, KERNEL_TYPE, "nested_kernel")
    b = ir.IRBuilder(nk.append_basic_block("entry"))
    b.call(pfor, [k, nk.args[0], c(4)])
    b.ret_void()

    # void nop_kernel(ptr, i64, i64): for dispatch-overhead measurement
    nop = ir.Function(m, KERNEL_TYPE, "nop_kernel")
    ir.IRBuilder(nop.append_basic_block("entry")).ret_void()

    # i64 bench(ptr fn, ptr ctx, i64 n, i64 reps): ns for `reps` back-to-back dispatches
    f = ir.Function(m, ir.FunctionType(I64, [PTR, PTR, I64, I64]), "bench")
    fn, cx, n, reps = f.args
    b = ir.IRBuilder(f.append_basic_block("entry"))
    t0 = _now_ns(m, b)
    _loop(b, c(0), reps, lambda bb, i: bb.call(pfor, [fn, cx, n]), "r")
    b.ret(b.sub(_now_ns(m, b), t0))

    # void stress(ptr fn, ptr ctx, i64 n, i64 reps, i64 pauses): dispatch `reps` times,
    # idling between dispatches for (r % 8) * pauses pause instructions, so that workers
    # are caught spinning, falling asleep and sleeping.
    f = ir.Function(m, ir.FunctionType(VOID, [PTR, PTR, I64, I64, I64]), "stress")
    fn, cx, n, reps, pauses = f.args
    b = ir.IRBuilder(f.append_basic_block("entry"))

    def one(bb, r):
        bb.call(pfor, [fn, cx, n])
        idle = bb.mul(bb.urem(r, c(8)), pauses)
        _loop(bb, c(0), idle, lambda b2, _: b2.call(pause, []), "p")
    _loop(b, c(0), reps, one, "r")
    b.ret_void()
    return m


# --------------------------------------------------------------------------- JIT
def _target_machine():
    """A fresh host target machine (the MCJIT engine takes ownership of the one it is
    given and frees it with itself, so it must not be shared between engines)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, reloc="pic")


class Jitted:
    """A JIT-compiled module; `shutdown()` the pool before dropping it."""

    def __init__(self, module: ir.Module):
        tm = _target_machine()
        module.triple = llvm.get_process_triple()
        module.data_layout = str(tm.target_data)
        mod = llvm.parse_assembly(str(module))
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        obj = tm.emit_object(mod)
        self.ee = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        self.ee.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.ee.finalize_object()
        addr = self.ee.get_function_address
        self.parallel_for = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
            addr("mlc_parallel_for"))
        self.set_num_threads = ctypes.CFUNCTYPE(None, ctypes.c_int32)(addr("mlc_set_num_threads"))
        self.get_num_threads = ctypes.CFUNCTYPE(ctypes.c_int32)(addr("mlc_get_num_threads"))
        self.shutdown = ctypes.CFUNCTYPE(None)(addr("mlc_shutdown"))
        self.bench = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.c_int64, ctypes.c_int64)(addr("bench"))
        self.stress = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                       ctypes.c_int64, ctypes.c_int64)(addr("stress"))
        self.kernel = addr("test_kernel")
        self.nested = addr("nested_kernel")
        self.nop = addr("nop_kernel")

    def run(self, n: int, with_counts: bool = True):
        """parallel_for(test_kernel, ctx, n); returns (counts or None, sorted log, ctx)."""
        counts, log, ctx = make_ctx(n if with_counts else 0)
        self.parallel_for(self.kernel, ctypes.addressof(ctx), n)
        return counts, calls_of(log, ctx), ctx


def make_ctx(ncounts: int):
    """A Ctx with `ncounts` counters (none: NULL) and a call log; keep all three alive."""
    counts = (ctypes.c_int32 * ncounts)() if ncounts > 0 else None
    log = (ctypes.c_int64 * (3 * LOG_CAP))()
    ctx = Ctx(ctypes.cast(counts, ctypes.POINTER(ctypes.c_int32)) if counts is not None else None,
              ctypes.cast(log, ctypes.POINTER(ctypes.c_int64)), 0, 0)
    return counts, log, ctx


def calls_of(log, ctx):
    """The logged kernel calls as sorted (begin, end, thread id) tuples."""
    return sorted((log[3 * i], log[3 * i + 1], log[3 * i + 2])
                  for i in range(min(ctx.ncalls, LOG_CAP)))


@pytest.fixture(scope="module")
def pool():
    jit = Jitted(build_test_module())
    yield jit
    jit.shutdown()


def _expected_chunks(n: int, k: int):
    q, r = divmod(n, k)
    bounds = [i * q + min(i, r) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


def _check(jit: Jitted, n: int, threads: int, with_counts: bool = True):
    jit.set_num_threads(threads)
    counts, calls, ctx = jit.run(n, with_counts)
    if n <= 0:
        assert calls == [] and ctx.ncalls == 0
        return
    k = min(threads, n)
    assert ctx.ncalls == k
    assert [(b, e) for b, e, _ in calls] == _expected_chunks(n, k)
    assert ctx.total == n
    # chunk 0 runs on the calling thread, every other chunk on a distinct worker
    tids = [t for _, _, t in calls]
    assert tids[0] == threading.get_ident()
    assert len(set(tids)) == k
    if with_counts:
        assert all(v == 1 for v in counts[:n]), f"n={n} threads={threads}"


# --------------------------------------------------------------------------- tests
def test_pool_ir_is_self_contained():
    """The pool needs only libc/libpthread, keeps its state internal, uses no TLS, and
    exports exactly the four API functions."""
    m = ir.Module(name="alone")
    add_thread_pool(m)
    mod = llvm.parse_assembly(str(m))
    mod.verify()
    undefined = {f.name for f in mod.functions if f.is_declaration and not f.name.startswith("llvm.")}
    assert undefined <= {"pthread_create", "pthread_join", "syscall", "clock_gettime", "sched_yield"}
    exported = {f.name for f in mod.functions if not f.is_declaration and f.linkage.name == "external"}
    assert exported == {"mlc_parallel_for", "mlc_set_num_threads", "mlc_get_num_threads", "mlc_shutdown"}
    for g in mod.global_variables:
        assert g.linkage.name == "internal", g.name
        assert "thread_local" not in str(g), g.name


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 64, 97, 1000, 65_537])
def test_every_index_once(pool, n, threads):
    _check(pool, n, threads)


def test_large_and_negative_n(pool):
    _check(pool, 1_000_003, 2)
    _check(pool, 10**12, 4, with_counts=False)  # chunk bounds only
    _check(pool, 2**62 + 3, 3, with_counts=False)
    pool.set_num_threads(2)
    _, calls, ctx = pool.run(-5, with_counts=False)
    assert ctx.ncalls == 0


def test_num_threads_setting(pool):
    assert MAX_THREADS >= 4
    for t in (1, 2, 4, 3, 1, 2):
        pool.set_num_threads(t)
        assert pool.get_num_threads() == t
        _check(pool, 100, t)
    pool.set_num_threads(0)
    assert pool.get_num_threads() == 1
    pool.set_num_threads(-3)
    assert pool.get_num_threads() == 1
    pool.set_num_threads(10**6)
    assert pool.get_num_threads() == MAX_THREADS
    pool.set_num_threads(2)


def test_default_is_one_thread():
    jit = Jitted(build_test_module("fresh"))
    try:
        assert jit.get_num_threads() == 1
        _check(jit, 10, 1)
        jit.shutdown()  # nothing started: a no-op
    finally:
        jit.shutdown()


def test_shutdown_and_restart(pool):
    for _ in range(3):
        _check(pool, 50, 3)
        pool.shutdown()
        pool.shutdown()  # idempotent
        _check(pool, 50, 4)  # restarts workers
        _check(pool, 51, 2)
    pool.shutdown()


def test_workers_fall_asleep_and_wake(pool):
    pool.set_num_threads(4)
    for _ in range(3):
        _check(pool, 100, 4)
        time.sleep(0.002)  # > spin budget: workers are asleep on the futex
    for _ in range(3):
        _check(pool, 100, 2)  # workers 2 and 3 are not needed: left asleep
        time.sleep(0.001)
    _check(pool, 100, 4)


def test_two_modules_coexist(pool):
    other = Jitted(build_test_module("other"))
    try:
        pool.set_num_threads(2)
        other.set_num_threads(3)
        assert pool.get_num_threads() == 2 and other.get_num_threads() == 3
        for n in (10, 1, 33, 1000):
            _check(pool, n, 2)
            _check(other, n, 3)
        # each pool runs its chunks on its own workers
        mine = {t for _, _, t in pool.run(10)[1]} - {threading.get_ident()}
        theirs = {t for _, _, t in other.run(10)[1]} - {threading.get_ident()}
        assert len(mine) == 1 and len(theirs) == 2 and not mine & theirs
        # concurrent use from two application threads, one pool each
        errors = []

        def hammer(jit, threads):
            try:
                jit.set_num_threads(threads)
                for _ in range(200):
                    counts, calls, ctx = jit.run(64)
                    assert ctx.ncalls == threads and all(v == 1 for v in counts)
            except Exception as exc:  # pragma: no cover
                errors.append(exc)
        ts = [threading.Thread(target=hammer, args=(pool, 2)),
              threading.Thread(target=hammer, args=(other, 2))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors
        other.shutdown()
        _check(pool, 100, 2)  # unaffected by the other pool's shutdown
    finally:
        other.shutdown()


def test_nested_parallel_for_runs_serially(pool):
    pool.set_num_threads(3)
    counts, log, inner = make_ctx(4)
    pool.parallel_for(pool.nested, ctypes.addressof(inner), 30)  # 3 chunks of 10
    calls = calls_of(log, inner)
    assert inner.ncalls == 3 and [(b, e) for b, e, _ in calls] == [(0, 4)] * 3
    assert list(counts) == [3, 3, 3, 3]
    assert len({t for _, _, t in calls}) == 3  # each ran on the thread of its outer chunk
    _check(pool, 30, 3)  # the pool is free again


def test_concurrent_callers_fall_back_to_serial(pool):
    """Two application threads calling one pool: one of them may find it busy and run
    serially; either way every index is processed exactly once."""
    pool.set_num_threads(2)
    errors = []

    def hammer():
        try:
            for _ in range(200):
                counts, _, ctx = pool.run(50)
                assert ctx.ncalls in (1, 2) and all(v == 1 for v in counts)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
    ts = [threading.Thread(target=hammer) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def _stress(jit: Jitted, n: int, threads: int, reps: int, pauses: int):
    jit.set_num_threads(threads)
    counts, log, ctx = make_ctx(n)
    t0 = time.perf_counter()
    jit.stress(jit.kernel, ctypes.addressof(ctx), n, reps, pauses)
    dt = time.perf_counter() - t0
    assert ctx.ncalls == reps * min(threads, n)
    assert ctx.total == reps * n
    assert all(v == reps for v in counts)
    return dt


def test_stress_back_to_back(pool):
    dt = _stress(pool, 64, 2, 20_000, 0)
    print(f"\n20k back-to-back dispatches, 2 threads: {dt * 1e3:.1f} ms")
    dt = _stress(pool, 64, 4, 5_000, 0)
    print(f"5k back-to-back dispatches, 4 threads (oversubscribed): {dt * 1e3:.1f} ms")


def test_stress_sleep_wake_races():
    """A tiny spin budget (2 us) and idle gaps of 0..~7 x 100 pauses between dispatches:
    workers are constantly caught falling asleep, which is where wake-ups get lost."""
    jit = Jitted(build_test_module("sleepy", spin_ns=2_000))
    try:
        dt = _stress(jit, 16, 2, 10_000, 100)
        print(f"\n10k dispatches with sleep/wake races, 2 threads: {dt * 1e3:.1f} ms")
        dt = _stress(jit, 16, 3, 3_000, 100)
        print(f"3k dispatches with sleep/wake races, 3 threads: {dt * 1e3:.1f} ms")
    finally:
        jit.shutdown()


def measure_dispatch_overhead(jit: Jitted, threads: int) -> dict:
    """Dispatch overhead of parallel_for with an empty kernel, in microseconds: `warm` is
    the mean over back-to-back calls (workers spinning), `cold` the median of single calls
    made after the workers went to sleep (includes the futex wake-up)."""
    jit.set_num_threads(threads)
    n = 1024
    jit.bench(jit.nop, None, n, 1000)  # start workers, warm up
    warm = min(jit.bench(jit.nop, None, n, 20_000) / 20_000 for _ in range(3)) / 1e3
    cold = []
    for _ in range(15):
        time.sleep(0.003)
        cold.append(jit.bench(jit.nop, None, n, 1) / 1e3)
    return {"warm_us": warm, "cold_us": statistics.median(cold)}


def test_dispatch_overhead(pool):
    for threads in (1, 2):
        r = measure_dispatch_overhead(pool, threads)
        print(f"\ndispatch overhead, {threads} thread(s): warm {r['warm_us']:.3f} us, "
              f"after sleeping {r['cold_us']:.1f} us")
        assert r["warm_us"] > 0
