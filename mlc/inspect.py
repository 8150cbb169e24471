"""Look inside a compilation: every stage of the path from ONNX to machine code as text.

    print(mlc.inspect("model.onnx", stage="fused"))
    print(mlc.inspect("model.onnx", stage="loop", kernel="k3_Conv_Add_Relu"))
    open("fused.dot", "w").write(mlc.inspect_dot("model.onnx"))

Stages, in pipeline order:

    graph      the graph IR right after the ONNX frontend (shapes bound, constants folded)
    fused      after the graph passes: one entry per kernel with its fused ops, tensors,
               FLOPs and bytes moved (and the views that cost nothing)
    loop       the lowered loop nests of every kernel (the schedule applied)
    llvm       LLVM IR after the optimiser (whole module, or one kernel's functions)
    asm        the machine code as assembly (whole module, or one kernel)
    artifact   for a saved ``.mlc`` file: its metadata (target, I/O, kernels, schedules)

The stages come from the real pipeline (``compile_graph`` with a trace hook that stops
right after the stage asked for), so what is shown is what ``mlc.compile`` builds.

(``mlc.inspect`` is both this module and its main function: the module is callable.)
"""
from __future__ import annotations

import os
import re
import sys
import types

from .errors import MlcError

STAGES = ("graph", "fused", "loop", "llvm", "asm", "artifact")


class _Stop(Exception):
    """Raised by the trace hook to end a compile once the wanted stage is captured."""


def _capture(model, stage: str, input_shapes, target) -> dict:
    """Run the pipeline up to ``stage``; returns the captured stages."""
    from . import api  # noqa: F401  (registers the operator library)
    from .compiler.pipeline import CompileOptions, compile_graph
    from .frontend import import_model
    from .graph.passes import default_passes
    from .target import Target
    tgt = Target.from_string(target)
    graph = import_model(model, input_shapes=dict(input_shapes) if input_shapes else None,
                         expand_control_flow=True)
    captured = {"graph": graph, "target": tgt}
    if stage == "graph":
        return captured
    stop_at = {"fused": "lowered", "loop": "lowered", "llvm": "llvm_ir", "asm": "llvm_ir"}[stage]

    def trace(name, payload):
        captured[name] = payload
        if name == stop_at:
            raise _Stop

    try:
        compile_graph(graph, CompileOptions(target=tgt, passes=default_passes, trace=trace,
                                            schedules=_tuned_schedules(tgt)))
    except _Stop:
        pass
    return captured


def _tuned_schedules(target) -> dict:
    """The schedules ``mlc.compile`` applies by default (best tuning record per kernel)."""
    try:
        from .api import _tuning_records
    except ImportError:
        return {}
    best = _tuning_records(None, target)
    return {key: best.schedule_for(key) for key in best.best}


def inspect(model, stage: str = "fused", kernel: str | None = None, input_shapes=None,
            target="x86") -> str:
    """Text of one compilation ``stage`` (see the module docstring) of ``model`` (an ONNX
    path, bytes or ModelProto; for stage "artifact" a saved ``.mlc`` path).  ``kernel``
    restricts loop/llvm/asm to one kernel (by name, e.g. ``k3_Conv_Add_Relu``, or its
    function symbol)."""
    if stage not in STAGES:
        raise MlcError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    from .runtime.artifact import is_artifact
    if is_artifact(model):
        if stage not in ("artifact",):
            raise MlcError(f"stage {stage!r} needs the ONNX model: an .mlc file keeps only the compiled "
                           "code and its metadata (stage 'artifact' shows them)")
        return _artifact_text(os.fspath(model), kernel)
    if stage == "artifact":
        raise MlcError("stage 'artifact' shows a saved .mlc file; give the path of one")
    if kernel is not None and stage in ("graph", "fused"):
        raise MlcError(f"--kernel applies to the loop, llvm and asm stages, not {stage!r}")
    cap = _capture(model, stage, input_shapes, target)
    if stage == "graph":
        return str(cap["graph"])
    if stage == "fused":
        return _fused_text(cap["fused"], cap["lowered"])
    pairs = cap["lowered"]
    if stage == "loop":
        chosen = _select(pairs, kernel)
        return "\n\n".join(_loop_text(rec, lk) for rec, lk in chosen)
    from .codegen.jit import parse_and_optimize, target_machine
    mod = parse_and_optimize(cap["llvm_ir"], cap["target"])
    if stage == "llvm":
        if kernel is None:
            return str(mod)
        rec = _select(pairs, kernel)[0][0]
        fns = [str(f) for f in sorted(mod.functions, key=lambda f: f.name != rec.symbol)
               if _belongs(f.name, rec.symbol) and not f.is_declaration]
        if not fns:
            return f"; kernel {rec.name} ({rec.symbol}) was inlined into its callers by the optimiser"
        return f"; kernel {rec.name}: ops {'+'.join(rec.ops)}\n" + "\n".join(fns)
    asm = target_machine(cap["target"]).emit_assembly(mod)
    if kernel is None:
        return asm
    rec = _select(pairs, kernel)[0][0]
    return _asm_of(asm, rec)


def _belongs(fname: str, symbol: str) -> bool:
    """A kernel's functions: its own, its parallel region bodies and their trampolines."""
    return fname == symbol or re.fullmatch(re.escape(symbol) + r"_r\d+(_t)?", fname) is not None


def _select(pairs: list, kernel: str | None) -> list:
    if kernel is None:
        return pairs
    chosen = [(r, lk) for r, lk in pairs if kernel in (r.name, r.symbol)]
    if not chosen:
        names = ", ".join(r.name for r, _ in pairs)
        raise MlcError(f"no kernel named {kernel!r}; the kernels are: {names}")
    return chosen[:1]


def _asm_of(asm: str, rec) -> str:
    lines = asm.splitlines()
    out, inside = [], False
    for line in lines:
        m = re.match(r"^([A-Za-z_.$][\w.$]*):", line)
        if m and _belongs(m.group(1), rec.symbol):
            inside = True
        if inside:
            out.append(line)
            if re.match(r"^\s*\.size\s+([\w.$]+),", line):
                inside = False
                out.append("")
    if not out:
        return f"# kernel {rec.name} ({rec.symbol}) was inlined into its callers by the optimiser"
    return f"# kernel {rec.name}: ops {'+'.join(rec.ops)}\n" + "\n".join(out)


def _loop_text(rec, lk) -> str:
    sched = "; ".join(" ".join(map(str, step)) for step in rec.schedule) or "(none)"
    head = (f"# {rec.name}: ops {'+'.join(rec.ops)}, {rec.flops:,} FLOPs, "
            f"{'tuned' if rec.tuned else 'default'} schedule: {sched}")
    return head + "\n" + str(lk)


def _mb(n: int) -> str:
    return f"{n / 1e6:.3f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _flops(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} "


def _kernel_groups(graph, lowered: list) -> list:
    """[(group node, member nodes, KernelRecord | None, LoweredKernel | None)] in order,
    views included (with no record)."""
    from .compiler.pipeline import partition
    out = []
    it = iter(lowered)
    for kind, payload, head in partition(graph):
        if kind == "view":
            out.append((head, [payload], None, None))
        else:
            rec, lk = next(it, (None, None))
            out.append((head, payload, rec, lk))
    return out


def _group_inputs(nodes: list) -> list:
    produced = {o for n in nodes for o in n.outputs if o}
    names: list = []
    for n in nodes:
        for i in n.inputs:
            if i and i not in produced and i not in names:
                names.append(i)
    return names


def _fused_text(graph, lowered: list) -> str:
    groups = _kernel_groups(graph, lowered)
    nk = sum(1 for g in groups if g[2] is not None)
    lines = [f"fused graph {graph.name}: {nk} kernels, {len(groups) - nk} views"]
    for name in graph.inputs:
        lines.append(f"  input  {name}: {graph.tensor(name).type_str()}")
    tot_flops = tot_bytes = 0
    for head, nodes, rec, lk in groups:
        outs = ", ".join(f"{o}: {graph.tensor(o).type_str()}" for o in head.outputs if o)
        if rec is None:
            lines.append(f"  view   {nodes[0].op}({', '.join(i for i in nodes[0].inputs if i)}) -> {outs}")
            continue
        in_names = _group_inputs(nodes)
        act = wts = 0
        for k, buf in enumerate(lk.inputs):
            const = k >= len(in_names) or graph.is_constant(in_names[k])
            if const:
                wts += buf.nbytes
            else:
                act += buf.nbytes
        out_b = sum(b.nbytes for b in lk.outputs)
        moved = act + wts + out_b
        tot_flops += rec.flops
        tot_bytes += moved
        intensity = rec.flops / moved if moved else 0.0
        lines.append(f"  {rec.name}  [{'+'.join(rec.ops)}]")
        lines.append(f"      nodes: {', '.join(n.name or n.op for n in nodes)}")
        ins = ", ".join(("$" if graph.is_constant(i) else "%") + f"{i}: {graph.tensor(i).type_str()}"
                        for i in in_names)
        lines.append(f"      in:  {ins}")
        lines.append(f"      out: {outs}")
        lines.append(f"      {_flops(rec.flops)}FLOPs, bytes moved {_mb(moved)} (activations in "
                     f"{_mb(act)}, weights {_mb(wts)}, out {_mb(out_b)}), {intensity:.1f} FLOP/byte")
    for name in graph.outputs:
        lines.append(f"  output {name}: {graph.tensor(name).type_str()}")
    lines.append(f"total: {_flops(tot_flops)}FLOPs, {_mb(tot_bytes)} moved by kernels")
    return "\n".join(lines)


def inspect_dot(model, input_shapes=None, target="x86") -> str:
    """The fused graph as Graphviz ``dot`` text: one box per kernel (ops, output shape,
    FLOPs), dashed boxes for views, ellipses for the model's inputs and outputs; edges
    carry the tensor shapes.  Render with ``dot -Tsvg fused.dot -o fused.svg``."""
    cap = _capture(model, "fused", input_shapes, target)
    graph = cap["fused"]
    groups = _kernel_groups(graph, cap["lowered"])

    def esc(s) -> str:
        return str(s).replace("\\", "\\\\").replace('"', '\\"')

    def q(s) -> str:
        return '"' + esc(s) + '"'

    def label(*parts) -> str:
        return '"' + "\\n".join(esc(p) for p in parts) + '"'

    lines = [f"digraph {q(graph.name)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=8];']
    producer = {}
    for name in graph.inputs:
        nid = f"in:{name}"
        producer[name] = nid
        lines.append(f"  {q(nid)} [shape=ellipse, label={label(name, graph.tensor(name).type_str())}];")
    for k, (head, nodes, rec, lk) in enumerate(groups):
        nid = f"g{k}"
        shape = " ".join(graph.tensor(o).type_str() for o in head.outputs if o)
        if rec is None:
            lines.append(f"  {q(nid)} [shape=box, style=dashed, label={label(nodes[0].op + ' (view)', shape)}];")
        else:
            lines.append(f"  {q(nid)} [shape=box, style=\"rounded,filled\", fillcolor=\"#dde8f7\", "
                         f"label={label(rec.name, '+'.join(rec.ops), shape, _flops(rec.flops) + 'FLOPs')}];")
        for n in nodes:
            for o in n.outputs:
                if o:
                    producer.setdefault(o, nid)
        for i in _group_inputs(nodes):
            src = producer.get(i)
            if src is not None and src != nid:
                lines.append(f"  {q(src)} -> {q(nid)} [label={q(graph.tensor(i).type_str())}];")
    for name in graph.outputs:
        nid = f"out:{name}"
        lines.append(f"  {q(nid)} [shape=ellipse, style=bold, label={q(name)}];")
        src = producer.get(name)
        if src is not None:
            lines.append(f"  {q(src)} -> {q(nid)} [label={q(graph.tensor(name).type_str())}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _artifact_text(path: str, kernel: str | None) -> str:
    from .runtime.artifact import read_metadata
    meta = read_metadata(path)
    t = meta["target"]
    size = os.path.getsize(path)
    secs = meta.get("sections", {})
    lines = [f"{path}: mlc artifact, format {meta.get('format_version')}, written by mlc "
             f"{meta.get('mlc_version')} on {meta.get('created')}, {size / 1e6:.2f} MB",
             f"  target: {t.get('cpu')} ({t.get('triple')}), requires {', '.join(t.get('required_features', []))}",
             f"  object code {secs.get('object', {}).get('size', 0):,} bytes, weights "
             f"{secs.get('weights', {}).get('size', 0):,} bytes, arena {meta.get('arena_bytes', 0):,} bytes"]
    for kind in ("inputs", "outputs"):
        for x in meta[kind]:
            lines.append(f"  {kind[:-1]:6s} {x['name']}: {x['dtype']}{x['shape']}")
    if meta.get("copy_outputs"):
        lines.append(f"  copied outputs: {meta['copy_outputs']}")
    ks = meta.get("kernels", [])
    if kernel is not None:
        ks = [k for k in ks if kernel in (k.get("name"), k.get("symbol"))]
        if not ks:
            raise MlcError(f"no kernel named {kernel!r} in {path}")
    lines.append(f"  {len(meta.get('kernels', []))} kernels:")
    for k in ks:
        sched = "; ".join(" ".join(map(str, step)) for step in k.get("schedule") or [])
        lines.append(f"    {k.get('name')}  [{'+'.join(k.get('ops') or [])}]  out {k.get('out_shapes')}  "
                     f"{_flops(int(k.get('flops') or 0))}FLOPs  {'tuned' if k.get('tuned') else 'default'}")
        if kernel is not None or len(ks) <= 64:
            lines.append(f"        schedule: {sched or '(none)'}")
    st = meta.get("stats", {})
    if st:
        lines.append(f"  stats: {st}")
    return "\n".join(lines)


class _CallableModule(types.ModuleType):
    """``mlc.inspect`` is this module once imported (Python binds a submodule to its
    parent's attribute of the same name), so the module itself calls :func:`inspect`."""

    def __call__(self, *args, **kwargs):
        return inspect(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
