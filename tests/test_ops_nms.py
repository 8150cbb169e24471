"""NonMaxSuppression against onnxruntime: its data-dependent output is trimmed to the
number of selected boxes (a bounded output with a row count, see mlc.frontend.bounded)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc

from conftest import ort_run


def _boxes(rng, b, s, center):
    xy = rng.uniform(0, 20, (b, s, 2)).astype(np.float32)
    wh = rng.uniform(1, 8, (b, s, 2)).astype(np.float32)
    if center:
        return np.concatenate([xy, wh], axis=2)
    return np.concatenate([xy[..., ::-1], (xy + wh)[..., ::-1]], axis=2)  # [y1, x1, y2, x2]


def _model(b, c, s, center, max_out=None, iou=None, score=None, runtime_max=False):
    inputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [b, s, 4]),
              helper.make_tensor_value_info("scores", TensorProto.FLOAT, [b, c, s])]
    inits, names = [], ["boxes", "scores"]
    if max_out is not None:
        if runtime_max:
            inputs.append(helper.make_tensor_value_info("max_out", TensorProto.INT64, [1]))
        else:
            inits.append(numpy_helper.from_array(np.array([max_out], np.int64), "max_out"))
        names.append("max_out")
    for name, v in (("iou", iou), ("score", score)):
        if v is not None:
            while len(names) < (3 if name == "iou" else 4):
                names.append("")
            inits.append(numpy_helper.from_array(np.array([v], np.float32), name))
            names.append(name)
    node = helper.make_node("NonMaxSuppression", names, ["selected"], center_point_box=int(center))
    g = helper.make_graph([node], "nms", inputs, [helper.make_tensor_value_info("selected", TensorProto.INT64, None)],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], ir_version=8)


@pytest.mark.parametrize("b,c,s,center,max_out,iou,score", [
    (1, 1, 30, 0, 5, 0.5, None),
    (2, 3, 50, 1, 10, 0.3, 0.2),
    (1, 2, 200, 0, 200, 0.6, 0.5),
    (1, 1, 7, 1, 3, 0.0, None),
    (2, 2, 40, 0, 0, 0.5, None),
    (1, 4, 64, 0, 8, 0.45, 0.9),
])
def test_nms_matches_onnxruntime(rng, b, c, s, center, max_out, iou, score):
    boxes = _boxes(rng, b, s, center)
    scores = rng.random((b, c, s)).astype(np.float32)
    scores[..., ::7] = scores[..., ::7].round(1)         # some ties
    model = _model(b, c, s, center, max_out, iou, score)
    feeds = {"boxes": boxes, "scores": scores}
    ref = ort_run(model, feeds)[0]
    got = mlc.compile(model).run(feeds)["selected"]
    np.testing.assert_array_equal(got, ref)


def test_nms_with_runtime_max_output_and_save_load(rng, tmp_path):
    model = _model(1, 2, 40, 0, 4, 0.5, None, runtime_max=True)
    boxes, scores = _boxes(rng, 1, 40, 0), rng.random((1, 2, 40)).astype(np.float32)
    mod = mlc.compile(model)
    for k in (1, 4, 40):
        feeds = {"boxes": boxes, "scores": scores, "max_out": np.array([k], np.int64)}
        np.testing.assert_array_equal(mod.run(feeds)["selected"], ort_run(model, feeds)[0])
    static = mlc.compile(_model(1, 2, 40, 0, 6, 0.5, None))
    static.save(tmp_path / "nms.mlc")
    loaded = mlc.load(tmp_path / "nms.mlc")
    feeds = {"boxes": boxes, "scores": scores}
    assert [t.name for t in loaded.outputs] == ["selected"]
    np.testing.assert_array_equal(loaded.run(feeds)["selected"], static.run(feeds)["selected"])


def test_nms_output_read_by_another_op_is_a_clear_error(rng):
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "m"], ["sel"])
    gather = helper.make_node("Gather", ["sel", "i"], ["y"])
    g = helper.make_graph([node, gather], "g",
                          [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 10, 4]),
                           helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
                          [numpy_helper.from_array(np.array([3], np.int64), "m"),
                           numpy_helper.from_array(np.array(0, np.int64), "i")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], ir_version=8)
    with pytest.raises(mlc.UnsupportedError, match="data-dependent number of rows"):
        mlc.compile(model)
