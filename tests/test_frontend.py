"""Tests of the ONNX frontend (mlc.frontend): loading, checking, binding, folding, converting.

Models are built with onnx.helper so each test shows exactly what it feeds in.  Folding is
checked for meaning, not just shape: the folded mlc Graph is run node by node with
onnx.reference and compared with onnxruntime on the original model.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from mlc import registry
from mlc.errors import MlcError, ModelLoadError, ShapeError, UnsupportedError
from mlc.frontend import ModelWarning, import_model, load_model, outer_scope_names
from mlc.frontend import fold as fold_module
from mlc.graph import Graph

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


# --- helpers --------------------------------------------------------------------------------

def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=None, **kw):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers), **kw)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def relu_model(shape=(2, 3)):
    return make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [vi("x", F, list(shape))], [vi("y", F, list(shape))])


def run_ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_graph(graph: Graph, feeds: dict) -> list[np.ndarray]:
    """Execute an mlc Graph (no subgraphs) node by node with onnx.reference."""
    env = {n: t.value for n, t in graph.tensors.items() if t.value is not None}
    env.update(feeds)
    for node in graph.nodes:
        attrs = {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v
                 for k, v in node.attrs.items()}
        proto = helper.make_node(node.op, list(node.inputs), list(node.outputs), domain=node.domain, **attrs)
        ins = [n for n in node.inputs if n]
        g = helper.make_graph([proto], "n", [onnx.ValueInfoProto(name=n) for n in ins],
                              [onnx.ValueInfoProto(name=n) for n in node.outputs if n])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in graph.opsets.items()])
        outs = ReferenceEvaluator(m).run(None, {n: env[n] for n in ins})
        env.update(zip([n for n in node.outputs if n], outs))
    return [env[o] for o in graph.outputs]


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


class _Registry:
    """Test-local registry edits, undone by monkeypatch whatever kernels are loaded."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch

    def add(self, *names, domain=""):
        for name in names:
            if registry.lookup(name, domain) is None:
                op = registry.OpDef(name, lambda ctx: None, "opaque", domain)
                self.monkeypatch.setitem(registry._REGISTRY, (domain, name), op)

    def remove(self, *names, domain=""):
        for name in names:
            self.monkeypatch.delitem(registry._REGISTRY, (domain, name), raising=False)


@pytest.fixture
def ops_registry(monkeypatch):
    return _Registry(monkeypatch)


# --- loading --------------------------------------------------------------------------------

def test_load_from_path_bytes_and_proto(tmp_path):
    model = relu_model()
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path)
    for source in (str(path), path, path.read_bytes(), model):
        loaded = load_model(source)
        assert loaded.graph.node[0].op_type == "Relu"
        g = import_model(source, check_supported=False)
        assert ops(g) == ["Relu"] and g.inputs == ("x",) and g.outputs == ("y",)
        assert g.tensors["y"].dtype == "float32" and g.tensors["y"].shape == (2, 3)


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match="not found.*nope.onnx"):
        load_model(path)


def test_truncated_file_names_it(tmp_path):
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", F, [1, 64])],
                       [vi("y", F, [1, 64])], [const("w", w)])
    data = model.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut.onnx"):
        import_model(path, check_supported=False)


@pytest.mark.parametrize("garbage", [b"hello, this is not a model", b"", bytes(range(256)) * 4])
def test_garbage_bytes(garbage, tmp_path):
    with pytest.raises(ModelLoadError):
        import_model(garbage)
    path = tmp_path / "garbage.onnx"
    path.write_bytes(garbage)
    with pytest.raises(ModelLoadError, match="garbage.onnx"):
        import_model(path)


def test_corrupt_weight_data_names_the_initializer():
    w = const("weights", np.ones((100, 100), np.float32))
    w.raw_data = w.raw_data[:1000]
    model = make_model([helper.make_node("MatMul", ["x", "weights"], ["y"])], [vi("x", F, [1, 100])],
                       [vi("y", F, [1, 100])], [w])
    with pytest.raises(ModelLoadError, match="initializer 'weights' cannot be read"):
        import_model(model, check_supported=False)


def test_wrong_source_type():
    with pytest.raises(ModelLoadError, match="cannot load a model from a int"):
        load_model(42)


def _external_model(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", F, [2, 3])],
                       [vi("y", F, [2, 4])], [const("w", w)])
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)
    return path, w


def test_external_data_loaded(tmp_path):
    path, w = _external_model(tmp_path)
    assert (tmp_path / "w.bin").exists()
    g = import_model(path, check_supported=False)
    np.testing.assert_array_equal(g.tensors["w"].value, w)


def test_external_data_missing_file(tmp_path):
    path, _ = _external_model(tmp_path)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(ModelLoadError, match=r"ext\.onnx.*missing.*'w\.bin'.*'w'"):
        import_model(path)


def test_external_data_from_bytes_or_unloaded_proto_says_pass_a_path(tmp_path):
    path, _ = _external_model(tmp_path)
    with pytest.raises(ModelLoadError, match="w.bin.*pass the model's file path"):
        import_model(path.read_bytes())
    unloaded = onnx.load(path, load_external_data=False)
    with pytest.raises(ModelLoadError, match="w.bin.*pass the model's file path"):
        import_model(unloaded)


# --- checker, opsets, IR versions -----------------------------------------------------------

def test_opset9_model_is_converted():
    model = make_model([helper.make_node("Upsample", ["x", "scales"], ["u"], mode="nearest"),
                        helper.make_node("Unsqueeze", ["u"], ["y"], axes=[0])],
                       [vi("x", F, [1, 2, 3, 3])], [vi("y", F, None)],
                       [const("scales", np.array([1, 1, 2, 2], np.float32))], opset=9)
    g = import_model(model, check_supported=False)
    assert g.opsets[""] >= 11
    assert ops(g) == ["Resize", "Unsqueeze"]
    assert all(n.opset == g.opsets[""] for n in g.nodes)
    assert g.tensors["y"].shape == (1, 1, 2, 6, 6)
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(run_graph(g, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_unconvertible_old_opset_names_it():
    model = make_model([helper.make_node("NotAnOp", ["x"], ["y"])], [vi("x", F, [2])],
                       [vi("y", F, [2])], opset=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelWarning)
        with pytest.raises(ModelLoadError, match="opset 9.*could not convert.*NotAnOp"):
            import_model(model, check_supported=False)


def test_conversion_that_changes_the_interface_is_refused():
    # onnx's Scan 8->9 adapter drops the batch dim of the graph inputs: refuse, don't guess
    body = helper.make_graph([helper.make_node("Add", ["s_in", "x_in"], ["s_out"]),
                              helper.make_node("Identity", ["s_out"], ["y_out"])], "body",
                             [vi("s_in", F, [2]), vi("x_in", F, [2])], [vi("s_out", F, [2]), vi("y_out", F, [2])])
    model = make_model([helper.make_node("Scan", ["", "init", "x"], ["s", "ys"], num_scan_inputs=1, body=body)],
                       [vi("init", F, [1, 2]), vi("x", F, [1, 3, 2])], [vi("s", F, [1, 2]), vi("ys", F, [1, 3, 2])],
                       opset=8)
    with pytest.raises(ModelLoadError, match=r"opset 8.*interface differs.*'init': \[1, 2\] became \[2\]"):
        import_model(model, check_supported=False)


def test_ir3_model_with_unlisted_initializers_is_still_converted():
    # invalid as IR 3 (initializers must be inputs there), common in the wild
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", F, [2])],
                       [vi("y", F, [2])], [const("w", np.ones(2, np.float32))], opset=7, ir_version=3)
    g = import_model(model, check_supported=False)
    assert ops(g) == ["Add"] and g.opsets[""] == 13 and g.inputs == ("x",)


def test_opset_newer_than_onnx_knows():
    model = relu_model()
    model.opset_import[0].version = onnx.defs.onnx_opset_version() + 5
    with pytest.raises(ModelLoadError, match="newer than the newest"):
        import_model(model, check_supported=False)


def test_ir3_initializers_listed_as_inputs_are_constants():
    w = np.array([1.0, -2.0, 3.0], np.float32)
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])],
                       [vi("x", F, [3]), vi("w", F, [3])], [vi("y", F, [3])], [const("w", w)],
                       opset=8, ir_version=3)
    g = import_model(model, check_supported=False)
    assert g.inputs == ("x",)
    assert g.is_constant("w")
    np.testing.assert_array_equal(g.tensors["w"].value, w)
    x = np.ones(3, np.float32)
    np.testing.assert_allclose(run_graph(g, {"x": x})[0], x + w)


def test_checker_structural_error_is_fatal():
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="a"),
                        helper.make_node("Relu", ["x"], ["y"], name="b")],
                       [vi("x", F, [2])], [vi("y", F, [2])])
    with pytest.raises(ModelLoadError, match="SSA"):
        import_model(model, check_supported=False)


def test_checker_undefined_input_is_fatal_and_named():
    model = make_model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")],
                       [vi("x", F, [2])], [vi("y", F, [2])])
    with pytest.raises(ModelLoadError, match="'ghost' of Add node 'add'"):
        import_model(model, check_supported=False)


def test_checker_leniency_for_unsorted_nodes_and_unknown_attributes():
    nodes = [helper.make_node("Relu", ["t"], ["y"], name="second"),
             helper.make_node("Relu", ["x"], ["t"], name="first", exporter_note=1)]
    model = make_model(nodes, [vi("x", F, [2, 2])], [vi("y", F, [2, 2])])
    with pytest.warns(ModelWarning) as record:
        g = import_model(model, check_supported=False)
    messages = " ".join(str(w.message) for w in record)
    assert "not in topological order" in messages and "exporter_note" in messages
    assert [n.name for n in g.nodes] == ["first", "second"]


def test_untyped_outputs_are_accepted_silently():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [2, 2])],
                       [onnx.ValueInfoProto(name="y")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = import_model(model, check_supported=False)
    assert g.tensors["y"].shape == (2, 2) and g.tensors["y"].dtype == "float32"


def test_custom_domain_without_opset_import_and_unnamed_nodes(ops_registry):
    ops_registry.add("Foo", domain="com.example")
    model = make_model([helper.make_node("Foo", ["x"], ["y"], domain="com.example")],
                       [vi("x", F, [2])], [vi("y", F, [2])], value_info=[])
    with pytest.warns(ModelWarning, match="com.example"):
        g = import_model(model)
    (node,) = g.nodes
    assert node.domain == "com.example" and node.opset == 1 and node.name == "Foo_0"
    assert g.tensors["y"].shape == (2,)     # from the declared output type


def test_callers_model_proto_is_not_modified():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, ["N", 3])],
                       [vi("y", F, ["N", 3])])
    before = model.SerializeToString()
    import_model(model, {"x": (2, 3)}, check_supported=False)
    assert model.SerializeToString() == before


# --- binding input shapes -------------------------------------------------------------------

def batch_model():
    return make_model([helper.make_node("Relu", ["x"], ["r"]),
                       helper.make_node("Add", ["r", "m"], ["y"])],
                      [vi("x", F, ["batch", 3]), vi("m", F, ["batch", 3])],
                      [vi("y", F, ["batch", 3])], [])


def test_symbolic_batch_bound_by_input_shapes():
    g = import_model(batch_model(), {"x": (4, 3), "m": (4, 3)}, check_supported=False)
    assert all(g.tensors[n].shape == (4, 3) for n in ("x", "m", "r", "y"))


def test_dim_param_bound_once_binds_everywhere():
    g = import_model(batch_model(), {"x": (5, 3)}, check_supported=False)
    assert g.tensors["m"].shape == (5, 3) and g.tensors["y"].shape == (5, 3)


def test_missing_binding_lists_input_dim_and_param():
    with pytest.raises(ShapeError, match=r"input 'x' dim 0 \('batch'\).*input_shapes="):
        import_model(batch_model(), check_supported=False)


def test_unnamed_symbolic_dim_and_missing_shape():
    model = make_model([helper.make_node("Add", ["a", "b"], ["y"])],
                       [vi("a", F, [None, 3]), vi("b", F, None)], [vi("y", F, None)])
    with pytest.raises(ShapeError) as err:
        import_model(model, check_supported=False)
    assert "input 'a' dim 0 (unnamed)" in str(err.value)
    assert "input 'b' (shape not recorded" in str(err.value)
    g = import_model(model, {"a": (2, 3), "b": (1, 3)}, check_supported=False)
    assert g.tensors["y"].shape == (2, 3)


def test_wrong_rank_error():
    with pytest.raises(ShapeError, match=r"input_shapes\['x'\].*rank 3.*rank 2"):
        import_model(batch_model(), {"x": (4, 3, 1)}, check_supported=False)


def test_contradicting_fixed_dim_error():
    with pytest.raises(ShapeError, match="dim 1 of input 'x' is fixed to 3"):
        import_model(batch_model(), {"x": (4, 7)}, check_supported=False)


def test_unknown_input_name_error():
    with pytest.raises(ShapeError, match="'nope'.*not an input.*'x', 'm'"):
        import_model(batch_model(), {"nope": (1,), "x": (1, 3)}, check_supported=False)


def test_initializer_named_in_input_shapes_error():
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", F, [2])],
                       [vi("y", F, [2])], [const("w", np.ones(2, np.float32))])
    with pytest.raises(ShapeError, match="'w'.*initializer"):
        import_model(model, {"w": (2,)}, check_supported=False)


def test_conflicting_dim_param_values_error():
    with pytest.raises(ShapeError, match="'batch' two sizes"):
        import_model(batch_model(), {"x": (4, 3), "m": (5, 3)}, check_supported=False)


def test_not_a_shape_error():
    with pytest.raises(ShapeError, match="not a shape"):
        import_model(batch_model(), {"x": (4, -3)}, check_supported=False)


# --- folding --------------------------------------------------------------------------------

def flatten_by_shape_model():
    """What torch exports for x.view(x.size(0), -1): shape arithmetic before a Reshape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["x", "newshape"], ["y"], name="reshape"),
    ]
    inits = [const("zero", np.array(0, np.int64)), const("axes0", np.array([0], np.int64)),
             const("minus1", np.array([-1], np.int64))]
    return make_model(nodes, [vi("x", F, ["N", 3, 4])], [vi("y", F, ["N", None])], inits)


def test_shape_gather_unsqueeze_concat_reshape_is_folded():
    model = flatten_by_shape_model()
    g = import_model(model, {"x": (2, 3, 4)}, check_supported=False)
    assert ops(g) == ["Reshape"]
    (reshape,) = g.nodes
    assert g.is_constant(reshape.inputs[1])
    np.testing.assert_array_equal(g.tensors[reshape.inputs[1]].value, [2, -1])
    assert g.tensors["y"].shape == (2, 12)
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(run_graph(g, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_constant_of_shape_of_shape_is_folded():
    model = make_model([helper.make_node("Shape", ["x"], ["s"]),
                        helper.make_node("ConstantOfShape", ["s"], ["z"],
                                         value=numpy_helper.from_array(np.array([1.5], np.float32))),
                        helper.make_node("Add", ["x", "z"], ["y"])],
                       [vi("x", F, ["N", 3])], [vi("y", F, ["N", 3])])
    g = import_model(model, {"x": (2, 3)}, check_supported=False)
    assert ops(g) == ["Add"]
    assert g.is_constant("z") and g.tensors["z"].value.shape == (2, 3)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (ort_z,) = run_ort(make_model(model.graph.node[:2], [vi("x", F, ["N", 3])], [vi("z", F, None)]),
                       {"x": x})
    np.testing.assert_array_equal(g.tensors["z"].value, ort_z)
    np.testing.assert_array_equal(run_graph(g, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_shape_slice_range_expand_are_folded():
    # Shape(x)[1:] -> Range(0, prod) -> Expand to x's shape: all shape work is constant
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=1),
        helper.make_node("ReduceProd", ["s"], ["count"], keepdims=0),
        helper.make_node("Range", ["zero", "count", "one"], ["r"]),
        helper.make_node("Cast", ["r"], ["rf"], to=F),
        helper.make_node("Shape", ["x"], ["full"]),
        helper.make_node("Slice", ["full", "start1", "end3"], ["sl"]),      # Shape->Slice
        helper.make_node("Concat", ["one1", "sl"], ["eshape"], axis=0),
        helper.make_node("Shape", ["full"], ["rank"]),                       # [3]
        helper.make_node("ConstantOfShape", ["rank"], ["ones_shape"],         # [1, 1, 1]
                         value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Expand", ["x", "ones_shape"], ["xe"]),
        helper.make_node("Reshape", ["rf", "eshape"], ["rr"]),
        helper.make_node("Add", ["xe", "rr"], ["y"]),
    ]
    inits = [const("zero", np.array(0, np.int64)), const("one", np.array(1, np.int64)),
             const("start1", np.array([1], np.int64)), const("end3", np.array([3], np.int64)),
             const("one1", np.array([1], np.int64))]
    model = make_model(nodes, [vi("x", F, ["N", 3, 4])], [vi("y", F, None)], inits)
    g = import_model(model, {"x": (2, 3, 4)}, check_supported=False)
    assert ops(g) == ["Expand", "Add"]
    assert g.is_constant("rr") and g.tensors["rr"].shape == (1, 3, 4)
    np.testing.assert_array_equal(g.tensors["ones_shape"].value, [1, 1, 1])
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(run_graph(g, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_constant_nodes_become_constants():
    model = make_model([helper.make_node("Constant", [], ["c"], value_floats=[1.0, 2.0]),
                        helper.make_node("Constant", [], ["k"], value_int=3),
                        helper.make_node("Mul", ["x", "c"], ["y"])],
                       [vi("x", F, [2])], [vi("y", F, [2])])
    g = import_model(model, check_supported=False)
    assert ops(g) == ["Mul"]
    np.testing.assert_array_equal(g.tensors["c"].value, [1.0, 2.0])
    assert "k" not in g.tensors            # unused constants are dropped
    with pytest.raises(ValueError):
        g.tensors["c"].value[0] = 5        # constants are read-only


def test_scalar_constants_keep_rank_zero():
    model = make_model([helper.make_node("Size", ["x"], ["n"]),
                        helper.make_node("Cast", ["n"], ["nf"], to=F),
                        helper.make_node("Mul", ["x", "nf"], ["y"])],
                       [vi("x", F, [2, 3])], [vi("y", F, [2, 3]), vi("n", I64, [])])
    g = import_model(model, check_supported=False)
    assert g.tensors["n"].shape == () and g.tensors["n"].value.shape == ()
    assert g.tensors["nf"].shape == () and g.tensors["nf"].value == 6.0


def test_weight_transforms_are_folded_and_match_ort():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    wq = rng.integers(-128, 127, (3, 4)).astype(np.int8)
    model = make_model([helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
                        helper.make_node("Cast", ["wt"], ["wt16"], to=TensorProto.FLOAT16),
                        helper.make_node("Cast", ["wt16"], ["wt32"], to=F),
                        helper.make_node("DequantizeLinear", ["wq", "scale", "zp"], ["wdq"]),
                        helper.make_node("Add", ["wt32", "wdq"], ["wsum"]),
                        helper.make_node("MatMul", ["x", "wsum"], ["y"])],
                       [vi("x", F, [2, 3])], [vi("y", F, [2, 4])],
                       [const("w", w), const("wq", wq), const("scale", np.float32(0.05)),
                        const("zp", np.int8(3))])
    g = import_model(model, check_supported=False)
    assert ops(g) == ["MatMul"]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(run_graph(g, {"x": x})[0], run_ort(model, {"x": x})[0], rtol=1e-5)


def test_random_ops_are_not_folded():
    model = make_model([helper.make_node("RandomNormal", [], ["r"], shape=[2], seed=1.0),
                        helper.make_node("Add", ["x", "r"], ["y"])],
                       [vi("x", F, [2])], [vi("y", F, [2])])
    g = import_model(model, check_supported=False)
    assert ops(g) == ["RandomNormal", "Add"]


def test_huge_results_are_not_folded(monkeypatch):
    monkeypatch.setattr(fold_module, "MAX_FOLD_BYTES", 1000)
    model = make_model([helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                        helper.make_node("Add", ["x", "big"], ["y"])],
                       [vi("x", F, [1000])], [vi("y", F, [1000])],
                       [const("shape", np.array([1000], np.int64))])
    g = import_model(model, check_supported=False)
    assert ops(g) == ["ConstantOfShape", "Add"]
    assert g.tensors["big"].shape == (1000,) and not g.is_constant("big")


def test_unknown_shape_names_tensor_producer_and_why():
    model = make_model([helper.make_node("NonZero", ["x"], ["nz"], name="nz_node"),
                        helper.make_node("Transpose", ["nz"], ["y"])],
                       [vi("x", F, [3, 4])], [vi("y", I64, None)])
    with pytest.raises(ShapeError) as err:
        import_model(model, check_supported=False)
    msg = str(err.value)
    assert "'nz'" in msg and "NonZero node 'nz_node'" in msg and "run time" in msg
    assert "2 tensors in all" in msg


def test_exotic_dtypes_are_kept():
    w = helper.make_tensor("w", TensorProto.BFLOAT16, [2], [1.0, 2.0])
    model = make_model([helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
                        helper.make_node("Add", ["xb", "w"], ["y"])],
                       [vi("x", F, [2])], [vi("y", TensorProto.BFLOAT16, [2])], [w])
    g = import_model(model, check_supported=False)
    assert g.tensors["w"].dtype == "bfloat16" and g.tensors["y"].dtype == "bfloat16"
    assert g.tensors["w"].value.astype(np.float32).tolist() == [1.0, 2.0]
    assert g.tensors["w"].nbytes == 4
    assert "bfloat16[2]" in str(g)


def test_local_functions_are_inlined():
    fn = helper.make_function("local", "AddRelu", ["a", "b"], ["c"],
                              [helper.make_node("Add", ["a", "b"], ["t"]),
                               helper.make_node("Relu", ["t"], ["c"])],
                              opset_imports=[helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("AddRelu", ["x", "x"], ["y"], domain="local")], "g",
                              [vi("x", F, [2])], [vi("y", F, [2])])
    model = helper.make_model(graph, functions=[fn], opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    g = import_model(model, check_supported=False)
    assert ops(g) == ["Add", "Relu"]


# --- subgraphs ------------------------------------------------------------------------------

def if_model(cond_is_constant: bool):
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.float32(2.0))),
         helper.make_node("Mul", ["x", "two"], ["t_out"], name="then_mul")],
        "then_body", [], [vi("t_out", F, None)])
    els = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["xs"]),
         helper.make_node("ConstantOfShape", ["xs"], ["zeros"]),
         helper.make_node("Sub", ["zeros", "x"], ["e_out"], name="else_sub")],
        "else_body", [], [vi("e_out", F, None)])
    nodes = [helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=els)]
    inits = [const("c", np.array(True))] if cond_is_constant else []
    inputs = [vi("x", F, [2, 3])] + ([] if cond_is_constant else [vi("c", B, [])])
    return make_model(nodes, inputs, [vi("y", F, None)], inits)


@pytest.mark.parametrize("cond_is_constant", [True, False])
def test_if_bodies_become_nested_graphs(cond_is_constant):
    g = import_model(if_model(cond_is_constant), check_supported=False)
    (node,) = g.nodes
    assert node.op == "If" and node.inputs == ("c",)
    assert g.is_constant("c") == cond_is_constant and g.tensors["c"].shape == ()
    assert g.inputs == (("x",) if cond_is_constant else ("x", "c"))
    then, els = node.attrs["then_branch"], node.attrs["else_branch"]
    assert isinstance(then, Graph) and isinstance(els, Graph)
    # Constant inside a body -> constant of that body; Shape/ConstantOfShape folded (If branch)
    assert ops(then) == ["Mul"] and then.is_constant("two")
    assert ops(els) == ["Sub"] and els.is_constant("zeros")
    # x is read from the enclosing graph: typed in the body, but not a body input
    assert then.inputs == () and "x" in then.tensors and then.tensors["x"].shape == (2, 3)
    assert outer_scope_names(then) == ("x",) and outer_scope_names(els) == ("x",)
    assert then.tensors["t_out"].shape == (2, 3)
    assert g.tensors["y"].shape == (2, 3)
    assert "<graph then_body 1 nodes>" in str(g)


def test_if_with_everything_constant_is_folded():
    then = helper.make_graph([helper.make_node("Add", ["k", "k"], ["o"])], "then", [], [vi("o", F, [2])])
    els = helper.make_graph([helper.make_node("Sub", ["k", "k"], ["o2"])], "else", [], [vi("o2", F, [2])])
    model = make_model([helper.make_node("If", ["c"], ["v"], then_branch=then, else_branch=els),
                        helper.make_node("Mul", ["x", "v"], ["y"])],
                       [vi("x", F, [2])], [vi("y", F, [2])],
                       [const("c", np.array(False)), const("k", np.array([1.0, 2.0], np.float32))])
    g = import_model(model, check_supported=False)
    assert ops(g) == ["Mul"]
    np.testing.assert_array_equal(g.tensors["v"].value, [0.0, 0.0])


def test_loop_body_folds_constants_but_not_shapes():
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.ones(2, np.float32))),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
         helper.make_node("Shape", ["acc_out"], ["s"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [vi("i", I64, []), vi("cond_in", B, []), vi("acc_in", F, [2])],
        [vi("cond_out", B, []), vi("acc_out", F, [2])])
    model = make_model([helper.make_node("Loop", ["trips", "", "x"], ["acc"], name="loop", body=body)],
                       [vi("x", F, [2])], [vi("acc", F, [2])],
                       [const("trips", np.array(3, np.int64))])
    g = import_model(model, check_supported=False)
    body_g = g.nodes[0].attrs["body"]
    assert ops(body_g) == ["Add", "Shape", "Identity"]
    assert body_g.is_constant("one") and body_g.inputs == ("i", "cond_in", "acc_in")
    assert outer_scope_names(body_g) == ()


# --- unsupported operators and printing -----------------------------------------------------

def test_unsupported_ops_are_all_listed_at_once(ops_registry):
    ops_registry.add("Relu")
    ops_registry.remove("NonZero")
    ops_registry.remove("Foo", domain="com.example")
    model = make_model([helper.make_node("NonZero", ["x"], ["n1"], name="n1"),
                        helper.make_node("Relu", ["x"], ["r"], name="r"),
                        helper.make_node("NonZero", ["r"], ["n7"], name="n7"),
                        helper.make_node("Foo", ["x"], ["f"], name="x_foo", domain="com.example")],
                       [vi("x", F, [2, 2])], [vi("n1", I64, None), vi("n7", I64, None), vi("f", F, None)],
                       opset=13)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedError) as err:
        import_model(model)
    msg = str(err.value)
    assert msg.startswith("model uses 2 unsupported operators: NonZero (opset 13) at nodes 'n1', 'n7'; "
                          "Foo (com.example, opset 1) at node 'x_foo'")
    assert [item[:3] for item in err.value.items] == [("NonZero", 13, "n1"), ("NonZero", 13, "n7"),
                                                     ("Foo", 1, "x_foo")]
    assert all(isinstance(item[3], str) and item[3] for item in err.value.items)


def test_unsupported_check_sees_inside_subgraphs_and_skips_folded_ops(ops_registry):
    ops_registry.add("If", "Mul", "Sub")   # Shape, ConstantOfShape, Constant are all folded away
    ops_registry.remove("Shape", "ConstantOfShape", "Constant")
    g = import_model(if_model(False))
    assert ops(g) == ["If"]
    ops_registry.remove("Sub")
    with pytest.raises(UnsupportedError, match="Sub.*'else_sub'"):
        import_model(if_model(False))


def test_unknown_default_domain_op_is_reported_as_unsupported(ops_registry):
    ops_registry.remove("NotAnOp")
    model = make_model([helper.make_node("NotAnOp", ["x"], ["y"], name="bogus")],
                       [vi("x", F, [2])], [vi("y", F, [2])])
    with pytest.warns(ModelWarning, match="No Op registered"):
        with pytest.raises(UnsupportedError, match="NotAnOp") as err:
            import_model(model)
    assert "not an operator of ONNX opset 17" in err.value.items[0][3]


def test_printed_graph_is_readable():
    model = flatten_by_shape_model()
    text = str(import_model(model, {"x": (2, 3, 4)}, check_supported=False))
    assert text.splitlines() == [
        "graph g (opsets {'': 17}) {",
        "  input  %x: float32[2, 3, 4]",
        "  1 constants, 0.00 MB",
        "  %y: float32[2, 12] = Reshape(%x, $newshape)",
        "  return %y",
        "}",
    ]


def test_every_error_is_an_mlc_error():
    for bad in (b"junk", batch_model()):
        with pytest.raises(MlcError):
            import_model(bad)
