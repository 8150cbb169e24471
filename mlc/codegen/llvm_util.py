"""Small helpers over llvmlite.ir: dtype <-> LLVM type, constants, intrinsics, broadcasts."""
from __future__ import annotations

import llvmlite.ir as ir

from ..errors import CodegenError

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
F16 = ir.HalfType()
PTR = ir.PointerType()
VOID = ir.VoidType()

_REGISTER_TYPES = {
    "float32": F32, "float64": F64, "float16": F16, "bfloat16": F32,
    "int8": I8, "uint8": I8, "int16": ir.IntType(16), "uint16": ir.IntType(16),
    "int32": I32, "uint32": I32, "int64": I64, "uint64": I64, "bool": I1,
}
# storage-only types (see mlc.loop.expr.STORAGE_DTYPES): one byte each
_REGISTER_TYPES.update({dt: I8 for dt in ("int4", "uint4", "int2", "uint2", "float8_e4m3fn",
                                          "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
                                          "float4_e2m1fn", "float8_e8m0fnu")})
# How values sit in memory when that differs from how they are computed with
_MEMORY_TYPES = {"bool": I8, "bfloat16": ir.IntType(16)}


def reg_type(dtype: str) -> ir.Type:
    """The LLVM type a value of ``dtype`` is computed in."""
    try:
        return _REGISTER_TYPES[dtype]
    except KeyError:
        raise CodegenError(f"no code generation for dtype {dtype!r}") from None


def mem_type(dtype: str) -> ir.Type:
    """The LLVM type a value of ``dtype`` is stored as."""
    return _MEMORY_TYPES.get(dtype) or reg_type(dtype)


def vec(ty: ir.Type, lanes: int) -> ir.Type:
    return ty if lanes == 1 else ir.VectorType(ty, lanes)


def lanes_of(v: ir.Value) -> int:
    return v.type.count if isinstance(v.type, ir.VectorType) else 1


def elem_type(t: ir.Type) -> ir.Type:
    return t.element if isinstance(t, ir.VectorType) else t


def suffix(t: ir.Type) -> str:
    """The type suffix LLVM intrinsic names use (f32, v16f32, i64, p0, v16p0, ...)."""
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{suffix(t.element)}"
    if isinstance(t, ir.FloatType):
        return "f32"
    if isinstance(t, ir.DoubleType):
        return "f64"
    if isinstance(t, ir.HalfType):
        return "f16"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    if isinstance(t, ir.PointerType):
        return "p0"
    raise CodegenError(f"no intrinsic suffix for type {t}")


def intrinsic(module: ir.Module, name: str, ret: ir.Type, args: list) -> ir.Function:
    """Get or declare an LLVM intrinsic (or external function) by its full name."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    return fn


def constant(ty: ir.Type, value) -> ir.Constant:
    """A scalar or splat vector constant."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def iota(lanes: int, ty: ir.Type = I64) -> ir.Constant:
    return ir.Constant(ir.VectorType(ty, lanes), [ir.Constant(ty, i) for i in range(lanes)])


def splat(b: ir.IRBuilder, v: ir.Value, lanes: int) -> ir.Value:
    """Broadcast scalar ``v`` to ``lanes`` lanes (constants fold to constant vectors)."""
    if lanes == 1 or isinstance(v.type, ir.VectorType):
        return v
    if isinstance(v, ir.Constant):
        return ir.Constant(ir.VectorType(v.type, lanes), [v] * lanes)
    vt = ir.VectorType(v.type, lanes)
    tmp = b.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(I32, 0))
    return b.shuffle_vector(tmp, ir.Constant(vt, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def lane_mask(lanes: int, active: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I1, lanes), [1 if i < active else 0 for i in range(lanes)])
