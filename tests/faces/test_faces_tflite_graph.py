"""The small TFLite writer (bump_backend/faces/tflite_graph.py): its layers, run by LiteRT, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import mtcnn, tflite_graph


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@settings(max_examples=40, deadline=None)
@given(size=st.integers(4, 40), kernel=st.sampled_from([2, 3]), stride=st.sampled_from([2, 3]), seed=st.integers(0, 2**16))
def test_max_pooling_matches_ceil_mode_or_says_it_cannot(size, kernel, stride, seed):
    """Caffe's ceil mode (MTCNN's pooling, numpy's ``mtcnn._max_pool``) through whichever TFLite padding gives it."""
    x = np.random.default_rng(seed).normal(size=(2, size, size, 3)).astype(np.float32)
    reference = mtcnn._max_pool(x.transpose(3, 0, 1, 2), kernel, stride).transpose(1, 2, 3, 0)
    writer = tflite_graph.GraphWriter(size, size, 3)
    try:
        writer.max_pool(kernel, stride, "pool")
    except ValueError:
        # Refused only where neither padding gives ceil mode's cells: a net with such a layer stays on numpy.
        floor = (size - kernel) // stride + 1
        assert reference.shape[1] != floor
        assert reference.shape[1] != -(-size // stride) or (reference.shape[1] - 1) * stride + kernel - size > 1
        return
    assert writer.shape == [1, *reference.shape[1:]]
    np.testing.assert_array_equal(_run(writer.finish(), x), reference)


def test_convolution_prelu_and_dense_match_numpy():
    rng = np.random.default_rng(4)
    weight, bias = rng.normal(size=(5, 3, 3, 2)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    slope = rng.uniform(-0.5, 0.5, 5).astype(np.float32)
    dense, dense_bias = rng.normal(size=(4, 6 * 8 * 5)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    writer = tflite_graph.GraphWriter(8, 9, 3)
    writer.conv(weight, bias, "conv")
    writer.prelu(slope, "prelu")
    writer.dense(dense, dense_bias, "dense")
    x = rng.normal(size=(3, 8, 9, 3)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 2), axis=(1, 2))  # N, 6, 8, C, kh, kw
    conv = np.einsum("nhwcij,ocij->nhwo", windows, weight) + bias
    conv = np.where(conv > 0, conv, conv * slope)
    expected = conv.reshape(3, -1) @ dense.T + dense_bias
    np.testing.assert_allclose(_run(writer.finish(), x), expected, rtol=1e-4, atol=1e-4)


def test_layers_that_do_not_fit_are_named():
    writer = tflite_graph.GraphWriter(8, 8, 3)
    with pytest.raises(ValueError, match="conv: 4 input channels"):
        writer.conv(np.zeros((2, 4, 3, 3), np.float32), np.zeros(2, np.float32), "conv")
    with pytest.raises(ValueError, match="dense: 10 inputs"):
        writer.dense(np.zeros((2, 10), np.float32), np.zeros(2, np.float32), "dense")
    with pytest.raises(ValueError, match="no TFLite padding"):
        tflite_graph.ceil_pool_padding(10, 3, 3)
