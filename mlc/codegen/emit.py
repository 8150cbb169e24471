"""Loop-IR statements -> LLVM IR, with explicit SIMD.

A ``vector`` loop is strip-mined by the target's vector width.  Inside it every expression
is emitted either as a scalar (it does not depend on the loop variable: one load, then a
broadcast where it meets a vector) or as a vector:

* a load whose flattened offset is ``c * v + (rest)`` with ``c == 1`` is one contiguous
  (masked, for a tail) vector load; ``c == 0`` is a scalar load; anything else a gather;
* the tail chunk uses the narrowest power-of-two width that covers it, masked when the
  remainder is not itself a power of two;
* a store of ``combine(B[i], x)`` back to ``B[i]`` with ``i`` independent of the loop
  variable is a reduction along the vector loop: a vector accumulator, reduced across
  lanes once at the end.

Stores to local (stack) buffers in a masked context become select + full store so that
LLVM can keep those buffers (register accumulators) in registers.

A multiply is fused into an add (one FMA, one rounding) only in an accumulation
``B[i] = B[i] + x * y``: the rounding of a reduction's partial sums is unspecified, while
``a * b + c`` elsewhere is a Mul node and an Add node (a dequantising scale and a bias,
say) whose product ONNX rounds before the add -- and a quantizer downstream would turn
that one-ulp difference into whole quantization steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from ..errors import CodegenError
from ..loop.expr import (BITS_DTYPES, SUBBYTE_INT_BITS, Binary, Buffer, Call, Cast, Const, Expr, Load, Select,
                         Var, coefficient, flat_offset, is_float, is_signed)
from ..loop.stmt import Allocate, Break, For, If, Let, Prefetch, Seq, Stmt, Store
from . import llvm_util as U

_FLOAT_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_COMBINE_OPS = {"add": "add", "mul": "mul", "max": "max", "min": "min"}


@dataclass
class VectorContext:
    var: Var
    base: ir.Value          # i64: index of lane 0
    lanes: int
    mask: ir.Value | None   # <lanes x i1> or None when every lane is active


class FunctionEmitter:
    """Emits statements into one LLVM function.

    ``buffers`` maps each global Buffer the code touches to an ``ir.Value`` pointer.
    """

    def __init__(self, module: ir.Module, fn: ir.Function, buffers: dict, lanes: int, has_fma: bool = True,
                 dot4_lanes: frozenset = frozenset()):
        self.module = module
        self.fn = fn
        self.buffers = dict(buffers)
        self.lanes = lanes
        self.has_fma = has_fma
        self.dot4_lanes = dot4_lanes      # vector widths with a vpdpbusd (see dot4_lanes())
        self.alloca_block = fn.append_basic_block("allocas")
        self.b = ir.IRBuilder(fn.append_basic_block("body"))
        self.env: dict = {}
        self.vctx: VectorContext | None = None
        self.loop_exits: list = []
        self.nonneg: set = set()          # variables known to be >= 0 (loop indices)
        self._offsets: dict = {}
        # Expressions are DAGs (an epilogue refers to ``acc + bias`` several times): emit
        # each shared node once per statement.  Reset whenever the statement, the vector
        # context or a variable binding changes.
        self._memo: dict = {}
        self._accumulation: Expr | None = None   # the value of the store being emitted, if B[i] + x

    # ---------------------------------------------------------------------------------
    def finish(self):
        if not self.b.block.is_terminated:
            self.b.ret_void()
        ab = ir.IRBuilder(self.alloca_block)
        ab.branch(self.fn.blocks[1])

    def alloca(self, ty: ir.Type, count: int = 1, name: str = "") -> ir.Value:
        ab = ir.IRBuilder(self.alloca_block)
        if self.alloca_block.instructions:
            ab.position_after(self.alloca_block.instructions[-1])
        ptr = ab.alloca(ty, size=ir.Constant(U.I64, count) if count != 1 else None, name=name)
        ptr.align = 64
        # llvmlite types alloca results (float*); everything else here uses opaque pointers,
        # and its type checks would reject a vector store through a float*
        ptr.type = U.PTR
        return ptr

    # =================================================================================
    # statements
    # =================================================================================
    def emit(self, s: Stmt):
        self._memo = {}
        t = type(s)
        if t is Seq:
            for x in s.stmts:
                self.emit(x)
        elif t is For:
            self.emit_for(s)
        elif t is Store:
            self.emit_store(s)
        elif t is If:
            self.emit_if(s)
        elif t is Allocate:
            b = s.buffer
            pad = self.lanes  # full-width vector accesses at the end of a local stay in bounds
            self.buffers[b] = self.alloca(U.mem_type(b.dtype), b.size + pad, name=b.name.replace(".", "_"))
            self.emit(s.body)
        elif t is Let:
            self.env[s.var] = self.expr(s.value)
            self.emit(s.body)
        elif t is Prefetch:
            self.emit_prefetch(s)
        elif t is Break:
            if not self.loop_exits:
                raise CodegenError("break outside a loop")
            self.b.branch(self.loop_exits[-1])
            self.b.position_at_end(self.fn.append_basic_block("after_break"))
        else:
            raise CodegenError(f"cannot emit statement {s!r}")

    # -- loops ------------------------------------------------------------------------
    def emit_for(self, s: For):
        if s.kind == "vector" and self.vctx is None:
            self.emit_vector_loop(s)
            return
        ext = s.extent
        if s.kind == "unroll" and isinstance(ext, Const):
            for i in range(int(ext.value)):
                self.env[s.var] = ir.Constant(U.I64, i)
                self.emit(s.body)
            return
        if isinstance(ext, Const) and ext.value == 1 and not _contains_break(s.body):
            # (with a Break inside, the loop must stay a loop: Break leaves *this* loop)
            self.env[s.var] = ir.Constant(U.I64, 0)
            self.emit(s.body)
            return
        stop = self.scalar(ext)
        self.serial_loop(s.var, ir.Constant(U.I64, 0), stop, lambda: self.emit(s.body))

    def serial_loop(self, var: Var, start: ir.Value, stop: ir.Value, body_fn):
        """for var in [start, stop): body_fn()  (bottom-tested, entered only if non-empty)."""
        b = self.b
        pre = b.block
        body_bb = self.fn.append_basic_block(f"{var.name}_body")
        exit_bb = self.fn.append_basic_block(f"{var.name}_exit")
        if isinstance(start, ir.Constant) and isinstance(stop, ir.Constant) and start.constant < stop.constant:
            b.branch(body_bb)
        else:
            b.cbranch(b.icmp_signed("<", start, stop), body_bb, exit_bb)
        b.position_at_end(body_bb)
        phi = b.phi(U.I64, name=var.name)
        phi.add_incoming(start, pre)
        self.env[var] = phi
        self.nonneg.add(var)
        self.loop_exits.append(exit_bb)
        body_fn()
        self.loop_exits.pop()
        nxt = b.add(phi, ir.Constant(U.I64, 1), name=f"{var.name}_next")
        phi.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, stop), body_bb, exit_bb)
        b.position_at_end(exit_bb)

    def emit_vector_loop(self, s: For):
        var = s.var
        reduction = self._vector_reduction(s)
        if not isinstance(s.extent, Const):
            self._dynamic_vector_loop(s, reduction)
            return
        n = int(s.extent.value)
        L = self.lanes
        full, rem = divmod(n, L)
        self.nonneg.add(var)
        if reduction is not None:
            self._emit_vector_reduction(s, reduction, n)
            return
        if full == 1:
            self._vector_body(s.body, var, ir.Constant(U.I64, 0), L, None)
        elif full > 1:
            chunk = Var(var.name + "_chunk")
            def body():
                base = self.b.mul(self.env[chunk], ir.Constant(U.I64, L))
                self._vector_body(s.body, var, base, L, None)
            self.serial_loop(chunk, ir.Constant(U.I64, 0), ir.Constant(U.I64, full), body)
        if rem:
            width = _pow2_at_least(rem)
            mask = None if width == rem else U.lane_mask(width, rem)
            self._vector_body(s.body, var, ir.Constant(U.I64, full * L), width, mask)

    def _vector_body(self, body: Stmt, var: Var, base: ir.Value, lanes: int, mask):
        saved = self.vctx
        if lanes == 1 and mask is None:
            # a one-element tail: emit it as scalar code (no <1 x T> vectors)
            self.vctx = None
            self.env[var] = base
        else:
            self.vctx = VectorContext(var, base, lanes, mask)
        try:
            self.emit(body)
        finally:
            self.vctx = saved

    def _dynamic_vector_loop(self, s: For, reduction):
        if reduction is not None:
            raise CodegenError("vector reduction over a loop of run-time extent is not supported")
        L = self.lanes
        stop = self.scalar(s.extent)
        chunk = Var(s.var.name + "_chunk")
        nchunks = self.b.sdiv(self.b.add(stop, ir.Constant(U.I64, L - 1)), ir.Constant(U.I64, L))

        def body():
            base = self.b.mul(self.env[chunk], ir.Constant(U.I64, L))
            remaining = self.b.sub(stop, base)
            mask = self.b.icmp_signed("<", U.iota(L), U.splat(self.b, remaining, L))
            self._vector_body(s.body, s.var, base, L, mask)
        self.serial_loop(chunk, ir.Constant(U.I64, 0), nchunks, body)

    def _vector_reduction(self, s: For):
        """(store, combine op, x) if the loop body is ``B[i] = combine(B[i], x)`` with i uniform."""
        body = s.body
        if not isinstance(body, Store):
            return None
        v = body.value
        if not isinstance(v, Binary) or v.op not in _COMBINE_OPS:
            return None
        for old, x in ((v.a, v.b), (v.b, v.a)):
            if isinstance(old, Load) and old.buffer is body.buffer and old.indices == body.indices:
                if any(_depends(i, s.var) for i in body.indices):
                    return None
                return body, v.op, x
        return None

    def _emit_vector_reduction(self, s: For, red, n: int):
        store, op, x = red
        L = self.lanes
        dtype = x.dtype
        ident = _identity(op, dtype)
        full, rem = divmod(n, L)
        parts = []
        if full:
            vt = U.vec(U.reg_type(dtype), L)
            slot = self.alloca(vt, name="vred")
            self.b.store(U.constant(vt, ident), slot)
            chunk = Var(s.var.name + "_chunk")

            def body():
                base = self.b.mul(self.env[chunk], ir.Constant(U.I64, L)) if full > 1 else ir.Constant(U.I64, 0)
                saved = self.vctx
                self._memo = {}
                self.vctx = VectorContext(s.var, base, L, None)
                try:
                    val = self._as_vector(self.expr(x), L)
                finally:
                    self.vctx = saved
                self.b.store(self.binop(op, self.b.load(slot), val, dtype), slot)
            if full > 1:
                self.serial_loop(chunk, ir.Constant(U.I64, 0), ir.Constant(U.I64, full), body)
            else:
                body()
            parts.append(self.b.load(slot))
        if rem:
            width = _pow2_at_least(rem)
            mask = None if width == rem else U.lane_mask(width, rem)
            saved = self.vctx
            self._memo = {}
            if width == 1:      # a one-element tail: scalar code
                self.vctx = None
                self.env[s.var] = ir.Constant(U.I64, full * L)
            else:
                self.vctx = VectorContext(s.var, ir.Constant(U.I64, full * L), width, mask)
            try:
                val = self._as_vector(self.expr(x), width)
            finally:
                self.vctx = saved
            if mask is not None:
                val = self.b.select(mask, val, U.constant(val.type, ident))
            parts.append(val)
        self._memo = {}
        total = None
        for p in parts:
            r = self.horizontal(op, p, dtype)
            total = r if total is None else self.binop(op, total, r, dtype)
        old = self.expr(Load(store.buffer, store.indices))
        self._store_scalar(store.buffer, store.indices, self.binop(op, old, total, dtype))

    def horizontal(self, op: str, v: ir.Value, dtype: str) -> ir.Value:
        """Reduce a vector across its lanes by halving (log2(lanes) shuffles)."""
        n = U.lanes_of(v)
        while n > 1:
            half = n // 2
            lo = self.b.shuffle_vector(v, v, ir.Constant(ir.VectorType(U.I32, half), list(range(half))))
            hi = self.b.shuffle_vector(v, v, ir.Constant(ir.VectorType(U.I32, half), list(range(half, n))))
            v = self.binop(op, lo, hi, dtype)
            n = half
        if isinstance(v.type, ir.VectorType):
            v = self.b.extract_element(v, ir.Constant(U.I32, 0))
        return v

    # -- if ---------------------------------------------------------------------------
    def emit_if(self, s: If):
        cond = self.expr(s.cond)
        if isinstance(cond.type, ir.VectorType):
            # predication: lanes where the condition fails do nothing
            vc = self.vctx
            base_mask = vc.mask
            then_mask = cond if base_mask is None else self.b.and_(base_mask, cond)
            self.vctx = VectorContext(vc.var, vc.base, vc.lanes, then_mask)
            self.emit(s.then)
            if s.orelse is not None:
                notc = self.b.xor(cond, U.constant(cond.type, 1))
                else_mask = notc if base_mask is None else self.b.and_(base_mask, notc)
                self.vctx = VectorContext(vc.var, vc.base, vc.lanes, else_mask)
                self.emit(s.orelse)
            self.vctx = vc
            return
        if isinstance(cond, ir.Constant):
            if cond.constant:
                self.emit(s.then)
            elif s.orelse is not None:
                self.emit(s.orelse)
            return
        then_bb = self.fn.append_basic_block("then")
        merge_bb = self.fn.append_basic_block("endif")
        else_bb = self.fn.append_basic_block("else") if s.orelse is not None else merge_bb
        self.b.cbranch(cond, then_bb, else_bb)
        self.b.position_at_end(then_bb)
        self.emit(s.then)
        if not self.b.block.is_terminated:
            self.b.branch(merge_bb)
        if s.orelse is not None:
            self.b.position_at_end(else_bb)
            self.emit(s.orelse)
            if not self.b.block.is_terminated:
                self.b.branch(merge_bb)
        self.b.position_at_end(merge_bb)

    # -- stores -----------------------------------------------------------------------
    def emit_store(self, s: Store):
        v = s.value
        self._accumulation = v if isinstance(v, Binary) and v.op == "add" and any(
            isinstance(o, Load) and o.buffer is s.buffer and o.indices == s.indices for o in (v.a, v.b)) else None
        try:
            value = self.expr(v)
        finally:
            self._accumulation = None
        vc = self.vctx
        if vc is None:
            self._store_scalar(s.buffer, s.indices, value)
            return
        offset, c = self.offset(s.buffer, s.indices)
        if c == 0:
            if isinstance(value.type, ir.VectorType):
                raise CodegenError(f"store of a vector to the single element {s.buffer.name}"
                                   f"[{', '.join(map(str, s.indices))}] inside a vector loop")
            self._store_scalar(s.buffer, s.indices, value)
            return
        value = self._as_vector(value, vc.lanes)
        mem = self.to_memory(value, s.buffer.dtype)
        ptr = self.buffers_ptr(s.buffer)
        if c == 1:
            start = self.scalar_at(offset, vc.var, vc.base)
            addr = self.b.gep(ptr, [start], source_etype=U.mem_type(s.buffer.dtype), inbounds=True)
            if vc.mask is None:
                self.b.store(mem, addr, align=_align(s.buffer.dtype))
            elif s.buffer.scope == "local":
                old = self.b.load(addr, typ=mem.type, align=_align(s.buffer.dtype))
                self.b.store(self.b.select(vc.mask, mem, old), addr, align=_align(s.buffer.dtype))
            else:
                self._masked_store(mem, addr, vc.mask)
            return
        idx = self._as_vector(self.expr(offset), vc.lanes)
        ptrs = self.b.gep(ptr, [idx], source_etype=U.mem_type(s.buffer.dtype), inbounds=True)
        ptrs.type = ir.VectorType(U.PTR, vc.lanes)
        mask = vc.mask if vc.mask is not None else U.constant(ir.VectorType(U.I1, vc.lanes), 1)
        fn = U.intrinsic(self.module, f"llvm.masked.scatter.{U.suffix(mem.type)}.v{vc.lanes}p0", U.VOID,
                         [mem.type, ptrs.type, U.I32, mask.type])
        self.b.call(fn, [mem, ptrs, ir.Constant(U.I32, _align(s.buffer.dtype)), mask])

    def emit_prefetch(self, s: Prefetch):
        """llvm.prefetch (read, keep in all cache levels, data): the address may lie past
        the buffer (a hint for the next stream), so the GEP is not inbounds."""
        mt = U.mem_type(s.buffer.dtype)
        addr = self.b.gep(self.buffers_ptr(s.buffer), [self.scalar(s.offset)], source_etype=mt)
        fn = U.intrinsic(self.module, "llvm.prefetch.p0", ir.VoidType(), [U.PTR, U.I32, U.I32, U.I32])
        self.b.call(fn, [addr, ir.Constant(U.I32, 0), ir.Constant(U.I32, 3), ir.Constant(U.I32, 1)])

    def _store_scalar(self, buffer: Buffer, indices, value: ir.Value):
        if isinstance(value.type, ir.VectorType):
            raise CodegenError(f"scalar store of a vector into {buffer.name}")
        saved, self.vctx = self.vctx, None
        try:
            offset, _ = self.offset(buffer, indices)
            off = self.expr(offset)
        finally:
            self.vctx = saved
        addr = self.b.gep(self.buffers_ptr(buffer), [off], source_etype=U.mem_type(buffer.dtype), inbounds=True)
        self.b.store(self.to_memory(value, buffer.dtype), addr)

    def _masked_store(self, value: ir.Value, addr: ir.Value, mask: ir.Value):
        fn = U.intrinsic(self.module, f"llvm.masked.store.{U.suffix(value.type)}.p0", U.VOID,
                         [value.type, U.PTR, U.I32, mask.type])
        self.b.call(fn, [value, addr, ir.Constant(U.I32, _align_of_type(value.type)), mask])

    # =================================================================================
    # expressions
    # =================================================================================
    def scalar(self, e: Expr) -> ir.Value:
        saved, self.vctx = self.vctx, None
        memo, self._memo = self._memo, {}
        try:
            return self.expr(e)
        finally:
            self.vctx = saved
            self._memo = memo

    def scalar_at(self, e: Expr, var: Var, value: ir.Value) -> ir.Value:
        """``e`` as a scalar with ``var`` bound to ``value`` (the vector loop's lane 0)."""
        saved_v, self.vctx = self.vctx, None
        saved_e = self.env.get(var)
        self.env[var] = value
        memo, self._memo = self._memo, {}
        try:
            return self.expr(e)
        finally:
            self._memo = memo
            self.vctx = saved_v
            if saved_e is None:
                self.env.pop(var, None)
            else:
                self.env[var] = saved_e

    def expr(self, e: Expr) -> ir.Value:
        key = id(e)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is e:
            return hit[1]
        v = self._expr(e)
        self._memo[key] = (e, v)
        return v

    def _expr(self, e: Expr) -> ir.Value:
        t = type(e)
        if t is Const:
            return U.constant(U.reg_type(e.dtype), e.value)
        if t is Var:
            vc = self.vctx
            if vc is not None and e is vc.var:
                return self.b.add(U.splat(self.b, vc.base, vc.lanes), U.iota(vc.lanes))
            try:
                return self.env[e]
            except KeyError:
                raise CodegenError(f"unbound variable {e.name}") from None
        if t is Load:
            return self.emit_load(e)
        if t is Binary:
            if self.has_fma and e.op == "add" and is_float(e.dtype) and e is self._accumulation:
                for m, c in ((e.a, e.b), (e.b, e.a)):
                    if isinstance(m, Binary) and m.op == "mul":
                        x, y, z = self.expr(m.a), self.expr(m.b), self.expr(c)
                        x, y, z = self.match(x, y, z)
                        fn = U.intrinsic(self.module, f"llvm.fma.{U.suffix(x.type)}", x.type, [x.type] * 3)
                        return self.b.call(fn, [x, y, z])
            if e.op == "add" and e.dtype == "int32":
                for d, c in ((e.a, e.b), (e.b, e.a)):
                    if isinstance(d, Call) and d.fn == "dot4_u8s8":
                        return self.dot4(*self.match(self.expr(c), self.expr(d.args[0]), self.expr(d.args[1])))
            a, b = self.match(self.expr(e.a), self.expr(e.b))
            nonneg = e.op in ("floordiv", "mod") and self._is_nonneg(e.a) and self._is_nonneg(e.b)
            return self.binop(e.op, a, b, e.a.dtype, nonneg)
        if t is Call:
            args = self.match(*[self.expr(a) for a in e.args])
            return self.call(e.fn, list(args), e.args[0].dtype, e.dtype)
        if t is Cast:
            return self.cast(self.expr(e.value), e.value.dtype, e.dtype)
        if t is Select:
            c, a, b = self.match(self.expr(e.cond), self.expr(e.a), self.expr(e.b))
            return self.b.select(c, a, b)
        raise CodegenError(f"cannot emit expression {e!r}")

    def match(self, *vals):
        lanes = max(U.lanes_of(v) for v in vals)
        if lanes == 1:
            return vals
        return tuple(self._as_vector(v, lanes) for v in vals)

    def _as_vector(self, v: ir.Value, lanes: int) -> ir.Value:
        if isinstance(v.type, ir.VectorType):
            return v
        return U.splat(self.b, v, lanes)

    def _is_nonneg(self, e: Expr) -> bool:
        if isinstance(e, Const):
            return e.value >= 0
        if isinstance(e, Var):
            return e in self.nonneg
        if isinstance(e, Binary) and e.op in ("add", "mul", "floordiv", "mod", "max"):
            return self._is_nonneg(e.a) and self._is_nonneg(e.b)
        if isinstance(e, Binary) and e.op == "min":
            return self._is_nonneg(e.a) and self._is_nonneg(e.b)
        return False

    # -- loads ------------------------------------------------------------------------
    def buffers_ptr(self, buf: Buffer) -> ir.Value:
        try:
            return self.buffers[buf]
        except KeyError:
            raise CodegenError(f"buffer {buf.name} is not available in this function") from None

    def offset(self, buf: Buffer, indices) -> tuple:
        """(flattened element offset, its coefficient in the current vector variable)."""
        vc = self.vctx
        key = (buf, indices, vc.var if vc else None)
        hit = self._offsets.get(key)
        if hit is not None:
            return hit
        off = flat_offset(buf, indices)
        c = coefficient(off, vc.var) if vc else 0
        if vc and c is None:
            c = -1   # not affine in the vector variable: gather / scatter
        self._offsets[key] = (off, c)
        return off, c

    def emit_load(self, ld: Load) -> ir.Value:
        buf = ld.buffer
        mt = U.mem_type(buf.dtype)
        ptr = self.buffers_ptr(buf)
        vc = self.vctx
        offset, c = self.offset(buf, ld.indices)
        if vc is None or c == 0:
            off = self.scalar(offset)
            addr = self.b.gep(ptr, [off], source_etype=mt, inbounds=True)
            return self.from_memory(self.b.load(addr, typ=mt), buf.dtype)
        vt = ir.VectorType(mt, vc.lanes)
        if c == 1:
            start = self.scalar_at(offset, vc.var, vc.base)
            addr = self.b.gep(ptr, [start], source_etype=mt, inbounds=True)
            if vc.mask is None or buf.scope == "local":
                v = self.b.load(addr, typ=vt, align=_align(buf.dtype))
            else:
                fn = U.intrinsic(self.module, f"llvm.masked.load.{U.suffix(vt)}.p0", vt,
                                 [U.PTR, U.I32, vc.mask.type, vt])
                v = self.b.call(fn, [addr, ir.Constant(U.I32, _align(buf.dtype)), vc.mask, ir.Constant(vt, None)])
            return self.from_memory(v, buf.dtype)
        idx = self._as_vector(self.expr(offset), vc.lanes)
        ptrs = self.b.gep(ptr, [idx], source_etype=mt, inbounds=True)
        ptrs.type = ir.VectorType(U.PTR, vc.lanes)
        mask = vc.mask if vc.mask is not None else U.constant(ir.VectorType(U.I1, vc.lanes), 1)
        fn = U.intrinsic(self.module, f"llvm.masked.gather.{U.suffix(vt)}.v{vc.lanes}p0", vt,
                         [ptrs.type, U.I32, mask.type, vt])
        v = self.b.call(fn, [ptrs, ir.Constant(U.I32, _align(buf.dtype)), mask, ir.Constant(vt, None)])
        return self.from_memory(v, buf.dtype)

    def from_memory(self, v: ir.Value, dtype: str) -> ir.Value:
        if dtype == "bool":
            return self.b.icmp_unsigned("!=", v, U.constant(v.type, 0))
        if dtype in SUBBYTE_INT_BITS:
            # the value sits in the low bits of its byte: sign- or zero-extend it to 8 bits
            k = 8 - SUBBYTE_INT_BITS[dtype]
            if is_signed(dtype):
                return self.b.ashr(self.b.shl(v, U.constant(v.type, k)), U.constant(v.type, k))
            return self.b.and_(v, U.constant(v.type, (1 << (8 - k)) - 1))
        if dtype == "bfloat16":
            lanes = U.lanes_of(v)
            wide = self.b.zext(v, U.vec(U.I32, lanes))
            wide = self.b.shl(wide, U.constant(wide.type, 16))
            return self.b.bitcast(wide, U.vec(U.F32, lanes))
        return v

    def to_memory(self, v: ir.Value, dtype: str) -> ir.Value:
        if dtype == "bool":
            return self.b.zext(v, U.vec(U.I8, U.lanes_of(v)))
        if dtype in SUBBYTE_INT_BITS:
            return self.b.and_(v, U.constant(v.type, (1 << SUBBYTE_INT_BITS[dtype]) - 1))
        if dtype == "bfloat16":
            # round to nearest even: add 0x7fff + lsb of the kept half, keep the high 16 bits
            lanes = U.lanes_of(v)
            bits = self.b.bitcast(v, U.vec(U.I32, lanes))
            lsb = self.b.and_(self.b.lshr(bits, U.constant(bits.type, 16)), U.constant(bits.type, 1))
            rounded = self.b.add(bits, self.b.add(lsb, U.constant(bits.type, 0x7FFF)))
            isnan = self.b.fcmp_unordered("uno", v, v)
            out = self.b.select(isnan, self.b.or_(bits, U.constant(bits.type, 0x400000)), rounded)
            return self.b.trunc(self.b.lshr(out, U.constant(bits.type, 16)), U.vec(ir.IntType(16), lanes))
        return v

    # -- arithmetic ---------------------------------------------------------------------
    def binop(self, op: str, a: ir.Value, b: ir.Value, dtype: str, nonneg: bool = False) -> ir.Value:
        B = self.b
        if is_float(dtype):
            if op == "add":
                return B.fadd(a, b)
            if op == "sub":
                return B.fsub(a, b)
            if op == "mul":
                return B.fmul(a, b)
            if op == "div":
                return B.fdiv(a, b)
            if op == "max":
                return B.select(B.fcmp_ordered(">", a, b), a, b)
            if op == "min":
                return B.select(B.fcmp_ordered("<", a, b), a, b)
            if op in _FLOAT_CMP:
                if op == "ne":
                    return B.fcmp_unordered("!=", a, b)
                return B.fcmp_ordered(_FLOAT_CMP[op], a, b)
            if op == "floordiv":
                return self.call("floor", [B.fdiv(a, b)], dtype, dtype)
            if op == "mod":
                q = self.call("floor", [B.fdiv(a, b)], dtype, dtype)
                return B.fsub(a, B.fmul(q, b))
            if op in ("pow", "atan2"):
                return self.call(op, [a, b], dtype, dtype)
            if op == "fmod":
                return B.frem(a, b)
            raise CodegenError(f"float operator {op!r} is not supported")
        signed = is_signed(dtype)
        if op == "add":
            return B.add(a, b)
        if op == "sub":
            return B.sub(a, b)
        if op == "mul":
            return B.mul(a, b)
        if op == "div":
            return B.sdiv(a, b) if signed else B.udiv(a, b)
        if op == "floordiv":
            if not signed or nonneg:
                return B.udiv(a, b)
            q = B.sdiv(a, b)
            r = B.srem(a, b)
            fix = B.and_(B.icmp_signed("!=", r, U.constant(r.type, 0)),
                         B.icmp_signed("<", B.xor(r, b), U.constant(r.type, 0)))
            return B.sub(q, B.zext(fix, q.type))
        if op == "mod":
            if not signed or nonneg:
                return B.urem(a, b)
            r = B.srem(a, b)
            fix = B.and_(B.icmp_signed("!=", r, U.constant(r.type, 0)),
                         B.icmp_signed("<", B.xor(r, b), U.constant(r.type, 0)))
            return B.select(fix, B.add(r, b), r)
        if op in ("max", "min"):
            cmp = (B.icmp_signed if signed else B.icmp_unsigned)(">" if op == "max" else "<", a, b)
            return B.select(cmp, a, b)
        if op in _FLOAT_CMP:
            return (B.icmp_signed if signed else B.icmp_unsigned)(_FLOAT_CMP[op], a, b)
        if op == "and":
            return B.and_(a, b)
        if op == "or":
            return B.or_(a, b)
        if op == "xor":
            return B.xor(a, b)
        if op == "fmod":
            return B.srem(a, b) if signed else B.urem(a, b)
        if op == "shl":
            return B.shl(a, b)
        if op == "shr":
            return B.ashr(a, b) if signed else B.lshr(a, b)
        if op == "pow":
            ft = U.vec(U.F64, U.lanes_of(a))
            fa = B.sitofp(a, ft) if signed else B.uitofp(a, ft)
            fb = B.sitofp(b, ft) if signed else B.uitofp(b, ft)
            r = self.call("pow", [fa, fb], "float64", "float64")
            r = self.call("round", [r], "float64", "float64")
            return B.fptosi(r, a.type) if signed else B.fptoui(r, a.type)
        raise CodegenError(f"integer operator {op!r} is not supported for {dtype}")

    def call(self, fn: str, args: list, dtype: str, out_dtype: str) -> ir.Value:
        B = self.b
        x = args[0]
        if fn == "not":
            return B.xor(x, U.constant(x.type, 1 if dtype == "bool" else -1))
        if fn == "dot4_u8s8":
            return self.dot4(U.constant(x.type, 0), x, args[1])
        if is_float(dtype):
            simple = {"sqrt": "sqrt", "abs": "fabs", "floor": "floor", "ceil": "ceil",
                      "trunc": "trunc", "round": "roundeven"}
            if fn in simple:
                f = U.intrinsic(self.module, f"llvm.{simple[fn]}.{U.suffix(x.type)}", x.type, [x.type])
                return B.call(f, [x])
            if fn == "neg":
                return B.fneg(x)
            if fn == "reciprocal":
                return B.fdiv(U.constant(x.type, 1.0), x)
            if fn == "rsqrt":
                return B.fdiv(U.constant(x.type, 1.0), self.call("sqrt", [x], dtype, dtype))
            if fn == "isnan":
                return B.fcmp_unordered("uno", x, x)
            if fn == "isinf":
                ax = self.call("abs", [x], dtype, dtype)
                return B.fcmp_ordered("==", ax, U.constant(x.type, float("inf")))
            if fn == "sign":
                one, zero = U.constant(x.type, 1.0), U.constant(x.type, 0.0)
                pos = B.select(B.fcmp_ordered(">", x, zero), one, zero)
                return B.select(B.fcmp_ordered("<", x, zero), B.fneg(one), pos)
            from . import vecmath
            if dtype == "float32" and fn in vecmath.SUPPORTED:
                return vecmath.emit_math(B, fn, args)
            intr = {"exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "pow": "pow", "tan": "tan"}
            if fn in intr:
                f = U.intrinsic(self.module, f"llvm.{intr[fn]}.{U.suffix(x.type)}", x.type, [x.type] * len(args))
                return B.call(f, args)
            if dtype == "float64" and fn in vecmath.SUPPORTED:
                return vecmath.emit_math(B, fn, args)
            raise CodegenError(f"math function {fn!r} is not available for {dtype}")
        # integers
        if fn == "neg":
            return B.sub(U.constant(x.type, 0), x)
        if fn == "abs":
            if not is_signed(dtype):
                return x
            return B.select(B.icmp_signed("<", x, U.constant(x.type, 0)), B.sub(U.constant(x.type, 0), x), x)
        if fn == "sign":
            one, zero = U.constant(x.type, 1), U.constant(x.type, 0)
            pos = B.select(B.icmp_signed(">", x, zero) if is_signed(dtype) else B.icmp_unsigned(">", x, zero), one, zero)
            if not is_signed(dtype):
                return pos
            return B.select(B.icmp_signed("<", x, zero), U.constant(x.type, -1), pos)
        if fn in ("floor", "ceil", "round", "trunc"):
            return x
        if fn in ("isnan", "isinf"):
            return U.constant(U.vec(U.I1, U.lanes_of(x)), 0)
        raise CodegenError(f"math function {fn!r} is not available for {dtype}")

    def dot4(self, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        """acc + dot4_u8s8(a, b) lane by lane: one vpdpbusd where the target has it."""
        B = self.b
        n = U.lanes_of(a)
        if n in self.dot4_lanes:
            fn = U.intrinsic(self.module, f"llvm.x86.avx512.vpdpbusd.{32 * n}", a.type, [a.type] * 3)
            return B.call(fn, [acc, a, b])
        # portable: widen the bytes, multiply, add each group of four
        bytes_t, wide_t = ir.VectorType(U.I8, 4 * n), ir.VectorType(U.I32, 4 * n)
        p = B.mul(B.zext(B.bitcast(a, bytes_t), wide_t), B.sext(B.bitcast(b, bytes_t), wide_t))
        total = acc
        for t in range(4):
            part = B.shuffle_vector(p, p, ir.Constant(ir.VectorType(U.I32, n), [4 * j + t for j in range(n)]))
            if n == 1:
                part = B.extract_element(part, ir.Constant(U.I32, 0))
            total = B.add(total, part)
        return total

    def cast(self, v: ir.Value, src: str, dst: str) -> ir.Value:
        if src == dst:
            return v
        B = self.b
        for x, y in ((src, dst), (dst, src)):
            if x in BITS_DTYPES and (is_float(y) or y == "bool"):
                raise CodegenError(f"no conversion {src} -> {dst}: {x} values are bit patterns "
                                   "(decode / encode them explicitly)")
        lanes = U.lanes_of(v)
        dt = U.vec(U.reg_type(dst), lanes)
        if dst == "bool":
            if is_float(src):
                return B.fcmp_unordered("!=", v, U.constant(v.type, 0.0))
            return B.icmp_unsigned("!=", v, U.constant(v.type, 0))
        if src == "bool":
            return B.uitofp(v, dt) if is_float(dst) else B.zext(v, dt)
        if is_float(src) and is_float(dst):
            sw, dw = _float_width(src), _float_width(dst)
            if sw == dw:
                return v
            return B.fpext(v, dt) if dw > sw else B.fptrunc(v, dt)
        if is_float(dst):
            return B.sitofp(v, dt) if is_signed(src) else B.uitofp(v, dt)
        if is_float(src):
            return B.fptosi(v, dt) if is_signed(dst) else B.fptoui(v, dt)
        sw, dw = v.type.element.width if isinstance(v.type, ir.VectorType) else v.type.width, \
            U.elem_type(dt).width
        if sw == dw:
            return v
        if dw < sw:
            return B.trunc(v, dt)
        return B.sext(v, dt) if is_signed(src) else B.zext(v, dt)


# --------------------------------------------------------------------------------------

def dot4_lanes(target) -> frozenset:
    """Vector widths (in 32-bit lanes) at which ``target`` has vpdpbusd."""
    out = set()
    if target.has("avx512vnni"):
        out.add(16)
        if target.has("avx512vl"):
            out |= {4, 8}
    if target.has("avxvnni"):
        out |= {4, 8}
    return frozenset(out)


def _contains_break(s: Stmt) -> bool:
    from ..loop.stmt import walk_stmt
    return any(isinstance(x, Break) for x in walk_stmt(s))


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _depends(e: Expr, var: Var) -> bool:
    from ..loop.expr import depends_on
    return depends_on(e, var)


def _identity(op: str, dtype: str):
    from ..loop.expr import identity_of
    return identity_of({"add": "sum", "mul": "prod", "max": "max", "min": "min"}[op], dtype).value


def _align(dtype: str) -> int:
    from ..loop.expr import dtype_bytes
    return max(1, dtype_bytes(dtype))


def _float_width(dtype: str) -> int:
    return {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}[dtype]


def _align_of_type(t: ir.Type) -> int:
    e = U.elem_type(t)
    if isinstance(e, ir.IntType):
        return max(1, e.width // 8)
    return {ir.FloatType: 4, ir.DoubleType: 8, ir.HalfType: 2}.get(type(e), 1)
