"""Conv and pooling edge cases the ONNX node tests found (references: onnxruntime)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_matches_ort, single_op_model


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [1, 2, 2, 1]])
def test_average_pool_dilated_window_counts_taps(include_pad, ceil_mode, pads, rng):
    """With dilations the divisor is the number of window *taps* inside the input (or the
    padding), not the window's extent: the last ceil_mode window overhangs the input."""
    x = rng.standard_normal((1, 3, 11, 12)).astype(np.float32)
    attrs = {"kernel_shape": [3, 4], "strides": [2, 3], "dilations": [2, 3], "pads": pads,
             "ceil_mode": ceil_mode, "count_include_pad": include_pad}
    model = single_op_model("AveragePool", {"x": x}, {"y": (np.float32, None)}, attrs, opset=22)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("group,C,OC", [(1, 3, 8), (2, 4, 6), (5, 5, 5), (2, 32, 32)])
def test_conv_weights_fed_at_run_time(group, C, OC, rng):
    """Weights (and bias) as graph inputs, not initializers: the kernels cannot pack them
    at compile time and read them in place."""
    x = rng.standard_normal((2, C, 9, 7)).astype(np.float32)
    w = rng.standard_normal((OC, C // group, 3, 3)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    model = single_op_model("Conv", {"x": x, "w": w, "b": b}, {"y": (np.float32, None)},
                            {"group": group, "pads": [1, 0, 1, 2], "strides": [1, 2]}, opset=22)
    assert_matches_ort(model, {"x": x, "w": w, "b": b})


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("C,OC,k,stride,group,pads", [
    (1, 258, 256, 64, 1, [0, 0]),     # an STFT as a Conv1d (Silero VAD): 1 input channel, wide kernel
    (32, 48, 3, 1, 1, [1, 1]),        # blocked input and output
    (32, 32, 5, 2, 32, [2, 2]),       # depthwise
    (32, 64, 3, 2, 2, [1, 0]),        # grouped, asymmetric padding
])
def test_conv1d_with_constant_weights(C, OC, k, stride, group, pads, threads, rng):
    """Conv1d with initializer weights runs in the blocked layout, whose output has no
    row loop: its schedule must not name one (it used to fail with "no axis 'oh'")."""
    x = rng.standard_normal((1, C, 300)).astype(np.float32)
    w = rng.standard_normal((OC, C // group, k)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    model = single_op_model("Conv", {"x": x}, {"y": (np.float32, None)},
                            {"kernel_shape": [k], "strides": [stride], "group": group, "pads": pads},
                            initializers={"w": w, "b": b})
    assert_matches_ort(model, {"x": x}, rtol=1e-4, atol=1e-4, num_threads=threads)


@pytest.mark.parametrize("shape,attrs", [
    ((2, 3, 9, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 7, 10), {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 1], "ceil_mode": 1}),
    ((1, 2, 7, 10), {"kernel_shape": [3, 2], "storage_order": 1, "pads": [0, 1, 2, 0]}),
    ((2, 3, 11), {"kernel_shape": [4], "strides": [3], "pads": [2, 1]}),
])
def test_max_pool_indices(shape, attrs, rng):
    """MaxPool's second output: the index of the first maximum of each window in the
    flattened input (column-major spatial dims with storage_order=1)."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., ::3] = x[..., 1::3].max()            # ties: the first in window order wins
    model = single_op_model("MaxPool", {"x": x}, {"y": (np.float32, None), "i": (np.int64, None)}, attrs,
                            opset=12)
    assert_matches_ort(model, {"x": x})
