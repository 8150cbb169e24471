"""If and Loop: expanded into plain nodes at import (mlc.graph.passes.control_flow),
checked against onnxruntime; what cannot be expanded is a clear UnsupportedError."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper

import mlc
import mlc.kernels.control_flow_ops  # noqa: F401  (registers If, Loop)
from conftest import ort_run
from _nodecases import node_case_names, run_node_case

F = TP.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "cf", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)], ir_version=8)


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _check(model, feeds, mod=None, rtol=1e-5, atol=1e-6):
    ref = ort_run(model, feeds)
    mod = mod or mlc.compile(model, num_threads=1)
    got = mod.run(feeds)
    for vi, r in zip(model.graph.output, ref):
        assert got[vi.name].shape == r.shape, vi.name
        assert got[vi.name].dtype == r.dtype, vi.name
        np.testing.assert_allclose(got[vi.name], r, rtol=rtol, atol=atol, err_msg=vi.name)
    return mod


def _xin(shape=(2, 6)):
    return h.make_tensor_value_info("x", F, shape)


# --- If --------------------------------------------------------------------------------------

def test_if_condition_from_shape():
    """cond folds from the input's shape; the branches read outer tensors and differ in
    shape (only the taken one is compiled)."""
    then_b = h.make_graph([h.make_node("Slice", ["x", "s0", "s1", "ax"], ["t"]),
                           h.make_node("Relu", ["t"], ["t_out"])], "then", [],
                          [h.make_tensor_value_info("t_out", F, None)],
                          [_const("s0", [1]), _const("s1", [4]), _const("ax", [1])])
    else_b = h.make_graph([h.make_node("Neg", ["x"], ["e_out"])], "else", [],
                          [h.make_tensor_value_info("e_out", F, None)])
    nodes = [h.make_node("Shape", ["x"], ["shp"]),
             h.make_node("Gather", ["shp", "one"], ["w"], axis=0),
             h.make_node("Greater", ["w", "five"], ["c"]),
             h.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b),
             h.make_node("Mul", ["y", "y"], ["z"])]
    inits = [_const("one", np.array(1, np.int64)), _const("five", np.array(5, np.int64))]
    for shape in [(2, 6), (3, 4)]:
        m = _model(nodes, [_xin(shape)], [h.make_tensor_value_info("z", F, None)], inits)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        mod = _check(m, {"x": x})
        assert not any("If" in k.ops for k in mod.kernels)


def _branches(then_nodes, else_nodes, outs=("o",)):
    then_b = h.make_graph(then_nodes, "then", [], [h.make_tensor_value_info(f"t_{o}", F, None) for o in outs])
    else_b = h.make_graph(else_nodes, "else", [], [h.make_tensor_value_info(f"e_{o}", F, None) for o in outs])
    return then_b, else_b


def test_if_runtime_condition():
    """cond fed at run time: both branches computed, each output selected with Where."""
    then_b, else_b = _branches([h.make_node("Add", ["x", "x"], ["t_o"]), h.make_node("Exp", ["x"], ["t_p"])],
                               [h.make_node("Sub", ["x", "x"], ["e_o"]), h.make_node("Neg", ["x"], ["e_p"])],
                               outs=("o", "p"))
    nodes = [h.make_node("If", ["c"], ["y1", "y2"], then_branch=then_b, else_branch=else_b),
             h.make_node("Add", ["y1", "y2"], ["z"])]
    m = _model(nodes, [_xin(), h.make_tensor_value_info("c", TP.BOOL, [])],
               [h.make_tensor_value_info("z", F, None), h.make_tensor_value_info("y1", F, None)])
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    mod = mlc.compile(m, num_threads=1)
    for c in (True, False):
        _check(m, {"x": x, "c": np.array(c)}, mod=mod)


def test_if_runtime_condition_rank1_cond():
    then_b, else_b = _branches([h.make_node("Abs", ["x"], ["t_o"])], [h.make_node("Neg", ["x"], ["e_o"])])
    m = _model([h.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)],
               [_xin((5,)), h.make_tensor_value_info("c", TP.BOOL, [1])], [h.make_tensor_value_info("y", F, None)])
    x = np.random.default_rng(2).standard_normal(5).astype(np.float32)
    mod = mlc.compile(m, num_threads=1)
    for c in (True, False):
        _check(m, {"x": x, "c": np.array([c])}, mod=mod)


def test_if_runtime_condition_branches_differ_specialises():
    """Branches of different shapes with a run-time cond: compiled per value of cond."""
    then_b, else_b = _branches([h.make_node("ReduceSum", ["x"], ["t_o"], keepdims=1)],
                               [h.make_node("Neg", ["x"], ["e_o"])])
    m = _model([h.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)],
               [_xin(), h.make_tensor_value_info("c", TP.BOOL, [])], [h.make_tensor_value_info("y", F, None)])
    x = np.random.default_rng(3).standard_normal((2, 6)).astype(np.float32)
    mod = mlc.compile(m, num_threads=1)
    for c in (True, False, True):
        _check(m, {"x": x, "c": np.array(c)}, mod=mod)


def test_if_nested_and_outer_names():
    """An If in a branch; the inner branch reads a tensor of the outer branch and the graph."""
    inner_then = h.make_graph([h.make_node("Mul", ["a", "x"], ["it"])], "ithen", [],
                              [h.make_tensor_value_info("it", F, None)])
    inner_else = h.make_graph([h.make_node("Sub", ["a", "x"], ["ie"])], "ielse", [],
                              [h.make_tensor_value_info("ie", F, None)])
    then_b = h.make_graph([h.make_node("Sigmoid", ["x"], ["a"]),
                           h.make_node("If", ["c2"], ["t_o"], then_branch=inner_then, else_branch=inner_else)],
                          "then", [], [h.make_tensor_value_info("t_o", F, None)])
    else_b = h.make_graph([h.make_node("Tanh", ["x"], ["e_o"])], "else", [], [h.make_tensor_value_info("e_o", F, None)])
    m = _model([h.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)],
               [_xin(), h.make_tensor_value_info("c", TP.BOOL, []), h.make_tensor_value_info("c2", TP.BOOL, [])],
               [h.make_tensor_value_info("y", F, None)])
    x = np.random.default_rng(4).standard_normal((2, 6)).astype(np.float32)
    mod = mlc.compile(m, num_threads=1)
    for c in (True, False):
        for c2 in (True, False):
            _check(m, {"x": x, "c": np.array(c), "c2": np.array(c2)}, mod=mod)


# --- Loop ------------------------------------------------------------------------------------

def _loop_model(trips, body_nodes, body_outs, carried=("acc",), cond_in_graph=None, opset=17, extra_inits=()):
    """Loop over ``trips`` iterations; body inputs (i, cond_in, <carried>_in)."""
    body_inputs = [h.make_tensor_value_info("i", TP.INT64, []), h.make_tensor_value_info("cond_in", TP.BOOL, [])]
    body_inputs += [h.make_tensor_value_info(f"{c}_in", F, (3, 4)) for c in carried]
    body = h.make_graph(body_nodes, "body", body_inputs,
                        [h.make_tensor_value_info(o, TP.BOOL if k == 0 else F, None) for k, o in enumerate(body_outs)])
    n_scan = len(body_outs) - 1 - len(carried)
    outs = [f"{c}_final" for c in carried] + [f"scan{k}" for k in range(n_scan)]
    loop_in = ["M", cond_in_graph or ""] + [f"{c}0" for c in carried]
    nodes = [h.make_node("Loop", loop_in, outs, body=body)]
    inputs = [_xin((3, 4))] + [h.make_tensor_value_info(f"{c}0", F, (3, 4)) for c in carried]
    inits = [_const("M", np.array(trips, np.int64))] + list(extra_inits)
    if cond_in_graph:
        inputs.append(h.make_tensor_value_info(cond_in_graph, TP.BOOL, []))
    return _model(nodes, inputs, [h.make_tensor_value_info(o, F, None) for o in outs], inits, opset=opset)


@pytest.mark.parametrize("opset", [11, 17])
def test_loop_unrolled(opset):
    """Loop-carried value, scan outputs, the iteration number in Gather and arithmetic,
    an outer tensor read in the body; scan outputs stacked along a new axis."""
    body = [h.make_node("Identity", ["cond_in"], ["cond_out"]),
            h.make_node("Gather", ["x", "i"], ["row"], axis=0),       # x[i % 3]? i < 3 here
            h.make_node("Cast", ["i"], ["fi"], to=F),
            h.make_node("Mul", ["acc_in", "fi"], ["scaled"]),
            h.make_node("Add", ["scaled", "row"], ["acc_out"]),
            h.make_node("ReduceSum", ["acc_out"], ["s"], keepdims=0),
            h.make_node("Identity", ["row"], ["row_out"])]
    m = _loop_model(3, body, ["cond_out", "acc_out", "s", "row_out"], opset=opset)
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "acc0": rng.standard_normal((3, 4)).astype(np.float32)}
    mod = _check(m, feeds)
    assert not any("Loop" in k.ops for k in mod.kernels)


def test_loop_cond_constant_true_and_iteration_slice():
    """An explicit constant-true cond input; the body slices with the iteration number
    (the Slice bounds fold to constants per copy); cond_out computed (And of trues)."""
    body = [h.make_node("And", ["cond_in", "t"], ["cond_out"]),
            h.make_node("Add", ["i", "one"], ["end"]),
            h.make_node("Unsqueeze", ["i", "zero"], ["st"]),
            h.make_node("Unsqueeze", ["end", "zero"], ["en"]),
            h.make_node("Slice", ["x", "st", "en", "one1"], ["col"]),        # x[:, i:i+1]
            h.make_node("Add", ["acc_in", "col"], ["acc_out"])]
    inits = [_const("t", np.array(True)), _const("one", np.array(1, np.int64)), _const("zero", np.array([0], np.int64)),
             _const("one1", np.array([1], np.int64)), _const("c0", np.array(True))]
    m = _loop_model(4, body, ["cond_out", "acc_out"], cond_in_graph=None, extra_inits=inits)
    m.graph.node[0].input[1] = "c0"
    rng = np.random.default_rng(6)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "acc0": rng.standard_normal((3, 4)).astype(np.float32)}
    _check(m, feeds)


def test_loop_with_nested_if_reading_body_values():
    """A nested If in the body reads a body tensor and the iteration number: the copies
    rename them in the nested branches too."""
    ithen = h.make_graph([h.make_node("Mul", ["v", "two"], ["a"])], "t", [], [h.make_tensor_value_info("a", F, None)])
    ielse = h.make_graph([h.make_node("Neg", ["v"], ["b"])], "e", [], [h.make_tensor_value_info("b", F, None)])
    body = [h.make_node("Identity", ["cond_in"], ["cond_out"]),
            h.make_node("Add", ["acc_in", "x"], ["v"]),
            h.make_node("Less", ["i", "one"], ["first"]),
            h.make_node("If", ["first"], ["acc_out"], then_branch=ithen, else_branch=ielse)]
    inits = [_const("two", np.array(2.0, np.float32)), _const("one", np.array(1, np.int64))]
    m = _loop_model(3, body, ["cond_out", "acc_out"], extra_inits=inits)
    rng = np.random.default_rng(7)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "acc0": rng.standard_normal((3, 4)).astype(np.float32)}
    _check(m, feeds)


def test_loop_zero_trips():
    body = [h.make_node("Identity", ["cond_in"], ["cond_out"]), h.make_node("Add", ["acc_in", "x"], ["acc_out"])]
    m = _loop_model(0, body, ["cond_out", "acc_out"])
    rng = np.random.default_rng(8)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "acc0": rng.standard_normal((3, 4)).astype(np.float32)}
    _check(m, feeds)


def test_loop_runtime_trip_count_specialises():
    """A trip count fed as an input: compiled per value (run-time specialisation)."""
    body = [h.make_node("Identity", ["cond_in"], ["cond_out"]), h.make_node("Add", ["acc_in", "x"], ["acc_out"])]
    m = _loop_model(2, body, ["cond_out", "acc_out"])
    del m.graph.initializer[:]
    m.graph.input.append(h.make_tensor_value_info("M", TP.INT64, []))
    rng = np.random.default_rng(9)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "acc0": rng.standard_normal((3, 4)).astype(np.float32)}
    mod = mlc.compile(m, num_threads=1)
    for trips in (2, 5, 2):
        _check(m, {**feeds, "M": np.array(trips, np.int64)}, mod=mod)


def test_loop_data_dependent_exit_unsupported():
    body = [h.make_node("ReduceSum", ["acc_in"], ["s"], keepdims=0),
            h.make_node("Less", ["s", "big"], ["cond_out"]),
            h.make_node("Add", ["acc_in", "x"], ["acc_out"])]
    m = _loop_model(5, body, ["cond_out", "acc_out"], extra_inits=[_const("big", np.array(100.0, np.float32))])
    with pytest.raises(mlc.UnsupportedError, match="Loop node .*data-dependent"):
        mlc.compile(m)


def test_loop_constant_early_exit_unsupported():
    body = [h.make_node("Less", ["i", "two"], ["cond_out"]), h.make_node("Add", ["acc_in", "x"], ["acc_out"])]
    m = _loop_model(5, body, ["cond_out", "acc_out"], extra_inits=[_const("two", np.array(2, np.int64))])
    with pytest.raises(mlc.UnsupportedError, match="exits early"):
        mlc.compile(m)


def test_loop_too_many_trips_unsupported():
    body = [h.make_node("Identity", ["cond_in"], ["cond_out"]), h.make_node("Add", ["acc_in", "x"], ["acc_out"])]
    m = _loop_model(1000, body, ["cond_out", "acc_out"])
    with pytest.raises(mlc.UnsupportedError, match="trip count 1000 exceeds"):
        mlc.compile(m)


def test_left_in_place_without_check_then_refused():
    """import_model(check_supported=False) keeps If / Loop as nested graphs; the first
    graph pass refuses them clearly."""
    from mlc.compiler.pipeline import CompileOptions, compile_graph
    from mlc.frontend import import_model
    from mlc.graph.passes import default_passes
    from mlc.target import Target
    body = [h.make_node("Identity", ["cond_in"], ["cond_out"]), h.make_node("Add", ["acc_in", "x"], ["acc_out"])]
    m = _loop_model(1000, body, ["cond_out", "acc_out"])
    m.graph.output[0].CopyFrom(h.make_tensor_value_info("acc_final", F, (3, 4)))
    g = import_model(m, check_supported=False)
    assert any(n.op == "Loop" for n in g.nodes)
    with pytest.raises(mlc.UnsupportedError, match="Loop node 'Loop_0': mlc expands If / Loop"):
        compile_graph(g, CompileOptions(target=Target.from_string("x86"), passes=default_passes))


NODE_CASES = node_case_names(r"test_(if|loop)(\d+|_.*)?")
# sequence / optional values: not tensors, unsupported by mlc
NODE_UNSUPPORTED = {"test_if_seq", "test_if_opt", "test_loop13_seq", "test_loop16_seq_none"}


@pytest.mark.parametrize("name", NODE_CASES)
def test_node_cases(name):
    if name in NODE_UNSUPPORTED:
        with pytest.raises(mlc.UnsupportedError):
            run_node_case(name)
        return
    run_node_case(name)
