"""Control flow: If and Loop become plain nodes, or a clear UnsupportedError.

mlc compiles static dataflow, so control flow is removed before anything else:

* **If** with a condition known at compile time (often computed from shapes, folded by
  the frontend): the nodes of the taken branch replace the If.  With a run-time
  condition: BOTH branches are inlined (ONNX ops are side-effect free, so computing both
  is correct) and each output is ``Where(cond, then_out, else_out)`` -- only when the two
  branches give outputs of the same static shape and type (else UnsupportedError).
* **Loop** with a compile-time trip count ``M <= MAX_UNROLL``, the loop's ``cond`` input
  absent or constant true, and the body's condition output folding to constant true after
  every iteration but the last: the body is unrolled ``M`` times, loop-carried values
  wired from one copy to the next, the iteration number a per-copy constant, and every
  scan output the copies' values stacked along a new axis 0 (Unsqueeze + Concat).
  Anything else (a run-time trip count, a data-dependent early exit, too many iterations,
  sequence-typed values) is an UnsupportedError naming the Loop and why.

Branch and body tensors are renamed (``<node name>/then/<name>``, ``<node>/it<i>/<name>``),
including their uses in nested subgraphs (names a nested graph defines itself shadow);
bodies keep reading outer-scope tensors by name.

Where it runs: **in the frontend, on the ONNX graph** (:func:`expand_control_flow`, called
by ``mlc.frontend.import_model`` after constant folding).  The expanded graph then goes
through onnx shape inference and folding again (to a fixed point, expanding what became
expandable, e.g. an If nested in a Loop body): only then are the shapes of what the
branches / iterations compute static (a Loop's scan outputs, or an If whose branches
differ in shape, have no static shape before), and the iteration numbers folded into the
Slice / Gather bounds the kernels need as constants.  :func:`check_no_control_flow`, the
first pass of ``default_passes``, refuses any If / Loop still in a graph (one imported
with ``check_supported=False``, which keeps them as nested graphs).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ...errors import ConstantRequiredError, DataDependentShapeError, UnsupportedError
from ...naming import fresh_name
from ..ir import Graph

MAX_UNROLL = 64                 # Loop iterations unrolled at most
_CONTROL_OPS = ("If", "Loop")


# --------------------------------------------------------------------------------------
# the mlc graph pass
# --------------------------------------------------------------------------------------

def check_no_control_flow(graph: Graph) -> Graph:
    """Raise an UnsupportedError for every If / Loop still in ``graph`` (see module doc)."""
    items = []
    for node in graph.nodes:
        if node.op in _CONTROL_OPS and node.domain in ("", "ai.onnx"):
            reason = ("mlc expands If / Loop when it imports a model (mlc.frontend.import_model "
                      "with check_supported=True); this graph still has it")
            items.append((node.op, node.opset, node.name, reason))
    if items:
        listed = "; ".join(f"{op} node {name!r}: {why}" for op, _, name, why in items)
        raise UnsupportedError(f"control flow mlc cannot compile: {listed}", items)
    return graph


# --------------------------------------------------------------------------------------
# the frontend step
# --------------------------------------------------------------------------------------

class _Unsupported(Exception):
    """Why a node cannot be expanded; ``tensors``: run-time values that would let it be."""

    def __init__(self, message: str, tensors=()):
        super().__init__(message)
        self.tensors = tuple(tensors)


class ControlFlowValueError(ConstantRequiredError, DataDependentShapeError):
    """Control flow that needs run-time *values* (a Loop's trip count or condition, an
    If's condition when its branches differ in shape).  Both a DataDependentShapeError
    (so ``mlc.compile`` returns a model that specialises at run time) and a
    ConstantRequiredError naming the tensors (so it specialises on the graph inputs they
    are computed from)."""


def expand_control_flow(wg):
    """Expand every If / Loop of the frontend's working graph (see the module doc), or
    raise an UnsupportedError naming each one that cannot be and why.

    ``wg``: mlc.frontend.fold.WorkingGraph after constant folding; returns it expanded
    and folded again."""
    from ...frontend.fold import fold_constants
    if not any(_is_control(n) for n in wg.nodes):
        return wg
    checks: list = []
    while True:
        changed, problems = _expand_once(wg, checks)
        if not changed:
            break
        wg = fold_constants(wg)
        _verify(wg, checks)
        checks.clear()
    if problems:
        listed = "; ".join(f"{n.op_type} node {n.name!r}: {e}" for n, e in problems)
        items = [(n.op_type, int(wg.opsets.get("", 0)), n.name, str(e)) for n, e in problems]
        tensors = [t for _, e in problems for t in e.tensors]
        msg = f"control flow mlc cannot compile: {listed}"
        if tensors and all(e.tensors for _, e in problems):
            raise ControlFlowValueError(msg, items, tensors=tensors)
        raise UnsupportedError(msg, items)
    return wg


def _is_control(node) -> bool:
    return node.op_type in _CONTROL_OPS and node.domain in ("", "ai.onnx")


def _expand_once(wg, checks: list) -> tuple[bool, list]:
    """One sweep over the nodes: expand what can be.  Returns (changed, [(node, reason)])."""
    names = _all_names(wg)
    out, changed, problems = [], False, []
    for node in wg.nodes:
        if not _is_control(node):
            out.append(node)
            continue
        try:
            if node.op_type == "If":
                new = _expand_if(node, wg, names, checks)
            else:
                new = _expand_loop(node, wg, names, checks)
        except _Unsupported as e:
            problems.append((node, e))
            out.append(node)
            continue
        out.extend(new)
        changed = True
    wg.nodes = out
    return changed, problems


def _verify(wg, checks: list) -> None:
    """What could only be checked once the expansion was folded (see the callers)."""
    from ...frontend.onnx_types import dims, tensor_dtype
    for kind, node, what in checks:
        if kind == "true":
            name, i = what
            v = wg.consts.get(name)
            if v is None or not bool(np.all(np.asarray(v))):
                why = ("its condition is not a compile-time constant" if v is None else "it exits early")
                raise UnsupportedError(
                    f"Loop node {node.name!r}: cannot unroll it: after iteration {i} {why} "
                    "(a data-dependent trip count; mlc compiles static dataflow only)",
                    [(node.op_type, int(wg.opsets.get("", 0)), node.name, "data-dependent loop exit")])
        else:
            a, b, out = what
            ta, tb = wg.types.get(a), wg.types.get(b)
            sa, sb = (dims(ta) if ta is not None else None), (dims(tb) if tb is not None else None)
            static = sa is not None and all(isinstance(x, int) for x in sa)
            ok = static and sa == sb and tensor_dtype(ta) == tensor_dtype(tb)
            if a in wg.consts and b in wg.consts:
                ok = wg.consts[a].shape == wg.consts[b].shape and wg.consts[a].dtype == wg.consts[b].dtype
            if not ok:
                raise ControlFlowValueError(
                    f"If node {node.name!r}: its condition is only known at run time and its branches "
                    f"give output {out!r} different shapes or types ({_type_text(ta)} vs {_type_text(tb)}); "
                    "mlc computes both branches and selects, which needs identical static types",
                    [(node.op_type, int(wg.opsets.get("", 0)), node.name, "branches of different shapes")],
                    tensors=[node.input[0]])


def _type_text(tp) -> str:
    from ...frontend.onnx_types import dims, tensor_dtype
    if tp is None:
        return "unknown"
    d = dims(tp)
    return f"{tensor_dtype(tp)}[{', '.join('?' if not isinstance(x, int) else str(x) for x in (d or ()))}]"


# --------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------

def _all_names(wg) -> set:
    names = set(wg.consts) | {vi.name for vi in wg.inputs} | {vi.name for vi in wg.outputs}

    def visit(nodes):
        for n in nodes:
            names.update(n.input)
            names.update(n.output)
            for a in n.attribute:
                for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    names.update(vi.name for vi in g.input)
                    names.update(t.name for t in g.initializer)
                    visit(g.node)
    visit(wg.nodes)
    return names


def _prefix(base: str, names: set) -> str:
    p, i = f"{base}/", 1
    while any(n.startswith(p) for n in names):
        i += 1
        p = f"{base}#{i}/"
    names.add(p)          # reserve (no real name ends with "/")
    return p


def _defined(g: onnx.GraphProto) -> set:
    out = {vi.name for vi in g.input} | {t.name for t in g.initializer}
    out |= {sp.values.name for sp in g.sparse_initializer}
    for n in g.node:
        out.update(o for o in n.output if o)
    return out


def _rename_nested(g: onnx.GraphProto, mapping: dict) -> onnx.GraphProto:
    """A copy of nested graph ``g`` with references to outer names renamed by ``mapping``
    (names ``g`` defines itself shadow the mapping)."""
    inner = {k: v for k, v in mapping.items() if k not in _defined(g)}
    new = onnx.GraphProto()
    new.CopyFrom(g)
    if not inner:
        return new
    del new.node[:]
    new.node.extend(_rename_node(n, inner, {}, "") for n in g.node)
    for vi in new.output:
        if vi.name in inner:
            vi.name = inner[vi.name]
    return new


def _rename_node(n: onnx.NodeProto, mapping: dict, out_mapping: dict, name_prefix: str) -> onnx.NodeProto:
    new = onnx.NodeProto()
    new.CopyFrom(n)
    del new.input[:]
    new.input.extend(mapping.get(i, i) if i else i for i in n.input)
    del new.output[:]
    new.output.extend(out_mapping.get(o, o) if o else o for o in n.output)
    if name_prefix:
        new.name = name_prefix + n.name
    attrs = []
    for a in n.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            a = helper.make_attribute(a.name, _rename_nested(a.g, mapping))
        elif a.type == onnx.AttributeProto.GRAPHS:
            a = helper.make_attribute(a.name, [_rename_nested(g, mapping) for g in a.graphs])
        attrs.append(a)
    del new.attribute[:]
    new.attribute.extend(attrs)
    return new


def _inline(body: onnx.GraphProto, prefix: str, bound: dict, wg) -> tuple[list, dict]:
    """The body's nodes renamed under ``prefix``; ``bound``: body input name -> source.

    Returns (nodes, mapping) where mapping takes every body name (inputs, initializers,
    node outputs) to its name in the enclosing graph.  Initializers become constants."""
    from ...frontend.onnx_types import constant_arrays
    mapping = dict(bound)
    for name, value in constant_arrays(body).items():
        if name in mapping:
            continue
        mapping[name] = prefix + name
        wg.consts[prefix + name] = value
    for n in body.node:
        for o in n.output:
            if o:
                mapping[o] = prefix + o
    nodes = [_rename_node(n, mapping, mapping, prefix) for n in body.node]
    return nodes, mapping


def _subgraph(node, name) -> onnx.GraphProto:
    for a in node.attribute:
        if a.name == name and a.type == onnx.AttributeProto.GRAPH:
            return a.g
    raise _Unsupported(f"it has no {name} attribute")


def _tensor_outputs(body: onnx.GraphProto, what: str) -> None:
    from ...frontend.onnx_types import type_kind
    for vi in body.output:
        kind = type_kind(vi.type) if vi.HasField("type") else None
        if kind not in (None, "tensor"):
            raise _Unsupported(f"{what} output {vi.name!r} is a {kind}; mlc supports tensors only")


def _const_scalar(wg, name):
    if not name:
        return None
    v = wg.consts.get(name)
    if v is None:
        return None
    v = np.asarray(v)
    if v.size != 1:
        raise _Unsupported(f"input {name!r} holds {v.size} values, not one")
    return v.reshape(-1)[0]


# --------------------------------------------------------------------------------------
# If
# --------------------------------------------------------------------------------------

def _expand_if(node, wg, names: set, checks: list) -> list:
    then_g, else_g = _subgraph(node, "then_branch"), _subgraph(node, "else_branch")
    outs = list(node.output)
    for g, what in ((then_g, "then_branch"), (else_g, "else_branch")):
        _tensor_outputs(g, what)
        if len(g.output) != len(outs):
            raise _Unsupported(f"{what} has {len(g.output)} outputs, the node {len(outs)}")
    cond = _const_scalar(wg, node.input[0])
    if cond is not None:
        taken = then_g if bool(cond) else else_g
        prefix = _prefix(f"{node.name or 'If'}/{'then' if bool(cond) else 'else'}", names)
        return _inline_to_outputs(taken, prefix, {}, outs, wg)
    # run-time condition: both branches, then Where per output
    from ...frontend.onnx_types import dims
    ctype = wg.types.get(node.input[0])
    cdims = dims(ctype) if ctype is not None else None
    nodes = []
    cond_name = node.input[0]
    if cdims is None or len(cdims) != 0:
        shape_name = fresh_name(names, f"{node.name}/cond_shape", sep="_")
        wg.consts[shape_name] = np.zeros((0,), np.int64)
        cond_name = fresh_name(names, f"{node.name}/cond", sep="_")
        nodes.append(helper.make_node("Reshape", [node.input[0], shape_name], [cond_name],
                                      name=f"{node.name}/cond_reshape"))
    results = []
    for g, tag in ((then_g, "then"), (else_g, "else")):
        prefix = _prefix(f"{node.name or 'If'}/{tag}", names)
        temp = [fresh_name(names, f"{prefix}out{i}", sep="_") if o else "" for i, o in enumerate(outs)]
        nodes += _inline_to_outputs(g, prefix, {}, temp, wg)
        results.append(temp)
    for i, o in enumerate(outs):
        if not o:
            continue
        a, b = results[0][i], results[1][i]
        nodes.append(helper.make_node("Where", [cond_name, a, b], [o], name=f"{node.name}/select{i}"))
        checks.append(("same", node, (a, b, o)))
    return nodes


def _inline_to_outputs(body, prefix: str, bound: dict, outs: list, wg) -> list:
    """Inline ``body`` and make its i-th output the tensor ``outs[i]`` (skipped if "")."""
    produced = {o for n in body.node for o in n.output if o}
    out_map = {}
    extra = []
    for vi, o in zip(body.output, outs):
        if o and vi.name in produced and vi.name not in out_map and vi.name not in bound:
            out_map[vi.name] = o          # the producing node writes the output directly
    # rename: out_map entries replace the prefixed names
    nodes, mapping = _inline(body, prefix, bound, wg)
    if out_map:
        ren = {mapping[k]: v for k, v in out_map.items()}
        nodes = [_rename_node(n, ren, ren, "") for n in nodes]
        mapping = {k: ren.get(v, v) for k, v in mapping.items()}
    for vi, o in zip(body.output, outs):
        if not o:
            continue
        src = mapping.get(vi.name, vi.name)
        if src == o:
            continue
        if src in wg.consts and src.startswith(prefix):
            wg.consts[o] = wg.consts[src]
            continue
        extra.append(helper.make_node("Identity", [src], [o], name=f"{prefix}out_{o}"))
    return nodes + extra


# --------------------------------------------------------------------------------------
# Loop
# --------------------------------------------------------------------------------------

def _expand_loop(node, wg, names: set, checks: list) -> list:
    body = _subgraph(node, "body")
    _tensor_outputs(body, "body")
    ins = list(node.input)
    n_carried = len(ins) - 2
    n_scan = len(body.output) - 1 - n_carried
    if len(body.input) != n_carried + 2 or n_scan < 0:
        raise _Unsupported(f"its body has {len(body.input)} inputs and {len(body.output)} outputs "
                           f"for {n_carried} loop-carried values")
    if not ins[0]:
        raise _Unsupported("it has no trip count (M); only loops with a compile-time trip count are unrolled")
    trips = _const_scalar(wg, ins[0])
    if trips is None:
        raise _Unsupported(f"its trip count {ins[0]!r} is only known at run time; only loops with a "
                           "compile-time trip count are unrolled", tensors=[t for t in ins[:2] if t])
    trips = int(trips)
    if trips > MAX_UNROLL:
        raise _Unsupported(f"trip count {trips} exceeds the {MAX_UNROLL} iterations mlc unrolls")
    if len(ins) > 1 and ins[1]:
        cond = _const_scalar(wg, ins[1])
        if cond is None:
            raise _Unsupported(f"its condition {ins[1]!r} is only known at run time", tensors=[ins[1]])
        if not bool(cond):
            trips = 0
    outs = list(node.output)
    if trips <= 0:
        if n_scan and any(outs[n_carried:]):
            raise _Unsupported("it runs zero times and has scan outputs (empty tensors are not supported)")
        return [helper.make_node("Identity", [ins[2 + j]], [o], name=f"{node.name}/final{j}")
                for j, o in enumerate(outs[:n_carried]) if o]
    opset = int(wg.opsets.get("", 0))
    b_in = [vi.name for vi in body.input]
    b_out = [vi.name for vi in body.output]
    carried = ins[2:]
    cond_src = None                       # the previous iteration's condition output
    nodes: list = []
    scans: list = [[] for _ in range(n_scan)]
    for i in range(trips):
        prefix = _prefix(f"{node.name or 'Loop'}/it{i}", names)
        it_name = prefix + b_in[0]
        wg.consts[it_name] = np.array(i, np.int64)
        bound = {b_in[0]: it_name}
        if cond_src is not None:
            bound[b_in[1]] = cond_src
        else:
            true_name = prefix + b_in[1]
            wg.consts[true_name] = np.array(True)
            bound[b_in[1]] = true_name
        for j in range(n_carried):
            bound[b_in[2 + j]] = carried[j]
        new, mapping = _inline(body, prefix, bound, wg)
        nodes += new
        res = [mapping.get(o, o) for o in b_out]
        cond_src = res[0]
        if i < trips - 1:
            checks.append(("true", node, (cond_src, i)))
        carried = res[1:1 + n_carried]
        for k in range(n_scan):
            scans[k].append(res[1 + n_carried + k])
    for j, o in enumerate(outs[:n_carried]):
        if o:
            nodes.append(helper.make_node("Identity", [carried[j]], [o], name=f"{node.name}/final{j}"))
    for k, o in enumerate(outs[n_carried:n_carried + n_scan]):
        if not o:
            continue
        parts = []
        for i, src in enumerate(scans[k]):
            u = fresh_name(names, f"{node.name}/scan{k}_{i}", sep="_")
            if opset >= 13:
                axes = fresh_name(names, f"{node.name}/axes0", sep="_")
                wg.consts[axes] = np.array([0], np.int64)
                nodes.append(helper.make_node("Unsqueeze", [src, axes], [u], name=f"{node.name}/unsq{k}_{i}"))
            else:
                nodes.append(helper.make_node("Unsqueeze", [src], [u], axes=[0], name=f"{node.name}/unsq{k}_{i}"))
            parts.append(u)
        nodes.append(helper.make_node("Concat", parts, [o], axis=0, name=f"{node.name}/scan{k}"))
    return nodes
