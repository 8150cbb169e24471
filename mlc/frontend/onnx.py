"""The ONNX frontend: a model file in, an mlc Graph with every type known out.

    graph = import_model("model.onnx", input_shapes={"input": (1, 3, 224, 224)})

``import_model`` runs, in order:

1. ``load_model``: a path, bytes or ModelProto; external data loaded from the model's
   directory.  Every failure is a ModelLoadError naming the file.  Then the model is split
   into a weight-free *skeleton* and its large initializers (:func:`split_weights`): the
   onnx tools below serialise the whole model on every call, and none needs weight values.
2. ``onnx.checker``, leniently (see :func:`run_checker`): structural damage is fatal; the
   sloppiness real exporters ship is repaired (unsorted nodes, a custom domain missing
   from opset_import, IR-3 initializers not listed as inputs), warned about (node-level
   schema complaints: unknown attributes or ops) or accepted silently (missing type
   metadata, which shape inference recomputes).
3. Opset: default-domain opsets 11 up to the newest this onnx knows are taken as they are
   (kernels read ``node.opset``); older ones go through ``onnx.version_converter`` (to 13,
   else 11).  Other domains are kept.  Model-local functions are inlined (onnx.inliner).
   Unnamed nodes get names, so every error can point at a node.
4. Initializers are constants, never run-time inputs — also when listed as graph inputs
   (the IR < 4 convention, and what torch's keep_initializers_as_inputs produces).  ONNX
   IR >= 4 would let a caller override such an input; mlc freezes it, as compilers do.
5. Input shapes bound from ``input_shapes`` (mlc.frontend.bind).
6. Shape inference and constant folding to a fixed point (mlc.frontend.fold).
7. If ``check_supported``: one UnsupportedError listing every op with no registered kernel.
   This runs before the static-shape check so that a model with a data-dependent op
   (NonZero...) mlc lacks anyway is told "unsupported", not "unknown shape".
8. Conversion to ``mlc.graph.Graph`` (mlc.frontend.convert), ShapeError for any main-graph
   tensor whose shape is still not static.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Mapping, Union

import numpy as np
import onnx
import onnx.inliner
import onnx.version_converter
from google.protobuf.message import Message
from onnx import external_data_helper

from ..errors import ModelLoadError, ShapeError
from ..graph.ir import Graph
from ..graph.passes.control_flow import expand_control_flow as _expand_control_flow
from .bind import bind_input_shapes
from .convert import raise_if_unsupported, to_graph
from .fold import WorkingGraph, fold_constants
from .qdq import has_qdq, qdq_to_qlinear
from .bounded import bound_data_dependent_outputs
from .onnx_types import constant_arrays, dims, normalize_domain, to_array, type_kind
from .scopes import name_unnamed_nodes, subgraphs, topological_order

ModelSource = Union[str, os.PathLike, bytes, bytearray, onnx.ModelProto]

MIN_OPSET = 11                       # older default-domain opsets are converted
CONVERSION_TARGETS = (13, 11)        # tried in order by onnx.version_converter
_PROTOBUF_LIMIT = 2**31 - 1          # onnx.checker needs the model serialised in one message


class ModelWarning(UserWarning):
    """The model is sloppy in a way mlc tolerates (a checker complaint it works around)."""


# --- loading --------------------------------------------------------------------------------

def load_model(model: ModelSource) -> onnx.ModelProto:
    """Read a path, raw bytes or a ModelProto into a ModelProto with its data in memory.

    External-data tensors are loaded from the model's directory.  Missing files, bytes that
    are not an ONNX protobuf (or are truncated), and external data that cannot be found
    raise ModelLoadError naming the file.  A ModelProto is returned as is (not copied).
    """
    if isinstance(model, onnx.ModelProto):
        _require_external_data_loaded(model, "the given ModelProto",
                                      "pass the model's file path, or call "
                                      "onnx.load_external_data_for_model(model, base_dir) first")
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _load_bytes(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return _load_path(os.fspath(model))
    raise ModelLoadError(f"cannot load a model from a {type(model).__name__}: pass a file path, "
                         "the file's bytes or an onnx.ModelProto")


def _load_path(path: str) -> onnx.ModelProto:
    if not os.path.exists(path):
        raise ModelLoadError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ModelLoadError(f"model path is a directory, not an ONNX file: {path}")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:       # DecodeError, OSError, onnx's own ValueErrors
        raise ModelLoadError(f"{path} is not a readable ONNX model (truncated, or not an ONNX "
                             f"protobuf): {_one_line(e)}") from e
    _require_model(proto, path)
    _load_external_data(proto, path)
    return proto


def _load_bytes(data: bytes) -> onnx.ModelProto:
    where = f"the model bytes ({len(data)} bytes)"
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:
        raise ModelLoadError(f"{where} are not an ONNX model (truncated, or not an ONNX "
                             f"protobuf): {_one_line(e)}") from e
    _require_model(proto, where)
    _require_external_data_loaded(proto, where, "bytes carry no directory to find them in: "
                                  "pass the model's file path instead")
    return proto


def _require_model(proto: onnx.ModelProto, where: str) -> None:
    """Protobuf parses many byte strings; a model has at least an IR version and a graph."""
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise ModelLoadError(f"{where} is not an ONNX model (no IR version or no graph: a "
                             "truncated file, or a different kind of file)")


def _external_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in external_data_helper._get_all_tensors(proto)
            if external_data_helper.uses_external_data(t)]


def _require_external_data_loaded(proto: onnx.ModelProto, where: str, advice: str) -> None:
    tensors = _external_tensors(proto)
    if tensors:
        files = sorted({external_data_helper.ExternalDataInfo(t).location for t in tensors})
        raise ModelLoadError(f"{where} keeps {len(tensors)} tensor(s) in external data files "
                             f"({', '.join(map(repr, files))}); {advice}")


def _load_external_data(proto: onnx.ModelProto, path: str) -> None:
    """Load external tensors, first checking every file exists so the error lists them all."""
    tensors = _external_tensors(proto)
    if not tensors:
        return
    base = os.path.dirname(os.path.abspath(path))
    missing: dict[str, list[str]] = {}
    for t in tensors:
        location = external_data_helper.ExternalDataInfo(t).location
        if not os.path.isfile(os.path.join(base, location)):
            missing.setdefault(location, []).append(t.name)
    if missing:
        listed = "; ".join(f"{loc!r} (tensors {', '.join(map(repr, names[:5]))}"
                           f"{', ...' if len(names) > 5 else ''})" for loc, names in missing.items())
        raise ModelLoadError(f"{path}: external data file(s) missing from {base}: {listed}")
    try:
        external_data_helper.load_external_data_for_model(proto, base)
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot read its external data: {_one_line(e)}") from e


# --- importing ------------------------------------------------------------------------------

def import_model(model: ModelSource, input_shapes: Mapping[str, tuple] | None = None,
                 check_supported: bool = True, constant_inputs: Mapping[str, object] | None = None,
                 expand_control_flow: bool = False) -> Graph:
    """Load an ONNX model and return it as an mlc Graph with every type static.

    ``input_shapes`` maps input names to full shapes, binding symbolic dims.  With
    ``check_supported`` every op must have a registered mlc kernel (one UnsupportedError
    lists all that do not).  ``constant_inputs`` freezes run-time inputs to given values
    (they become constants and leave the graph's inputs): how a model whose shapes depend
    on input *values* (a Reshape target fed as an input) is specialised.
    ``expand_control_flow`` replaces If / Loop by plain nodes (or raises UnsupportedError),
    as ``mlc.compile`` does; otherwise they stay nodes with nested body Graphs.
    Raises ModelLoadError, ShapeError or UnsupportedError.
    """
    where = _describe(model)
    proto = load_model(model)
    if has_qdq(proto):
        # int8 Conv/MatMul written as float ops between Q/DQ pairs: run them as integer ops
        # (before folding would turn the dequantised weights into float constants)
        proto = qdq_to_qlinear(proto)
    proto, weights = split_weights(proto)                  # the caller's proto is not modified
    add_missing_opset_imports(proto, where)
    run_checker(proto, where)
    proto = convert_opset(proto, where)
    proto = _inline_local_functions(proto, where)
    name_unnamed_nodes(proto.graph)
    wg = fold_constants(working_graph(proto, weights, input_shapes, where, constant_inputs))
    if check_supported:
        raise_if_unsupported(wg.nodes, wg.opsets)
    if expand_control_flow:
        # If / Loop -> plain nodes, re-folded (mlc.graph.passes.control_flow)
        wg = _expand_control_flow(wg)
    wg = bound_data_dependent_outputs(wg)
    return to_graph(wg)


def _describe(model: ModelSource) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    if isinstance(model, onnx.ModelProto):
        return f"model {model.graph.name!r}" if model.graph.name else "the given ModelProto"
    return "the model bytes"


# --- weights ------------------------------------------------------------------------------

SKELETON_MAX_ELEMENTS = 4096     # initializers bigger than this are held out of the skeleton


def split_weights(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A weight-free copy of the model ("skeleton") and the main graph's large initializers.

    The checker, the version converter and the inliner each serialise the whole model;
    on a 100 MB model that costs about a second.  None of them needs weight *values* —
    only their names, types and shapes — so they see each large initializer as a typed
    graph input instead.  (Small ones stay: converters read shapes, scales, pads.)  The
    skeleton is a new message: the caller's ModelProto is never modified.
    """
    graph = proto.graph
    big = {t.name: t for t in graph.initializer
           if int(np.prod(t.dims, dtype=np.int64)) > SKELETON_MAX_ELEMENTS}
    skeleton = onnx.ModelProto()
    _copy_fields(proto, skeleton, skip=("graph",))
    sk = skeleton.graph
    _copy_fields(graph, sk, skip=("initializer", "input"))
    sk.initializer.extend(t for t in graph.initializer if t.name not in big)
    sk.input.extend(graph.input)
    listed = {vi.name for vi in graph.input}
    sk.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                    for t in big.values() if t.name not in listed)
    return skeleton, big


def _copy_fields(src, dst, skip=()) -> None:
    """Copy every set field of protobuf message ``src`` into ``dst`` except those in ``skip``."""
    for field, value in src.ListFields():
        if field.name in skip:
            continue
        if isinstance(value, Message):
            getattr(dst, field.name).CopyFrom(value)
        elif hasattr(value, "extend") and not isinstance(value, (str, bytes)):
            getattr(dst, field.name).extend(value)
        else:
            setattr(dst, field.name, value)


# --- checking -------------------------------------------------------------------------------

# Checker complaints mlc tolerates.  Node-level schema problems (an unknown op is reported by
# the unsupported-op check, a bad attribute by the op's kernel) are warned about; missing
# type metadata, which shape inference recomputes anyway, is accepted silently — it is too
# common (onnx.helper models, several exporters) to be worth a warning.
_TOLERATED_WITH_WARNING = ("Bad node spec for node",)
_TOLERATED_SILENTLY = (
    "Field 'type' of 'value_info' is required but missing",
    "Field 'shape' of 'type' is required but missing",
    "Field 'elem_type' of 'tensor_type' is required but missing",
    "Field 'name' of 'graph' is required to be non-empty",
)


def run_checker(proto: onnx.ModelProto, where: str) -> None:
    """onnx.checker, failing only on structural damage.

    Unsorted nodes are sorted, and an IR-3 model with initializers not listed as inputs
    becomes IR 4, then the model is re-checked.  A tolerated node-level complaint becomes a
    ModelWarning, missing type metadata passes silently.  The checker stops at its first
    complaint, so what it did not reach is covered by mlc's
    own checks (names defined, SSA, order: scopes.topological_order; types: shape inference
    and conversion; ops: the unsupported-op check).
    """
    if proto.ByteSize() > _PROTOBUF_LIMIT:
        warnings.warn(f"{where}: larger than 2 GB, skipping onnx.checker", ModelWarning, stacklevel=3)
        return
    repaired: set[str] = set()
    while True:
        try:
            onnx.checker.check_model(proto)
            return
        except onnx.checker.ValidationError as e:
            msg = _one_line(e)
        if "must be topologically sorted" in msg and "order" not in repaired:
            _sort_main_graph(proto, where)
            repaired.add("order")
            continue
        if "in initializer but not in graph input" in msg and "ir" not in repaired:
            # IR 3 wanted every initializer listed as an input; exporters that forgot wrote an
            # IR 4 model in all but name (and version_converter rejects it as IR 3)
            proto.ir_version = 4
            repaired.add("ir")
            continue
        if any(p in msg for p in _TOLERATED_SILENTLY):
            return
        if any(p in msg for p in _TOLERATED_WITH_WARNING):
            warnings.warn(f"{where}: onnx.checker: {msg} (mlc continues)", ModelWarning, stacklevel=3)
            return
        raise ModelLoadError(f"{where} is not a valid ONNX model: onnx.checker says: {msg}")


def _sort_main_graph(proto: onnx.ModelProto, where: str) -> None:
    graph = proto.graph
    available = {vi.name for vi in graph.input} | set(_initializer_names(graph))
    ordered = topological_order(list(graph.node), available, where)
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
    warnings.warn(f"{where}: nodes were not in topological order; mlc sorted them", ModelWarning,
                  stacklevel=4)


def add_missing_opset_imports(proto: onnx.ModelProto, where: str) -> None:
    """Exporters of custom ops often forget their domain's opset_import: assume version 1."""
    known = {normalize_domain(o.domain) for o in proto.opset_import}
    used: set[str] = set()

    def collect(nodes):
        for node in nodes:
            used.add(normalize_domain(node.domain))
            for _, body in subgraphs(node):
                collect(body.node)

    collect(proto.graph.node)
    for fn in proto.functions:
        collect(fn.node)
    for domain in sorted(used - known - {""}):
        proto.opset_import.append(onnx.helper.make_opsetid(domain, 1))
        warnings.warn(f"{where}: domain {domain!r} is used but has no opset_import; assuming "
                      "version 1", ModelWarning, stacklevel=3)


# --- opsets and functions -------------------------------------------------------------------

def default_opset(proto: onnx.ModelProto) -> int | None:
    """The model's ai.onnx opset version (None if it imports none)."""
    versions = [o.version for o in proto.opset_import if normalize_domain(o.domain) == ""]
    return max(versions) if versions else None


def convert_opset(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """Accept opsets MIN_OPSET..newest known; convert older ones with onnx.version_converter."""
    version = default_opset(proto)
    newest = onnx.defs.onnx_opset_version()
    if version is None or MIN_OPSET <= version <= newest:
        return proto
    if version > newest:
        raise ModelLoadError(f"{where} uses ONNX opset {version}, newer than the newest this onnx "
                             f"{onnx.__version__} knows ({newest}): upgrade onnx")
    failures = []
    for target in CONVERSION_TARGETS:
        try:
            converted = onnx.version_converter.convert_version(proto, target)
        except Exception as e:
            failures.append(f"to opset {target}: {_one_line(e)}")
            continue
        changed = _interface_change(proto, converted)
        if changed is None:
            _keep_legacy_resize_semantics(proto, converted)
            return converted
        failures.append(f"to opset {target}: the converted model's interface differs ({changed})")
    raise ModelLoadError(f"{where} uses ONNX opset {version}; mlc needs opset {MIN_OPSET} or newer "
                         f"and onnx.version_converter could not convert it ({'; '.join(failures)})")


def _keep_legacy_resize_semantics(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    """Give converted Upsample / Resize-10 nodes their old coordinate rules explicitly.

    onnx.version_converter turns them into Resize-13 without a coordinate_transformation_mode,
    which then means half_pixel; before opset 11 the coordinates were asymmetric and nearest
    rounding was "simple" (ceil on a downscaled axis, truncation otherwise), as onnxruntime
    still computes them.  Nodes are matched by output name (conversion keeps it).
    """
    legacy: dict = {}

    def collect(graph: onnx.GraphProto):
        consts = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                for a in node.attribute:
                    if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                        consts[node.output[0]] = a.t
        for node in graph.node:
            for _, body in subgraphs(node):
                collect(body)
            if node.domain not in ("", "ai.onnx") or node.op_type not in ("Upsample", "Resize"):
                continue
            scales = None
            for a in node.attribute:
                if a.name == "scales" and a.type == onnx.AttributeProto.FLOATS:
                    scales = list(a.floats)
            if scales is None and len(node.input) > 1 and node.input[1] in consts:
                scales = to_array(consts[node.input[1]]).reshape(-1).tolist()
            if node.output and node.output[0]:
                legacy[node.output[0]] = (node.op_type, scales)

    def patch(graph: onnx.GraphProto):
        for node in graph.node:
            for _, body in subgraphs(node):
                patch(body)
            if node.op_type != "Resize" or not node.output or node.output[0] not in legacy:
                continue
            op, scales = legacy[node.output[0]]
            attrs = {a.name: a for a in node.attribute}
            mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
            if "coordinate_transformation_mode" not in attrs:
                node.attribute.append(onnx.helper.make_attribute("coordinate_transformation_mode", "asymmetric"))
            if mode != "nearest" or "nearest_mode" in attrs:
                continue
            if op == "Upsample" or (scales is not None and all(v >= 1 for v in scales)):
                nearest = "floor"          # scales >= 1: truncation of a non-negative coordinate
            elif scales is not None and all(v <= 1 for v in scales):
                nearest = "ceil"
            else:                          # mixed / unknown: mlc's Resize kernel applies "simple"
                node.attribute.append(onnx.helper.make_attribute("mlc_nearest_simple", 1))
                continue
            node.attribute.append(onnx.helper.make_attribute("nearest_mode", nearest))

    collect(before.graph)
    if legacy:
        patch(after.graph)


def _interface_change(before: onnx.ModelProto, after: onnx.ModelProto) -> str | None:
    """How conversion contradicted the model's declared inputs/outputs, or None.

    An adapter must not change what the caller feeds or gets back (it may fill in what was
    undeclared); onnx's Scan 8->9 adapter, for one, drops the batch dim of the inputs.
    """
    for what in ("input", "output"):
        old, new = getattr(before.graph, what), getattr(after.graph, what)
        if [vi.name for vi in old] != [vi.name for vi in new]:
            return f"graph {what} names changed"
        for a, b in zip(old, new):
            if not _type_kept(a.type, b.type):
                return f"graph {what} {a.name!r}: {_type_text(a.type)} became {_type_text(b.type)}"
    return None


def _type_kept(a: onnx.TypeProto, b: onnx.TypeProto) -> bool:
    """True when ``b`` states everything ``a`` states (same elem type, rank, fixed dims)."""
    if type_kind(a) != "tensor" or type_kind(b) != "tensor":
        return a == b
    if a.tensor_type.elem_type and a.tensor_type.elem_type != b.tensor_type.elem_type:
        return False
    da, db = dims(a), dims(b)
    if da is None:
        return True
    return db is not None and len(da) == len(db) and all(
        not isinstance(x, int) or x == y for x, y in zip(da, db))


def _type_text(tp: onnx.TypeProto) -> str:
    d = dims(tp)
    return "unranked" if d is None else "[" + ", ".join("?" if x is None else str(x) for x in d) + "]"


def _inline_local_functions(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """Calls of model-local functions become their bodies, so later stages see only ops."""
    if not len(proto.functions):
        return proto
    try:
        return onnx.inliner.inline_local_functions(proto)
    except Exception as e:
        raise ModelLoadError(f"{where}: cannot inline its model-local functions: {_one_line(e)}") from e


# --- the working graph ----------------------------------------------------------------------

def _initializer_names(graph: onnx.GraphProto) -> list[str]:
    return [t.name for t in graph.initializer] + [sp.values.name for sp in graph.sparse_initializer]


def working_graph(proto: onnx.ModelProto, weights: Mapping[str, onnx.TensorProto], input_shapes,
                  where: str, constant_inputs: Mapping[str, object] | None = None) -> WorkingGraph:
    """Split the main graph into run-time inputs (shapes bound), constants and nodes.

    ``weights`` are the initializers :func:`split_weights` held out of the skeleton.
    """
    graph = proto.graph
    try:
        consts = constant_arrays(graph)        # checked by onnx.checker already
    except Exception as e:
        raise ModelLoadError(f"{where}: an initializer cannot be read: {_one_line(e)}") from e
    for name, tensor in weights.items():      # the checker never saw these
        try:
            consts[name] = to_array(tensor)
        except Exception as e:
            raise ModelLoadError(f"{where}: initializer {name!r} cannot be read (corrupt or "
                                 f"truncated data): {_one_line(e)}") from e
    if constant_inputs:
        known = {vi.name for vi in graph.input}
        unknown = sorted(set(constant_inputs) - known)
        if unknown:
            raise ShapeError(f"{where}: constant_inputs names {unknown}, which are not inputs of the model")
        for name, value in constant_inputs.items():
            consts[name] = np.asarray(value)
    runtime = [vi for vi in graph.input if vi.name not in consts]
    inputs, params = bind_input_shapes(runtime, input_shapes, consts)
    names = {vi.name for vi in inputs}
    nodes = topological_order(list(graph.node), names | consts.keys(), where)
    return WorkingGraph(
        name=graph.name or "main",
        nodes=nodes,
        inputs=inputs,
        outputs=[_bind_dims(vi, params) for vi in graph.output],
        value_info=[_bind_dims(vi, params) for vi in graph.value_info
                    if vi.name not in consts and vi.name not in names],
        consts=consts,
        opsets={normalize_domain(o.domain): int(o.version) for o in proto.opset_import},
        ir_version=int(proto.ir_version),
    )


def _bind_dims(vi: onnx.ValueInfoProto, params: dict[str, int]) -> onnx.ValueInfoProto:
    """A copy of an output/value_info with dim_params bound where known, cleared otherwise.

    Cleared dims are recomputed by shape inference; keeping "batch" would leave them
    symbolic even once the batch size is known.
    """
    out = onnx.ValueInfoProto()
    out.CopyFrom(vi)
    if out.type.WhichOneof("value") == "tensor_type" and out.type.tensor_type.HasField("shape"):
        for d in out.type.tensor_type.shape.dim:
            if d.WhichOneof("value") == "dim_param":
                if d.dim_param in params:
                    d.dim_value = params[d.dim_param]
                else:
                    d.ClearField("dim_param")
    return out


def _one_line(e: BaseException | str) -> str:
    return re.sub(r"\s+", " ", str(e)).strip()
