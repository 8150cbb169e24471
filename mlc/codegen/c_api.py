"""The C ABI of an exported model: wrapper functions in LLVM IR, plus its C header.

``export_library`` (mlc.runtime.library) links three objects into one shared library:
the model's own object code (kernels, thread pool, ``mlc_run``), the weights blob, and
the small module built here, which gives C callers::

    P* P_create(void)              checks the CPU, allocates the arena, picks threads
    int P_run(P*, const void* const* inputs, void* const* outputs)
    void P_destroy(P*)             stops the thread pool, frees the arena
    int P_set_num_threads(P*, int) / int P_get_num_threads(const P*)
    int P_num_inputs(void), const char* P_input_name(int), int P_input_ndim(int),
    const int64_t* P_input_shape(int), const char* P_input_dtype(int),
    int64_t P_input_nbytes(int), and the same for outputs
    const char* P_last_error(void), const char* P_target(void)

where ``P`` is the prefix (default ``mlc_model``).  ``P_create`` verifies with ``cpuid`` /
``xgetbv`` that the CPU (and OS) support every ISA extension the model was compiled for
and fails with a message naming the missing ones, instead of dying of SIGILL later.  The
wrapper is compiled for baseline x86-64, so that check itself runs anywhere.

The model object is referenced through its public symbols (``mlc_run``,
``mlc_set_num_threads``, ``mlc_shutdown``) and the blob through ``mlc_weights``; the
linker's version script later hides everything but ``P_*``.
"""
from __future__ import annotations

import re

import llvmlite.ir as ir

from ..errors import MlcError
from ..loop.expr import dtype_bytes
from .module import ENTRY

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

WEIGHTS_SYMBOL = "mlc_weights"
ARENA_ALIGN = 64
_SC_NPROCESSORS_ONLN = 84           # glibc, Linux

# cpuid location of each feature mlc tracks: (leaf, subleaf, register, bit), and the XCR0
# state the OS must enable for it (AVX: XMM|YMM = 0x6; AVX-512: also opmask/ZMM = 0xE0).
CPUID_BITS = {
    "avx": (1, 0, "ecx", 28), "fma": (1, 0, "ecx", 12), "f16c": (1, 0, "ecx", 29),
    "avx2": (7, 0, "ebx", 5), "avx512f": (7, 0, "ebx", 16), "avx512dq": (7, 0, "ebx", 17),
    "avx512bw": (7, 0, "ebx", 30), "avx512vl": (7, 0, "ebx", 31),
    "avx512vnni": (7, 0, "ecx", 11), "avx512fp16": (7, 0, "edx", 23),
    "avxvnni": (7, 1, "eax", 4), "avx512bf16": (7, 1, "eax", 5),
}
_XCR0_AVX = 0x6
_XCR0_AVX512 = 0xE6
_REGS = ("eax", "ebx", "ecx", "edx")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def checked_features(target) -> list:
    """The features ``P_create`` verifies: every tracked feature the code was built with."""
    return [f for f in target.required_features() if f in CPUID_BITS]


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _IDENT.match(prefix) or prefix.startswith("mlc_pool"):
        raise MlcError(f"library prefix must be a C identifier (letters, digits, _), got {prefix!r}")
    return prefix


def _c64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def _c32(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


class _CApiBuilder:
    def __init__(self, exe, prefix: str):
        self.exe = exe
        self.p = check_prefix(prefix)
        self.m = ir.Module(name=f"{prefix}_c_api")
        self.m.triple = exe.target.triple
        self._strings: dict = {}
        self.model_ty = ir.LiteralStructType([PTR, I32])      # { arena, num_threads }
        libc = {
            "calloc": ir.FunctionType(PTR, [I64, I64]),
            "aligned_alloc": ir.FunctionType(PTR, [I64, I64]),
            "free": ir.FunctionType(VOID, [PTR]),
            "getenv": ir.FunctionType(PTR, [PTR]),
            "strtol": ir.FunctionType(I64, [PTR, PTR, I32]),
            "sysconf": ir.FunctionType(I64, [I32]),
            "memmove": ir.FunctionType(PTR, [PTR, PTR, I64]),
            "strcat": ir.FunctionType(PTR, [PTR, PTR]),
            "strcpy": ir.FunctionType(PTR, [PTR, PTR]),
        }
        self.libc = {n: ir.Function(self.m, t, name=n) for n, t in libc.items()}
        self.run = ir.Function(self.m, ir.FunctionType(VOID, [PTR] * 4), name=ENTRY)
        self.set_threads = ir.Function(self.m, ir.FunctionType(VOID, [I32]), name="mlc_set_num_threads")
        self.shutdown = ir.Function(self.m, ir.FunctionType(VOID, []), name="mlc_shutdown")
        self.weights = ir.GlobalVariable(self.m, ir.ArrayType(I8, 0), name=WEIGHTS_SYMBOL)
        self.weights.linkage = "external"
        self.weights.global_constant = True
        self.last_error = ir.GlobalVariable(self.m, PTR, name=f"{self.p}.last_error")
        self.last_error.linkage = "internal"
        self.last_error.initializer = ir.Constant(PTR, None)
        self.errbuf = ir.GlobalVariable(self.m, ir.ArrayType(I8, 1024), name=f"{self.p}.errbuf")
        self.errbuf.linkage = "internal"
        self.errbuf.initializer = ir.Constant(ir.ArrayType(I8, 1024), None)

    # -------------------------------------------------------------------- helpers
    def cstr(self, text: str) -> ir.GlobalVariable:
        if text in self._strings:
            return self._strings[text]
        data = bytearray(text.encode("utf-8") + b"\0")
        gv = ir.GlobalVariable(self.m, ir.ArrayType(I8, len(data)), name=f"{self.p}.str{len(self._strings)}")
        gv.linkage = "private"
        gv.global_constant = True
        gv.unnamed_addr = True
        gv.initializer = ir.Constant(ir.ArrayType(I8, len(data)), data)
        self._strings[text] = gv
        return gv

    def table(self, name: str, elem: ir.Type, values: list) -> ir.GlobalVariable:
        ty = ir.ArrayType(elem, max(1, len(values)))
        gv = ir.GlobalVariable(self.m, ty, name=f"{self.p}.{name}")
        gv.linkage = "private"
        gv.global_constant = True
        if not values:
            values = [ir.Constant(elem, None)]
        gv.initializer = ir.Constant(ty, values)
        return gv

    def public(self, name: str, ret: ir.Type, args: list) -> tuple:
        fn = ir.Function(self.m, ir.FunctionType(ret, args), name=f"{self.p}_{name}")
        fn.attributes.add("nounwind")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def set_error(self, b: ir.IRBuilder, msg) -> None:
        value = self.cstr(msg) if isinstance(msg, str) else msg
        b.store(value, self.last_error)

    # -------------------------------------------------------------------- emission
    def build(self) -> str:
        self.emit_cpu_check()
        self.emit_create()
        self.emit_run()
        self.emit_destroy()
        self.emit_threads()
        for kind in ("input", "output"):
            self.emit_introspection(kind)
        fn, b = self.public("last_error", PTR, [])
        b.ret(b.load(self.last_error, typ=PTR))
        t = self.exe.target
        fn, b = self.public("target", PTR, [])
        b.ret(self.cstr(f"{t.cpu}: {','.join(t.required_features())}"))
        return str(self.m)

    def emit_cpu_check(self) -> None:
        """i1 check_cpu(): every required feature present (cpuid) and enabled (xgetbv);
        else writes "...lacks: f1 f2" into errbuf."""
        required = checked_features(self.exe.target)
        fn = ir.Function(self.m, ir.FunctionType(ir.IntType(1), []), name=f"{self.p}.check_cpu")
        fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if not required:
            b.ret(ir.Constant(ir.IntType(1), 1))
            self.check_cpu = fn
            return
        regs4 = ir.LiteralStructType([I32] * 4)
        cpuid_ty = ir.FunctionType(regs4, [I32, I32])

        def cpuid(leaf, sub):
            r = b.asm(cpuid_ty, "cpuid", "={ax},={bx},={cx},={dx},{ax},{cx}", [leaf, sub], True)
            return [b.extract_value(r, i) for i in range(4)]

        max_leaf = cpuid(_c32(0), _c32(0))[0]
        leaf1 = cpuid(_c32(1), _c32(0))
        has7 = b.icmp_unsigned(">=", max_leaf, _c32(7))
        leaf7 = [b.select(has7, v, _c32(0)) for v in cpuid(_c32(7), _c32(0))]
        has71 = b.and_(has7, b.icmp_unsigned(">=", leaf7[0], _c32(1)))
        leaf71 = [b.select(has71, v, _c32(0)) for v in cpuid(_c32(7), _c32(1))]
        regs = {(1, 0): leaf1, (7, 0): leaf7, (7, 1): leaf71}
        # XCR0, readable only when the OS set OSXSAVE (leaf 1 ecx bit 27)
        osxsave = b.icmp_unsigned("!=", b.and_(leaf1[2], _c32(1 << 27)), _c32(0))
        pre = b.block
        read_xcr0 = fn.append_basic_block("xgetbv")
        after = fn.append_basic_block("features")
        b.cbranch(osxsave, read_xcr0, after)
        b.position_at_end(read_xcr0)
        xr = b.asm(ir.FunctionType(ir.LiteralStructType([I32, I32]), [I32]), "xgetbv",
                   "={ax},={dx},{cx}", [_c32(0)], True)
        xcr0_read = b.extract_value(xr, 0)
        b.branch(after)
        b.position_at_end(after)
        xcr0 = b.phi(I32)
        xcr0.add_incoming(_c32(0), pre)
        xcr0.add_incoming(xcr0_read, read_xcr0)
        os_avx = b.icmp_unsigned("==", b.and_(xcr0, _c32(_XCR0_AVX)), _c32(_XCR0_AVX))
        os_avx512 = b.icmp_unsigned("==", b.and_(xcr0, _c32(_XCR0_AVX512)), _c32(_XCR0_AVX512))

        t = self.exe.target
        buf = self.errbuf
        b.call(self.libc["strcpy"], [buf, self.cstr(
            f"{self.p}_create: this CPU lacks ISA features the model was compiled for "
            f"(CPU {t.cpu}); missing:")])
        ok = b.alloca(I32, name="all_present")
        b.store(_c32(1), ok)
        for feat in required:
            leaf, sub, reg, bit = CPUID_BITS[feat]
            val = regs[(leaf, sub)][_REGS.index(reg)]
            have = b.icmp_unsigned("!=", b.and_(val, _c32(1 << bit)), _c32(0))
            have = b.and_(have, os_avx512 if feat.startswith("avx512") else os_avx)
            miss_blk = fn.append_basic_block(f"missing.{feat}")
            next_blk = fn.append_basic_block(f"checked.{feat}")
            b.cbranch(have, next_blk, miss_blk)
            b.position_at_end(miss_blk)
            b.call(self.libc["strcat"], [buf, self.cstr(" " + feat)])
            b.store(_c32(0), ok)
            b.branch(next_blk)
            b.position_at_end(next_blk)
        b.ret(b.icmp_unsigned("!=", b.load(ok, typ=I32), _c32(0)))
        self.check_cpu = fn

    def emit_create(self) -> None:
        fn, b = self.public("create", PTR, [])
        good = fn.append_basic_block("cpu_ok")
        bad = fn.append_basic_block("cpu_bad")
        b.cbranch(b.call(self.check_cpu, []), good, bad)
        b.position_at_end(bad)
        self.set_error(b, self.errbuf)
        b.ret(ir.Constant(PTR, None))

        b.position_at_end(good)
        oom = fn.append_basic_block("oom")
        m = b.call(self.libc["calloc"], [_c64(1), _c64(16)])
        have_m = fn.append_basic_block("have_model")
        b.cbranch(b.icmp_unsigned("==", m, ir.Constant(PTR, None)), oom, have_m)
        b.position_at_end(oom)
        self.set_error(b, f"{self.p}_create: out of memory")
        b.ret(ir.Constant(PTR, None))

        b.position_at_end(have_m)
        arena_bytes = max(int(self.exe.arena_bytes), ARENA_ALIGN)
        arena_bytes = (arena_bytes + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN
        arena = b.call(self.libc["aligned_alloc"], [_c64(ARENA_ALIGN), _c64(arena_bytes)])
        no_arena = fn.append_basic_block("no_arena")
        have_arena = fn.append_basic_block("have_arena")
        b.cbranch(b.icmp_unsigned("==", arena, ir.Constant(PTR, None)), no_arena, have_arena)
        b.position_at_end(no_arena)
        b.call(self.libc["free"], [m])
        self.set_error(b, f"{self.p}_create: cannot allocate the {arena_bytes}-byte arena")
        b.ret(ir.Constant(PTR, None))

        b.position_at_end(have_arena)
        b.store(arena, b.gep(m, [_c32(0), _c32(0)], source_etype=self.model_ty))
        threads = self.emit_default_threads(b, fn)
        b.store(threads, b.gep(m, [_c32(0), _c32(1)], source_etype=self.model_ty))
        b.ret(m)

    def emit_default_threads(self, b: ir.IRBuilder, fn: ir.Function) -> ir.Value:
        """$MLC_NUM_THREADS if it is a positive integer, else the online CPUs."""
        env = b.call(self.libc["getenv"], [self.cstr("MLC_NUM_THREADS")])
        parse = fn.append_basic_block("env_parse")
        cores = fn.append_basic_block("env_cores")
        done = fn.append_basic_block("threads_done")
        b.cbranch(b.icmp_unsigned("==", env, ir.Constant(PTR, None)), cores, parse)
        b.position_at_end(parse)
        v = b.call(self.libc["strtol"], [env, ir.Constant(PTR, None), _c32(10)])
        ok = b.and_(b.icmp_signed(">=", v, _c64(1)), b.icmp_signed("<=", v, _c64(4096)))
        env_blk = b.block
        b.cbranch(ok, done, cores)
        b.position_at_end(cores)
        n = b.call(self.libc["sysconf"], [_c32(_SC_NPROCESSORS_ONLN)])
        n = b.select(b.icmp_signed("<", n, _c64(1)), _c64(1), n)
        cores_blk = b.block
        b.branch(done)
        b.position_at_end(done)
        phi = b.phi(I64)
        phi.add_incoming(v, env_blk)
        phi.add_incoming(n, cores_blk)
        return b.trunc(phi, I32)

    def emit_run(self) -> None:
        exe = self.exe
        fn, b = self.public("run", I32, [PTR, PTR, PTR])
        m, inputs, outputs = fn.args
        m.name, inputs.name, outputs.name = "model", "inputs", "outputs"
        null = ir.Constant(PTR, None)
        bad = fn.append_basic_block("bad_args")
        b_bad = ir.IRBuilder(bad)
        self.set_error(b_bad, f"{self.p}_run: a null model, inputs/outputs array or array pointer")
        b_bad.ret(_c32(-1))

        def require(cond_is_bad):
            nxt = fn.append_basic_block()
            b.cbranch(cond_is_bad, bad, nxt)
            b.position_at_end(nxt)

        require(b.icmp_unsigned("==", m, null))
        for table, count in ((inputs, len(exe.inputs)), (outputs, len(exe.outputs))):
            if count == 0:
                continue
            require(b.icmp_unsigned("==", table, null))
            for i in range(count):
                p = b.load(b.gep(table, [_c64(i)], source_etype=PTR), typ=PTR)
                require(b.icmp_unsigned("==", p, null))
        arena = b.load(b.gep(m, [_c32(0), _c32(0)], source_etype=self.model_ty), typ=PTR)
        threads = b.load(b.gep(m, [_c32(0), _c32(1)], source_etype=self.model_ty), typ=I32)
        b.call(self.set_threads, [threads])
        b.call(self.run, [inputs, outputs, arena, self.weights])
        # outputs that are copies of an input, another output, a constant or an arena buffer
        for j, (space, where) in exe.copy_outputs:
            info = exe.outputs[j]
            n = 1
            for d in info.shape:
                n *= int(d)
            nbytes = n * dtype_bytes(info.dtype)
            if nbytes == 0:
                continue
            dst = b.load(b.gep(outputs, [_c64(j)], source_etype=PTR), typ=PTR)
            if space in ("input", "output"):
                table = inputs if space == "input" else outputs
                src = b.load(b.gep(table, [_c64(where)], source_etype=PTR), typ=PTR)
            else:
                base = arena if space == "arena" else self.weights
                src = b.gep(base, [_c64(where)], source_etype=I8, inbounds=True)
            b.call(self.libc["memmove"], [dst, src, _c64(nbytes)])
        b.ret(_c32(0))

    def emit_destroy(self) -> None:
        fn, b = self.public("destroy", VOID, [PTR])
        m = fn.args[0]
        body = fn.append_basic_block("free")
        out = fn.append_basic_block("out")
        b.cbranch(b.icmp_unsigned("==", m, ir.Constant(PTR, None)), out, body)
        b.position_at_end(body)
        b.call(self.shutdown, [])
        arena = b.load(b.gep(m, [_c32(0), _c32(0)], source_etype=self.model_ty), typ=PTR)
        b.call(self.libc["free"], [arena])
        b.call(self.libc["free"], [m])
        b.branch(out)
        b.position_at_end(out)
        b.ret_void()

    def emit_threads(self) -> None:
        fn, b = self.public("set_num_threads", I32, [PTR, I32])
        m, n = fn.args
        ok = fn.append_basic_block("ok")
        bad = fn.append_basic_block("bad")
        is_bad = b.or_(b.icmp_unsigned("==", m, ir.Constant(PTR, None)), b.icmp_signed("<", n, _c32(1)))
        b.cbranch(is_bad, bad, ok)
        b.position_at_end(bad)
        self.set_error(b, f"{self.p}_set_num_threads: a null model or a thread count below 1")
        b.ret(_c32(-1))
        b.position_at_end(ok)
        clamped = b.select(b.icmp_signed(">", n, _c32(256)), _c32(256), n)
        b.store(clamped, b.gep(m, [_c32(0), _c32(1)], source_etype=self.model_ty))
        b.ret(_c32(0))

        fn, b = self.public("get_num_threads", I32, [PTR])
        m = fn.args[0]
        ok = fn.append_basic_block("ok")
        bad = fn.append_basic_block("bad")
        b.cbranch(b.icmp_unsigned("==", m, ir.Constant(PTR, None)), bad, ok)
        b.position_at_end(bad)
        b.ret(_c32(-1))
        b.position_at_end(ok)
        b.ret(b.load(b.gep(m, [_c32(0), _c32(1)], source_etype=self.model_ty), typ=I32))

    def emit_introspection(self, kind: str) -> None:
        infos = self.exe.inputs if kind == "input" else self.exe.outputs
        count = len(infos)
        fn, b = self.public(f"num_{kind}s", I32, [])
        b.ret(_c32(count))
        names = self.table(f"{kind}_names", PTR, [self.cstr(t.name) for t in infos])
        dtypes = self.table(f"{kind}_dtypes", PTR, [self.cstr(t.dtype) for t in infos])
        ndims = self.table(f"{kind}_ndims", I32, [_c32(len(t.shape)) for t in infos])
        nbytes = []
        shapes = []
        for k, t in enumerate(infos):
            dims = [int(d) for d in t.shape]
            shapes.append(self.table(f"{kind}{k}_shape", I64, [_c64(d) for d in dims]))
            n = 1
            for d in dims:
                n *= d
            nbytes.append(_c64(n * dtype_bytes(t.dtype)))
        shape_tab = self.table(f"{kind}_shapes", PTR, shapes)
        nbytes_tab = self.table(f"{kind}_nbytes", I64, nbytes)

        def accessor(name, ret, tab, elem, missing):
            fn, b = self.public(f"{kind}_{name}", ret, [I32])
            i = fn.args[0]
            i.name = "index"
            ok = fn.append_basic_block("ok")
            bad = fn.append_basic_block("out_of_range")
            in_range = b.and_(b.icmp_signed(">=", i, _c32(0)), b.icmp_signed("<", i, _c32(count)))
            b.cbranch(in_range, ok, bad)
            b.position_at_end(bad)
            b.ret(missing)
            b.position_at_end(ok)
            p = b.gep(tab, [_c32(0), b.sext(i, I64)], inbounds=True, source_etype=tab.value_type)
            b.ret(b.load(p, typ=elem))

        accessor("name", PTR, names, PTR, ir.Constant(PTR, None))
        accessor("dtype", PTR, dtypes, PTR, ir.Constant(PTR, None))
        accessor("ndim", I32, ndims, I32, _c32(-1))
        accessor("shape", PTR, shape_tab, PTR, ir.Constant(PTR, None))
        accessor("nbytes", I64, nbytes_tab, I64, _c64(-1))


def c_api_ir(exe, prefix: str = "mlc_model") -> str:
    """LLVM IR of the C ABI wrapper for ``exe`` (an Executable)."""
    return _CApiBuilder(exe, prefix).build()


# --------------------------------------------------------------------------------------
# the header
# --------------------------------------------------------------------------------------

def _tensor_line(t) -> str:
    return f"{t.name}: {t.dtype}[{', '.join(str(int(d)) for d in t.shape)}]"


def c_header(exe, prefix: str = "mlc_model", library: str = "the library") -> str:
    """The C header declaring the ABI of :func:`c_api_ir` for ``exe``."""
    from .. import __version__
    p = check_prefix(prefix)
    P = p.upper()
    guard = f"{P}_H_INCLUDED"
    t = exe.target
    ins = "\n".join(f" *   {k}  {_tensor_line(x)}" for k, x in enumerate(exe.inputs)) or " *   (none)"
    outs = "\n".join(f" *   {k}  {_tensor_line(x)}" for k, x in enumerate(exe.outputs)) or " *   (none)"
    defines = []
    for kind, infos in (("INPUT", exe.inputs), ("OUTPUT", exe.outputs)):
        defines.append(f"#define {P}_NUM_{kind}S {len(infos)}")
        for k, x in enumerate(infos):
            n = 1
            for d in x.shape:
                n *= int(d)
            defines.append(f"#define {P}_{kind}{k}_NBYTES {n * dtype_bytes(x.dtype)}  /* {x.name} */")
    defines = "\n".join(defines)
    return f"""\
/* {p} -- C interface of a model compiled by mlc {__version__} into {library}.
 *
 * Target CPU: {t.cpu}; ISA features required: {', '.join(t.required_features()) or 'none'}.
 * Inputs (index  name: dtype[shape], C-contiguous, row-major):
{ins}
 * Outputs:
{outs}
 *
 * Usage:
 *   {p}* m = {p}_create();            // NULL on failure: see {p}_last_error()
 *   const void* in[{max(1, len(exe.inputs))}] = {{ ... }};  void* out[{max(1, len(exe.outputs))}] = {{ ... }};
 *   if ({p}_run(m, in, out) != 0) {{ ... }}
 *   {p}_destroy(m);
 *
 * Buffers are the caller's: each input/output pointer addresses {p}_input_nbytes(i) /
 * {p}_output_nbytes(i) bytes (element-aligned; 64-byte alignment is best).
 * One {p} runs one inference at a time; create one per thread that runs concurrently.
 * All {p} of this library share one worker thread pool.  Call {p}_destroy on every
 * model before unloading the library (dlclose): it stops the pool's threads.
 * Link: cc app.c -L<dir> -l<name>  (or dlopen); no other dependency than libc/libm.
 */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

typedef struct {p} {p};

{defines}

/* Checks the CPU, allocates the model's working memory (the weights are embedded in the
 * library), and sets the thread count to $MLC_NUM_THREADS or else the online CPUs.
 * Returns NULL on failure (CPU lacks a required feature, out of memory). */
{p}* {p}_create(void);

/* Runs one inference.  inputs[i] / outputs[i] point to the i-th input / output buffer.
 * Returns 0, or -1 for a NULL argument (see {p}_last_error()). */
int {p}_run({p}* model, const void* const* inputs, void* const* outputs);

/* Stops the worker threads and frees the model.  NULL is ignored. */
void {p}_destroy({p}* model);

/* Threads used by {p}_run (1..256); returns 0, or -1 for n < 1 or a NULL model. */
int {p}_set_num_threads({p}* model, int n);
int {p}_get_num_threads(const {p}* model);

/* Introspection; an index out of range gives NULL / -1. */
int {p}_num_inputs(void);
const char* {p}_input_name(int index);
const char* {p}_input_dtype(int index);      /* numpy names: "float32", "int64", ... */
int {p}_input_ndim(int index);
const int64_t* {p}_input_shape(int index);   /* ndim entries */
int64_t {p}_input_nbytes(int index);
int {p}_num_outputs(void);
const char* {p}_output_name(int index);
const char* {p}_output_dtype(int index);
int {p}_output_ndim(int index);
const int64_t* {p}_output_shape(int index);
int64_t {p}_output_nbytes(int index);

/* The last error message (NULL if none); not thread-safe. */
const char* {p}_last_error(void);
/* "cpu: feature,feature,..." the code was compiled for. */
const char* {p}_target(void);

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""
