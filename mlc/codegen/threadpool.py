"""A persistent native thread pool, emitted as LLVM IR into each compiled model.

Every compiled module carries its own pool (internal globals, so two models loaded in one
process never share or disturb each other's state), built only on libc/libpthread
(``pthread_create``, ``pthread_join``, ``syscall``, ``clock_gettime``, ``sched_yield``).
Nothing here depends on Python: the same object code runs under MCJIT and in a
standalone C-callable shared library.

Public functions defined by :func:`add_thread_pool`::

    void @mlc_parallel_for(ptr %fn, ptr %closure, i64 %n)
    void @mlc_set_num_threads(i32 %n)
    i32  @mlc_get_num_threads()
    void @mlc_shutdown()

Design
------
* **One slot per worker.**  Worker ``i`` (1 <= i < MAX_THREADS; the calling thread is
  "worker 0" and runs chunk 0) owns a cache line holding its *wake sequence* ``seq``
  (a 32-bit futex word), an ``asleep`` flag and its ``pthread_t``.  The dispatcher bumps
  ``seq`` of exactly the workers a job needs.  Workers that a job does not need (``n`` <
  num_threads, or num_threads was lowered) are never touched, never woken, and never read
  the job description -- so the dispatcher may overwrite it for the next job without a
  race, and an idle worker costs the hot path nothing once it sleeps.  Because the
  dispatcher waits for every worker it signalled before it can signal that worker again,
  ``seq`` is never more than one step ahead of what its worker has seen, so wrap-around
  is harmless.  (With one shared generation counter instead, an unneeded worker would
  have to read the job's thread count racing with the next job's dispatch.)
* **Publishing.**  The job (fn, closure, n, nchunks) is written with plain stores and
  published by the *release* store of each needed worker's ``seq``; the worker reads it
  after an *acquire* load of ``seq``.  The dispatcher does not touch the job again until
  all those workers have done a release increment of the ``done`` counter, which it
  reads with acquire, so the job description is data-race free.
* **Waiting (workers).**  A worker polls its ``seq`` with ``pause``; every 64 pauses it
  calls ``sched_yield`` (so a thread it shares a CPU with can run) and checks the clock.
  After ``spin_ns`` it announces ``asleep = 1`` and futex-waits on ``seq``.  The
  dispatcher makes a FUTEX_WAKE syscall only for a needed worker whose ``asleep`` flag is
  set, so with warm (spinning) workers a dispatch makes no system call.  No wake-up can
  be lost: the worker does ``asleep = 1; fence seq_cst; load seq`` and the dispatcher
  does ``store seq; fence seq_cst; load asleep`` -- at least one of them sees the other's
  store (Dekker), and the kernel re-checks ``seq`` under its futex lock before sleeping.
* **Waiting (caller).**  The calling thread runs chunk 0, then waits the same way on the
  ``done`` counter and finally futex-waits on it; the worker whose increment completes
  the job wakes it if it announced ``main_waiting`` (the same Dekker pairing, with
  seq_cst operations).
* **Re-entrancy.**  The pool is claimed with a ``busy`` flag (compare-and-swap).  A
  parallel_for issued while the pool is busy -- nested inside a kernel, or from a second
  application thread -- runs serially on its calling thread instead of corrupting the
  pool.  ``mlc_shutdown`` waits for the pool to be free; it must not be called from
  inside a parallel_for body.
* **Lifecycle.**  Workers are created lazily by the first parallel_for that needs them
  and persist.  ``mlc_shutdown`` sets ``stop``, bumps every worker's ``seq``, wakes and
  joins them, and resets the slots, so a later parallel_for starts fresh workers.  The
  pool does not survive ``fork()`` (the child would wait for workers that do not exist).

This module is x86-64 Linux specific (``llvm.x86.sse2.pause``, SYS_futex = 202).
"""

from __future__ import annotations

import llvmlite.ir as ir

__all__ = ["add_thread_pool", "CHUNK_FN_TYPE", "MAX_THREADS", "DEFAULT_SPIN_NS"]

#: Upper bound of mlc_set_num_threads (calling thread included); the worker slots are
#: statically allocated, one 64-byte cache line each.
MAX_THREADS = 256

#: How long an idle worker (and the caller waiting for workers) spins before it sleeps on
#: a futex.  Waking a sleeping worker costs ~40-60 us end to end on the 2-vCPU KVM dev
#: machine (futex wake, IPI to an idle vCPU, reschedule), against ~0.4 us for a dispatch
#: to a spinning worker.  Spinning for about twice the wake-up cost keeps back-to-back
#: operators of a model on the fast path, and bounds the CPU burnt per idle gap to a
#: small multiple of what sleeping at once would have cost.
DEFAULT_SPIN_NS = 100_000

# Linux x86-64 ABI constants.
_SYS_FUTEX = 202
_FUTEX_WAIT_PRIVATE = 128  # FUTEX_WAIT | FUTEX_PRIVATE_FLAG
_FUTEX_WAKE_PRIVATE = 129  # FUTEX_WAKE | FUTEX_PRIVATE_FLAG
_CLOCK_MONOTONIC = 1
_CACHE_LINE = 64
_PAUSES_PER_CHECK = 64

_VOID = ir.VoidType()
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_PTR = ir.PointerType()
# llvmlite's atomic builders check the pointee type, so pointers to the pool's i32 words
# are typed pointers on the Python side; LLVM sees plain `ptr`.
_PI32 = _I32.as_pointer()

#: Type of the chunk function given to mlc_parallel_for: void fn(ptr closure, i64 begin,
#: i64 end), called on [begin, end).
CHUNK_FN_TYPE = ir.FunctionType(_VOID, [_PTR, _I64, _I64])

_PUBLIC_TYPES = {
    "mlc_parallel_for": ir.FunctionType(_VOID, [_PTR, _PTR, _I64]),
    "mlc_set_num_threads": ir.FunctionType(_VOID, [_I32]),
    "mlc_get_num_threads": ir.FunctionType(_I32, []),
    "mlc_shutdown": ir.FunctionType(_VOID, []),
}

# The pool's state: three globals, each a whole number of cache lines so that state
# written by different threads never shares a line.  (type name, [(field, type)...])
_CTL = ("mlc_pool.Ctl", [  # written by the dispatcher (and rarely by the API calls)
    # the job description, written before the job is published
    ("fn", _PTR), ("closure", _PTR), ("n", _I64), ("nchunks", _I32),
    ("stop", _I32),         # set by mlc_shutdown: workers exit instead of running a job
    ("num_threads", _I32),  # mlc_set_num_threads
    ("num_workers", _I32),  # workers started (slots 1..num_workers)
    ("busy", _I32)])        # the pool is claimed by a parallel_for or mlc_shutdown
# (One global rather than a separate job struct: LLVM's GlobalOpt splits an internal
# struct global that is only loaded and stored into one global per field, which would
# lose the cache-line layout; the cmpxchg on `busy` keeps this one whole.)
_DONE = ("mlc_pool.Done", [  # incremented by workers, polled by the dispatcher
    ("count", _I32), ("main_waiting", _I32)])
_SLOT = ("mlc_pool.Slot", [  # one per worker
    ("seq", _I32), ("asleep", _I32), ("thread", _I64)])


def _c32(v: int) -> ir.Constant:
    return ir.Constant(_I32, v)


def _c64(v: int) -> ir.Constant:
    return ir.Constant(_I64, v)


def _null() -> ir.Constant:
    return ir.Constant(_PTR, None)


def add_thread_pool(module: ir.Module, *, spin_ns: int = DEFAULT_SPIN_NS) -> None:
    """Define the pool's globals and functions in `module` (internal globals, external
    functions):

    ``void @mlc_parallel_for(ptr %fn, ptr %closure, i64 %n)``
        ``fn`` has type ``void(ptr closure, i64 begin, i64 end)``.  Splits ``[0, n)`` into
        contiguous, balanced chunks (sizes differ by at most one, larger ones first), one
        per thread; the calling thread runs chunk 0 itself, and the call returns when all
        chunks are done.  ``n <= 0`` calls nothing.  With 1 thread or ``n == 1`` it calls
        ``fn(closure, 0, n)`` directly.  If ``n`` < num_threads only ``n`` threads get
        work.  A call made while the pool is busy (nested inside a chunk function, or
        from another application thread) runs ``fn(closure, 0, n)`` serially.
    ``void @mlc_set_num_threads(i32 %n)``
        Clamped to ``[1, MAX_THREADS]``; takes effect at the next parallel_for.  Default 1.
    ``i32 @mlc_get_num_threads()``
    ``void @mlc_shutdown()``
        Stops and joins all workers; idempotent; a later parallel_for restarts the pool.
        Must be called before the code is unloaded, and not from inside a chunk function.

    Declarations of these functions already in the module (kernels emitted earlier that
    call ``@mlc_parallel_for``) are filled in; a second call on the same module is a
    no-op.  ``spin_ns`` is how long idle workers, and the caller waiting for workers,
    spin before sleeping on a futex.
    """
    existing = module.globals.get("mlc_parallel_for")
    if isinstance(existing, ir.Function) and not existing.is_declaration:
        return
    if spin_ns < 0:
        raise ValueError(f"spin_ns must be >= 0, got {spin_ns}")
    _PoolEmitter(module, spin_ns).emit()


class _State:
    """One of the pool's globals: an identified struct padded to whole cache lines, plus
    field access by name."""

    def __init__(self, module: ir.Module, gname: str, spec, count: int | None = None,
                 init: dict[str, int] | None = None):
        tname, fields = spec
        self.index = {name: i for i, (name, _) in enumerate(fields)}
        types = [t for _, t in fields]
        # Fields are listed largest first, so there is no padding between them.
        used = sum(8 if isinstance(t, ir.PointerType) else t.width // 8 for t in types)
        types.append(ir.ArrayType(_I8, -used % _CACHE_LINE))
        self.type = module.context.get_identified_type(tname)
        if self.type.is_opaque:
            self.type.set_body(*types)
        elif list(self.type.elements) != types:  # modules may share an ir.Context
            raise ValueError(f"type {tname!r} already exists with another layout")
        gtype = self.type if count is None else ir.ArrayType(self.type, count)
        if gname in module.globals:
            raise ValueError(f"module already defines {gname!r}")
        self.gv = ir.GlobalVariable(module, gtype, gname)
        self.gv.linkage = "internal"
        if init:  # a scalar struct with some non-zero integer fields
            self.gv.initializer = ir.Constant(self.type, [
                ir.Constant(t, init.get(name)) for name, t in fields + [("pad", types[-1])]])
        else:
            self.gv.initializer = ir.Constant(gtype, None)
        self.gv.align = _CACHE_LINE
        self.is_array = count is not None

    def field(self, b: ir.IRBuilder, name: str, element: ir.Value | None = None) -> ir.Value:
        idx = [_c32(0)] + ([element] if self.is_array else []) + [_c32(self.index[name])]
        return b.gep(self.gv, idx, inbounds=True, name=f"{name}.p")


class _PoolEmitter:
    """Emits the pool into one module: one method per IR function."""

    def __init__(self, module: ir.Module, spin_ns: int):
        self.m = module
        self.spin_ns = spin_ns

    # ----------------------------------------------------------------- helpers
    def _extern(self, name: str, fnty: ir.FunctionType) -> ir.Function:
        """Declare a libc function, reusing an existing declaration of the same type."""
        fn = self.m.globals.get(name)
        if fn is None:
            return ir.Function(self.m, fnty, name)
        if not isinstance(fn, ir.Function) or fn.function_type != fnty:
            raise ValueError(f"module declares {name!r} with an incompatible type")
        return fn

    def _internal(self, name: str, fnty: ir.FunctionType, argnames: tuple[str, ...],
                  *attrs: str) -> tuple[ir.Function, ir.IRBuilder]:
        if name in self.m.globals:
            raise ValueError(f"module already defines {name!r}")
        fn = ir.Function(self.m, fnty, name)
        fn.linkage = "internal"
        return self._start(fn, argnames, attrs)

    def _public(self, name: str, argnames: tuple[str, ...]) -> tuple[ir.Function, ir.IRBuilder]:
        fnty = _PUBLIC_TYPES[name]
        fn = self.m.globals.get(name)
        if fn is None:
            fn = ir.Function(self.m, fnty, name)
        elif not isinstance(fn, ir.Function) or fn.function_type != fnty or not fn.is_declaration:
            raise ValueError(f"module already has an incompatible {name!r}")
        return self._start(fn, argnames, ())

    @staticmethod
    def _start(fn: ir.Function, argnames, attrs) -> tuple[ir.Function, ir.IRBuilder]:
        for arg, nm in zip(fn.args, argnames):
            arg.name = nm
        fn.attributes.add("nounwind")
        for a in attrs:
            fn.attributes.add(a)
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    @staticmethod
    def _blocks(b: ir.IRBuilder, *names: str) -> list[ir.Block]:
        return [b.function.append_basic_block(n) for n in names]

    @staticmethod
    def _sink(*blocks: ir.Block) -> None:
        """Move blocks to the end of their function (IR reads top to bottom)."""
        for blk in blocks:
            fn = blk.parent
            fn.blocks.remove(blk)
            fn.blocks.append(blk)

    def _for_workers(self, b: ir.IRBuilder, end: ir.Value, body, name: str) -> None:
        """Emit ``for (i64 i = 1; i < end; ++i) body(b, i)``: over worker slots 1..end-1."""
        pre = b.block
        head, loop = self._blocks(b, f"{name}.head", f"{name}.body")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(_I64, name=f"{name}.i")
        i.add_incoming(_c64(1), pre)
        more = b.icmp_signed("<", i, end, name=f"{name}.more")
        b.position_at_end(loop)
        body(b, i)
        i.add_incoming(b.add(i, _c64(1), name=f"{name}.next"), b.block)
        b.branch(head)
        out, = self._blocks(b, f"{name}.end")  # created last so the body's blocks precede it
        b.position_at_end(head)
        b.cbranch(more, loop, out)
        b.position_at_end(out)

    def _bump_seq(self, b: ir.IRBuilder, worker: ir.Value) -> None:
        """seq[worker] += 1 with release order (only the dispatcher writes seq, so a load
        and a store suffice): publishes everything written before it to that worker."""
        p = self.slots.field(b, "seq", worker)
        s = b.load_atomic(p, "monotonic", 4, name="seq", typ=_I32)
        b.store_atomic(b.add(s, _c32(1), name="seq.next"), p, "release", 4)

    # ----------------------------------------------------------------- emission
    def emit(self) -> None:
        self._declare_state()
        self._declare_externs()
        self._emit_now_ns()
        self._emit_futex()
        self._emit_chunk_begin()
        self._emit_run_chunk()
        self._emit_wait_for_job()
        self._emit_signal_done()
        self._emit_worker_main()
        self._emit_start_workers()
        self._emit_wait_done()
        self._emit_parallel_for()
        self._emit_num_threads()
        self._emit_shutdown()

    def _declare_state(self) -> None:
        # num_threads starts at 1: parallel_for runs serially until told otherwise.
        self.ctl = _State(self.m, "mlc_pool.ctl", _CTL, init={"num_threads": 1})
        self.done = _State(self.m, "mlc_pool.done", _DONE)
        # Slot 0 is unused: the calling thread runs chunk 0.
        self.slots = _State(self.m, "mlc_pool.slots", _SLOT, count=MAX_THREADS)

    def _declare_externs(self) -> None:
        self.pthread_create = self._extern(
            "pthread_create", ir.FunctionType(_I32, [_PTR, _PTR, _PTR, _PTR]))
        self.pthread_join = self._extern("pthread_join", ir.FunctionType(_I32, [_I64, _PTR]))
        self.syscall = self._extern("syscall", ir.FunctionType(_I64, [_I64], var_arg=True))
        self.clock_gettime = self._extern("clock_gettime", ir.FunctionType(_I32, [_I32, _PTR]))
        self.sched_yield = self._extern("sched_yield", ir.FunctionType(_I32, []))
        # The x86 spin-wait hint: frees pipeline resources for the sibling hyperthread and
        # avoids the memory-order mis-speculation flush when the polled line changes.
        self.pause = self._extern("llvm.x86.sse2.pause", ir.FunctionType(_VOID, []))

    def _emit_now_ns(self) -> None:
        """i64 now_ns(): CLOCK_MONOTONIC in ns (a vDSO call on the usual clock sources).
        Only used to bound spinning, never on the dispatch fast path."""
        fn, b = self._internal("mlc_pool.now_ns", ir.FunctionType(_I64, []), ())
        ts = b.alloca(ir.LiteralStructType([_I64, _I64]), name="timespec")
        b.call(self.clock_gettime, [_c32(_CLOCK_MONOTONIC), ts])
        sec = b.load(b.gep(ts, [_c32(0), _c32(0)], inbounds=True), name="sec", typ=_I64)
        nsec = b.load(b.gep(ts, [_c32(0), _c32(1)], inbounds=True), name="nsec", typ=_I64)
        b.ret(b.add(b.mul(sec, _c64(1_000_000_000)), nsec, name="ns"))
        self.now_ns = fn

    def _emit_futex(self) -> None:
        """futex_wait(addr, expected): sleep while *addr == expected.  The kernel checks
        this under its lock, so a change made before the call is never slept through.
        Spurious returns (EINTR, EAGAIN) are fine: every caller re-checks in a loop.
        futex_wake(addr, count): wake up to `count` threads sleeping on addr."""
        fn, b = self._internal("mlc_pool.futex_wait", ir.FunctionType(_VOID, [_PI32, _I32]),
                               ("addr", "expected"), "noinline", "cold")
        b.call(self.syscall, [_c64(_SYS_FUTEX), fn.args[0], _c64(_FUTEX_WAIT_PRIVATE),
                              b.zext(fn.args[1], _I64, name="val"), _null()])  # no timeout
        b.ret_void()
        self.futex_wait = fn

        fn, b = self._internal("mlc_pool.futex_wake", ir.FunctionType(_VOID, [_PI32, _I32]),
                               ("addr", "count"), "noinline", "cold")
        b.call(self.syscall, [_c64(_SYS_FUTEX), fn.args[0], _c64(_FUTEX_WAKE_PRIVATE),
                              b.zext(fn.args[1], _I64, name="val")])
        b.ret_void()
        self.futex_wake = fn

    def _emit_chunk_begin(self) -> None:
        """i64 chunk_begin(n, k, i) = i*(n/k) + min(i, n%k): chunk i of k balanced contiguous
        chunks of [0, n) is [chunk_begin(i), chunk_begin(i+1)); the first n%k chunks get
        one extra element.  No overflow: the result is at most n."""
        fn, b = self._internal("mlc_pool.chunk_begin", ir.FunctionType(_I64, [_I64, _I64, _I64]),
                               ("n", "k", "i"), "alwaysinline")
        n, k, i = fn.args
        q = b.udiv(n, k, name="q")
        r = b.urem(n, k, name="r")
        extra = b.select(b.icmp_unsigned("<", i, r), i, r, name="extra")
        b.ret(b.add(b.mul(i, q), extra, name="begin"))
        self.chunk_begin = fn

    def _emit_run_chunk(self) -> None:
        """void run_chunk(fn, closure, begin, end): the one place the chunk function is
        called.  (`fn` is declared as a typed function pointer only because llvmlite needs
        the callee's type to build an indirect call; LLVM sees plain `ptr`.)"""
        fn, b = self._internal("mlc_pool.run_chunk",
                               ir.FunctionType(_VOID, [CHUNK_FN_TYPE.as_pointer(), _PTR, _I64, _I64]),
                               ("fn", "closure", "begin", "end"), "alwaysinline")
        b.call(fn.args[0], fn.args[1:])
        b.ret_void()
        self.run_chunk = fn

    def _emit_spin(self, b: ir.IRBuilder, poll, name: str) -> tuple[ir.Block, ir.Block]:
        """Spin until poll(b) -- an i1 emitted once, evaluated every iteration -- is true,
        for at most spin_ns.  Returns (hit, timeout) blocks for the caller to fill in.

            poll:  if (poll()) goto hit;  pause;  if (++j < 64) goto poll;
            check: sched_yield();  now = now_ns();  t0 = t0 ? t0 : now;
                   if (now - t0 < spin_ns) { j = 0; goto poll; }  goto timeout;

        The clock is first read at the first check, ~64 pauses in, which keeps it (and
        the yield) off the fast path when the wait is short."""
        entry = b.block
        poll_blk, relax, check, hit, timeout = self._blocks(
            b, f"{name}.poll", f"{name}.pause", f"{name}.check", f"{name}.hit", f"{name}.timeout")
        b.branch(poll_blk)

        b.position_at_end(poll_blk)
        j = b.phi(_I32, name=f"{name}.j")
        t0 = b.phi(_I64, name=f"{name}.t0")
        j.add_incoming(_c32(0), entry)
        t0.add_incoming(_c64(0), entry)
        b.cbranch(poll(b), hit, relax)

        b.position_at_end(relax)
        b.call(self.pause, [])
        j1 = b.add(j, _c32(1), name=f"{name}.j1")
        j.add_incoming(j1, relax)
        t0.add_incoming(t0, relax)
        b.cbranch(b.icmp_unsigned("<", j1, _c32(_PAUSES_PER_CHECK)), poll_blk, check)

        # Every 64 pauses (~1-3 us): let another thread that is runnable on this CPU go
        # first, then check the budget.  Without the yield a spinner sharing a CPU with
        # the thread it waits for (oversubscription, or the scheduler placing a woken
        # worker next to the dispatcher) holds that CPU for its whole budget: on the
        # 2-core dev machine 4 threads took ~210 us per dispatch instead of ~4 us, and a
        # dispatch to sleeping workers often took 2 x spin_ns.  sched_yield returns at
        # once (~0.2 us) when nothing else wants the CPU.
        b.position_at_end(check)
        b.call(self.sched_yield, [])
        now = b.call(self.now_ns, [], name=f"{name}.now")
        start = b.select(b.icmp_unsigned("==", t0, _c64(0)), now, t0, name=f"{name}.start")
        elapsed = b.sub(now, start, name=f"{name}.elapsed")
        j.add_incoming(_c32(0), check)
        t0.add_incoming(start, check)
        b.cbranch(b.icmp_signed("<", elapsed, _c64(self.spin_ns)), poll_blk, timeout)
        return hit, timeout

    def _emit_wait_for_job(self) -> None:
        """i32 wait_for_job(ptr seq, ptr asleep, i32 seen): worker side.  Returns this
        worker's seq once it differs from `seen` (acquire: the job description written
        before it is visible).  Spins for spin_ns, then sleeps on the futex."""
        fn, b = self._internal("mlc_pool.wait_for_job",
                               ir.FunctionType(_I32, [_PI32, _PI32, _I32]),
                               ("seq", "asleep", "seen"))
        seq, asleep, seen = fn.args
        polled = []

        def changed(bb):
            polled.append(bb.load_atomic(seq, "acquire", 4, name="seq.now", typ=_I32))
            return bb.icmp_unsigned("!=", polled[0], seen, name="changed")

        hit, timeout = self._emit_spin(b, changed, "spin")
        b.position_at_end(hit)
        b.ret(polled[0])

        # Slow path.  Announce that we are going to sleep *before* the final check of seq;
        # the dispatcher bumps seq *before* reading `asleep`.  With a seq_cst fence on both
        # sides at least one of us sees the other's store: either we see the new seq and
        # do not sleep, or the dispatcher sees asleep == 1 and issues FUTEX_WAKE.
        b.position_at_end(timeout)
        b.store_atomic(_c32(1), asleep, "monotonic", 4)
        b.fence("seq_cst")
        check, sleep, woke = self._blocks(b, "sleep.check", "sleep", "woke")
        b.branch(check)
        b.position_at_end(check)
        v = b.load_atomic(seq, "acquire", 4, name="seq.after", typ=_I32)
        b.cbranch(b.icmp_unsigned("!=", v, seen), woke, sleep)
        b.position_at_end(sleep)
        b.call(self.futex_wait, [seq, seen])
        b.branch(check)
        b.position_at_end(woke)
        # If the dispatcher still reads the old 1, it merely makes one needless FUTEX_WAKE.
        b.store_atomic(_c32(0), asleep, "monotonic", 4)
        b.ret(v)
        self.wait_for_job = fn

    def _emit_signal_done(self) -> None:
        """void signal_done(i32 nworkers): a worker finished its chunk.  The release half of
        the increment publishes the chunk's writes to the dispatcher.  The worker whose
        increment completes the job wakes the dispatcher if it went to sleep (seq_cst
        RMW + load here against seq_cst store + load in wait_done: no lost wake-up)."""
        fn, b = self._internal("mlc_pool.signal_done", ir.FunctionType(_VOID, [_I32]),
                               ("nworkers",))
        count = self.done.field(b, "count")
        old = b.atomic_rmw("add", count, _c32(1), "seq_cst", name="old")
        last = b.icmp_unsigned("==", b.add(old, _c32(1), name="new"), fn.args[0], name="last")
        is_last, wake, out = self._blocks(b, "is_last", "wake", "out")
        b.cbranch(last, is_last, out)
        b.position_at_end(is_last)
        w = b.load_atomic(self.done.field(b, "main_waiting"), "seq_cst", 4, name="waiting", typ=_I32)
        b.cbranch(b.icmp_unsigned("!=", w, _c32(0)), wake, out)
        b.position_at_end(wake)
        b.call(self.futex_wake, [count, _c32(1)])
        b.branch(out)
        b.position_at_end(out)
        b.ret_void()
        self.signal_done = fn

    def _emit_worker_main(self) -> None:
        """ptr worker_main(ptr arg): thread entry; arg is the worker index (1-based).
        Loops: wait for this worker's seq to move; exit if stopping; else run chunk
        `index` of the published job and count it done."""
        fn, b = self._internal("mlc_pool.worker_main", ir.FunctionType(_PTR, [_PTR]), ("arg",))
        entry = b.block
        idx = b.ptrtoint(fn.args[0], _I64, name="index")
        seq = self.slots.field(b, "seq", idx)
        asleep = self.slots.field(b, "asleep", idx)
        loop, run, exit_ = self._blocks(b, "loop", "run", "exit")
        b.branch(loop)

        b.position_at_end(loop)
        # Slots start at seq == 0 (zero-initialised, and reset by shutdown after joining),
        # so a worker that starts late cannot miss the job it was created for.
        seen = b.phi(_I32, name="seen")
        seen.add_incoming(_c32(0), entry)
        now = b.call(self.wait_for_job, [seq, asleep, seen], name="seq.new")
        stop = b.load_atomic(self.ctl.field(b, "stop"), "monotonic", 4, name="stop", typ=_I32)
        b.cbranch(b.icmp_unsigned("!=", stop, _c32(0)), exit_, run)

        b.position_at_end(run)
        # Plain loads: ordered after the acquire of seq in wait_for_job, and the dispatcher
        # does not rewrite the job until this worker has signalled done.
        job_fn = b.load(self.ctl.field(b, "fn"), name="fn", typ=_PTR)
        closure = b.load(self.ctl.field(b, "closure"), name="closure", typ=_PTR)
        n = b.load(self.ctl.field(b, "n"), name="n", typ=_I64)
        k = b.load(self.ctl.field(b, "nchunks"), name="nchunks", typ=_I32)
        k64 = b.zext(k, _I64, name="k")
        begin = b.call(self.chunk_begin, [n, k64, idx], name="begin")
        end = b.call(self.chunk_begin, [n, k64, b.add(idx, _c64(1))], name="end")
        b.call(self.run_chunk, [job_fn, closure, begin, end])
        b.call(self.signal_done, [b.sub(k, _c32(1), name="nworkers")])
        seen.add_incoming(now, b.block)
        b.branch(loop)

        b.position_at_end(exit_)
        b.ret(_null())
        self.worker_main = fn

    def _emit_start_workers(self) -> None:
        """i32 start_workers(i32 want): make sure workers 1..want exist (called with the
        pool claimed).  Returns how many exist: fewer than `want` if pthread_create fails,
        in which case jobs simply use fewer threads."""
        fn, b = self._internal("mlc_pool.start_workers", ir.FunctionType(_I32, [_I32]),
                               ("want",), "noinline", "cold")
        want = fn.args[0]
        entry = b.block
        count_p = self.ctl.field(b, "num_workers")
        have0 = b.load(count_p, name="have0", typ=_I32)
        head, create, created, out = self._blocks(b, "head", "create", "created", "out")
        b.branch(head)

        b.position_at_end(head)
        have = b.phi(_I32, name="have")
        have.add_incoming(have0, entry)
        b.cbranch(b.icmp_signed("<", have, want), create, out)

        b.position_at_end(create)
        index = b.zext(b.add(have, _c32(1)), _I64, name="index")
        rc = b.call(self.pthread_create, [self.slots.field(b, "thread", index), _null(),
                                          self.worker_main, b.inttoptr(index, _PTR, name="arg")],
                    name="rc")
        b.cbranch(b.icmp_unsigned("==", rc, _c32(0)), created, out)

        b.position_at_end(created)
        have1 = b.add(have, _c32(1), name="have1")
        b.store(have1, count_p)
        have.add_incoming(have1, created)
        b.branch(head)

        b.position_at_end(out)
        b.ret(have)
        self.start_workers = fn

    def _emit_wait_done(self) -> None:
        """void wait_done(i32 target): the dispatcher waits until `target` workers have
        signalled done.  Spins for spin_ns, then sleeps on the done counter after
        announcing main_waiting (see signal_done)."""
        fn, b = self._internal("mlc_pool.wait_done", ir.FunctionType(_VOID, [_I32]), ("target",))
        target = fn.args[0]
        count = self.done.field(b, "count")

        def finished(bb):
            d = bb.load_atomic(count, "acquire", 4, name="done.now", typ=_I32)
            return bb.icmp_unsigned("==", d, target, name="finished")

        hit, timeout = self._emit_spin(b, finished, "spin")
        b.position_at_end(hit)
        b.ret_void()

        b.position_at_end(timeout)
        waiting = self.done.field(b, "main_waiting")
        b.store_atomic(_c32(1), waiting, "seq_cst", 4)
        check, sleep, woke = self._blocks(b, "sleep.check", "sleep", "woke")
        b.branch(check)
        b.position_at_end(check)
        d = b.load_atomic(count, "seq_cst", 4, name="done.after", typ=_I32)
        b.cbranch(b.icmp_unsigned("==", d, target), woke, sleep)
        b.position_at_end(sleep)
        b.call(self.futex_wait, [count, d])  # returns at once if another worker finished
        b.branch(check)
        b.position_at_end(woke)
        b.store_atomic(_c32(0), waiting, "monotonic", 4)
        b.ret_void()
        self.wait_done = fn

    def _emit_parallel_for(self) -> None:
        fn, b = self._public("mlc_parallel_for", ("fn", "closure", "n"))
        job_fn, closure, n = fn.args
        serial, release_serial, nothing = self._blocks(b, "serial", "release.serial", "nothing")

        # n <= 0: nothing to do.  Otherwise k = min(num_threads, n) threads get a chunk.
        sizing, = self._blocks(b, "sizing")
        b.cbranch(b.icmp_signed(">", n, _c64(0), name="positive"), sizing, nothing)
        b.position_at_end(sizing)
        nt = b.load_atomic(self.ctl.field(b, "num_threads"), "monotonic", 4,
                           name="num_threads", typ=_I32)
        nt64 = b.zext(nt, _I64, name="nt")
        k = b.select(b.icmp_unsigned("<", nt64, n), nt64, n, name="k")
        claim, = self._blocks(b, "claim")
        b.cbranch(b.icmp_unsigned("<=", k, _c64(1), name="one"), serial, claim)

        # Claim the pool.  If it is busy (a nested call from inside a chunk function, or a
        # call from another application thread) run the whole range on this thread.
        b.position_at_end(claim)
        busy = self.ctl.field(b, "busy")
        res = b.cmpxchg(busy, _c32(0), _c32(1), "acquire", "monotonic", name="claim")
        claimed, = self._blocks(b, "claimed")
        b.cbranch(b.extract_value(res, 1, name="won"), claimed, serial)

        # Workers 1..k-1 must exist; start missing ones (first use, or after shutdown).
        b.position_at_end(claimed)
        want = b.sub(b.trunc(k, _I32), _c32(1), name="want")
        have = b.load(self.ctl.field(b, "num_workers"), name="have", typ=_I32)
        start, sized = self._blocks(b, "start", "sized")
        b.cbranch(b.icmp_signed(">=", have, want, name="enough"), sized, start)
        b.position_at_end(start)
        started = b.call(self.start_workers, [want], name="started")
        b.branch(sized)
        b.position_at_end(sized)
        avail = b.phi(_I32, name="avail")
        avail.add_incoming(have, claimed)
        avail.add_incoming(started, start)
        # If thread creation failed, use the threads we have.
        threads = b.add(b.zext(avail, _I64), _c64(1), name="threads")
        k2 = b.select(b.icmp_unsigned("<", threads, k), threads, k, name="nchunks")
        dispatch, = self._blocks(b, "dispatch")
        b.cbranch(b.icmp_unsigned("<=", k2, _c64(1), name="alone"), release_serial, dispatch)

        # Describe the job: plain stores, published by the release stores of seq below.
        b.position_at_end(dispatch)
        nchunks = b.trunc(k2, _I32, name="nchunks32")
        b.store(job_fn, self.ctl.field(b, "fn"))
        b.store(closure, self.ctl.field(b, "closure"))
        b.store(n, self.ctl.field(b, "n"))
        b.store(nchunks, self.ctl.field(b, "nchunks"))
        b.store_atomic(_c32(0), self.done.field(b, "count"), "monotonic", 4)
        self._for_workers(b, k2, self._bump_seq, "publish")

        # Wake the needed workers that are asleep.  The fence pairs with the one in
        # wait_for_job: a worker either sees its new seq or we see its asleep flag.  With
        # warm workers no flag is set and no syscall is made.
        b.fence("seq_cst")

        def wake_if_asleep(bb, i):
            flag = bb.load_atomic(self.slots.field(bb, "asleep", i), "monotonic", 4,
                                  name="asleep", typ=_I32)
            wake, nxt = self._blocks(bb, "wake.one", "wake.skip")
            bb.cbranch(bb.icmp_unsigned("!=", flag, _c32(0)), wake, nxt)
            bb.position_at_end(wake)
            bb.call(self.futex_wake, [self.slots.field(bb, "seq", i), _c32(1)])
            bb.branch(nxt)
            bb.position_at_end(nxt)
        self._for_workers(b, k2, wake_if_asleep, "wake")

        # Chunk 0 runs on this thread; then wait for the workers and release the pool.
        end0 = b.call(self.chunk_begin, [n, k2, _c64(1)], name="end0")
        b.call(self.run_chunk, [job_fn, closure, _c64(0), end0])
        b.call(self.wait_done, [b.sub(nchunks, _c32(1), name="nworkers")])
        b.store_atomic(_c32(0), busy, "release", 4)
        b.ret_void()

        b.position_at_end(release_serial)
        b.store_atomic(_c32(0), busy, "release", 4)
        b.branch(serial)
        b.position_at_end(serial)
        b.call(self.run_chunk, [job_fn, closure, _c64(0), n])
        b.ret_void()
        b.position_at_end(nothing)
        b.ret_void()
        self._sink(release_serial, serial, nothing)

    def _emit_num_threads(self) -> None:
        fn, b = self._public("mlc_set_num_threads", ("n",))
        n = fn.args[0]
        lo = b.select(b.icmp_signed("<", n, _c32(1)), _c32(1), n, name="at_least_1")
        clamped = b.select(b.icmp_signed(">", lo, _c32(MAX_THREADS)), _c32(MAX_THREADS), lo,
                           name="clamped")
        b.store_atomic(clamped, self.ctl.field(b, "num_threads"), "monotonic", 4)
        b.ret_void()

        fn, b = self._public("mlc_get_num_threads", ())
        b.ret(b.load_atomic(self.ctl.field(b, "num_threads"), "monotonic", 4,
                            name="num_threads", typ=_I32))

    def _emit_shutdown(self) -> None:
        fn, b = self._public("mlc_shutdown", ())
        busy = self.ctl.field(b, "busy")
        acquire, yield_, locked = self._blocks(b, "acquire", "yield", "locked")
        b.branch(acquire)

        # Wait until no parallel_for is running (shutdown is rare: yield, do not spin).
        b.position_at_end(acquire)
        res = b.cmpxchg(busy, _c32(0), _c32(1), "acquire", "monotonic", name="claim")
        b.cbranch(b.extract_value(res, 1, name="won"), locked, yield_)
        b.position_at_end(yield_)
        b.call(self.sched_yield, [])
        b.branch(acquire)

        b.position_at_end(locked)
        count_p = self.ctl.field(b, "num_workers")
        count = b.load(count_p, name="num_workers", typ=_I32)
        stop_all, unlock = self._blocks(b, "stop_all", "unlock")
        b.cbranch(b.icmp_signed(">", count, _c32(0), name="any"), stop_all, unlock)

        # Set stop, then bump every worker's seq (release: a worker that sees its new seq
        # also sees stop).  The fence makes the new seq values visible before the wakes, so
        # a worker entering futex_wait from now on returns at once; wake all
        # unconditionally (rare path), then join.
        b.position_at_end(stop_all)
        end = b.add(b.zext(count, _I64), _c64(1), name="end")
        stop = self.ctl.field(b, "stop")
        b.store_atomic(_c32(1), stop, "monotonic", 4)
        self._for_workers(b, end, self._bump_seq, "signal")
        b.fence("seq_cst")
        self._for_workers(b, end, lambda bb, i: bb.call(
            self.futex_wake, [self.slots.field(bb, "seq", i), _c32(1)]), "wake")

        def join(bb, i):
            t = bb.load(self.slots.field(bb, "thread", i), name="thread", typ=_I64)
            bb.call(self.pthread_join, [t, _null()])
            # The worker is gone: reset its slot so a restarted worker begins at seq 0.
            bb.store_atomic(_c32(0), self.slots.field(bb, "seq", i), "monotonic", 4)
            bb.store_atomic(_c32(0), self.slots.field(bb, "asleep", i), "monotonic", 4)
        self._for_workers(b, end, join, "join")
        b.store(_c32(0), count_p)
        b.store_atomic(_c32(0), stop, "monotonic", 4)
        b.branch(unlock)

        b.position_at_end(unlock)
        b.store_atomic(_c32(0), busy, "release", 4)
        b.ret_void()
        self._sink(unlock)
