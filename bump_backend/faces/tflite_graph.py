"""A small TFLite model writer: plain float32 convolution nets (convolution, PReLU, max pooling, dense) as ``.tflite``
bytes, so LiteRT's XNNPACK runs networks whose weights ship in another format (MTCNN's R-Net and O-Net: mtcnn.py).

Only the format lives here: shapes are NHWC, convolution weights OHWI, dense weights (out x in) over the NHWC
flattening of the layer before. ``ai_edge_litert``'s own flatbuffer schema writes the file.
"""

from __future__ import annotations

import numpy as np


def _schema():
    from ai_edge_litert import schema_py_generated as schema  # optional, heavy: only when LiteRT is used

    return schema


def ceil_pool_padding(size: int, kernel: int, stride: int) -> str:
    """The TFLite padding ("VALID" or "SAME") whose max pooling gives Caffe's ceil-mode output over ``size`` cells.

    Ceil mode lets the last window hang over the edge (never start past it). SAME pads at the end only when its
    total padding is one cell (TFLite puts the odd cell last), so it matches only then; else VALID must.
    """
    ceil = -(-(size - kernel) // stride) + 1
    if (ceil - 1) * stride >= size:
        ceil -= 1
    if (size - kernel) // stride + 1 == ceil:
        return "VALID"
    same = -(-size // stride)
    if same == ceil and (same - 1) * stride + kernel - size <= 1:
        return "SAME"
    raise ValueError(f"no TFLite padding pools {size} cells like ceil mode (kernel {kernel}, stride {stride})")


class GraphWriter:
    """One subgraph built layer by layer from a 1 x H x W x C float input; ``finish`` returns the model bytes."""

    def __init__(self, height: int, width: int, channels: int) -> None:
        schema = self.schema = _schema()
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.buffers = [schema.BufferT()]  # buffer 0: the empty buffer of every non-constant tensor
        self.model.operatorCodes = []
        self.graph = schema.SubGraphT()
        self.graph.tensors, self.graph.operators = [], []
        self.model.subgraphs = [self.graph]
        self._codes: dict[int, int] = {}
        self.shape = [1, height, width, channels]
        self.input = self.current = self._tensor(self.shape, "input")

    def _tensor(self, shape: list[int], name: str, data: np.ndarray | None = None) -> int:
        tensor = self.schema.TensorT()
        tensor.shape = np.array(shape, np.int32)
        tensor.type = self.schema.TensorType.FLOAT32
        tensor.name = name.encode()
        tensor.buffer = 0
        if data is not None:
            buffer = self.schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data, np.float32).tobytes(), np.uint8)
            self.model.buffers.append(buffer)
            tensor.buffer = len(self.model.buffers) - 1
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def _op(self, code: int, inputs: list[int], shape: list[int], name: str, options_type: int = 0,
            options=None) -> None:
        if code not in self._codes:
            operator_code = self.schema.OperatorCodeT()
            operator_code.builtinCode = code
            operator_code.deprecatedBuiltinCode = min(code, 127)
            operator_code.version = 1
            self.model.operatorCodes.append(operator_code)
            self._codes[code] = len(self.model.operatorCodes) - 1
        output = self._tensor(shape, name)
        op = self.schema.OperatorT()
        op.opcodeIndex = self._codes[code]
        op.inputs = np.array(inputs, np.int32)
        op.outputs = np.array([output], np.int32)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.graph.operators.append(op)
        self.current, self.shape = output, shape

    def conv(self, weight: np.ndarray, bias: np.ndarray, name: str) -> None:
        """A stride-1, unpadded convolution; ``weight`` as torch keeps it (out x in x kh x kw)."""
        out, channels, kh, kw = weight.shape
        if channels != self.shape[3]:
            raise ValueError(f"{name}: {channels} input channels, the layer before gives {self.shape[3]}")
        schema = self.schema
        options = schema.Conv2DOptionsT()
        options.padding = schema.Padding.VALID
        options.strideW = options.strideH = options.dilationWFactor = options.dilationHFactor = 1
        inputs = [self.current, self._tensor([out, kh, kw, channels], f"{name}/weight", weight.transpose(0, 2, 3, 1)),
                  self._tensor([out], f"{name}/bias", bias)]
        self._op(schema.BuiltinOperator.CONV_2D, inputs, [1, self.shape[1] - kh + 1, self.shape[2] - kw + 1, out],
                 name, schema.BuiltinOptions.Conv2DOptions, options)

    def prelu(self, slope: np.ndarray, name: str) -> None:
        if slope.shape != (self.shape[-1],):
            raise ValueError(f"{name}: {slope.shape[0]} slopes for {self.shape[-1]} channels")
        slopes = self._tensor([slope.shape[0]], f"{name}/slope", slope)
        self._op(self.schema.BuiltinOperator.PRELU, [self.current, slopes], list(self.shape), name)

    def max_pool(self, kernel: int, stride: int, name: str) -> None:
        """Max pooling in Caffe's ceil mode (MTCNN's), through whichever TFLite padding gives the same cells."""
        schema = self.schema
        paddings = [ceil_pool_padding(size, kernel, stride) for size in self.shape[1:3]]
        if paddings[0] != paddings[1]:
            raise ValueError(f"{name}: rows and columns would need different paddings")
        options = schema.Pool2DOptionsT()
        options.padding = getattr(schema.Padding, paddings[0])
        options.strideW = options.strideH = stride
        options.filterWidth = options.filterHeight = kernel
        cells = [(s - kernel) // stride + 1 if paddings[0] == "VALID" else -(-s // stride) for s in self.shape[1:3]]
        self._op(schema.BuiltinOperator.MAX_POOL_2D, [self.current], [1, *cells, self.shape[3]], name,
                 schema.BuiltinOptions.Pool2DOptions, options)

    def dense(self, weight: np.ndarray, bias: np.ndarray, name: str) -> None:
        """A fully connected layer over the NHWC flattening of what comes before (out x in weights)."""
        inputs = int(np.prod(self.shape[1:]))
        if weight.shape[1] != inputs:
            raise ValueError(f"{name}: {weight.shape[1]} inputs, the layer before gives {inputs}")
        schema = self.schema
        options = schema.FullyConnectedOptionsT()
        options.keepNumDims = False
        weights = [self.current, self._tensor(list(weight.shape), f"{name}/weight", weight),
                   self._tensor([weight.shape[0]], f"{name}/bias", bias)]
        self._op(schema.BuiltinOperator.FULLY_CONNECTED, weights, [1, weight.shape[0]], name,
                 schema.BuiltinOptions.FullyConnectedOptions, options)

    def finish(self) -> bytes:
        """The model: the input in, the last layer out."""
        import flatbuffers

        self.graph.inputs = np.array([self.input], np.int32)
        self.graph.outputs = np.array([self.current], np.int32)
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
