"""A loaded signature's inputs and outputs, and its tensors in and out: what Predict checks and how it answers."""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.local import runtime


@dataclass(frozen=True)
class TensorSpec:
    """What a signature expects for one input: dtype and shape (-1 = any)."""

    alias: str
    dtype: Any
    shape: tuple[int, ...] | None

    @functools.cached_property
    def enum(self) -> int:
        """The DataType enum a request's TensorProto must carry (looked up once, not per request)."""
        return self.dtype.as_datatype_enum

    @functools.cached_property
    def np_dtype(self) -> np.dtype | None:
        """The numpy dtype tensor_content is read as (None: strings, which have no tensor_content)."""
        return None if self.dtype == runtime.get().string else np.dtype(self.dtype.as_numpy_dtype)

    def describe(self) -> str:
        """e.g. `image` float32 [-1,224,224,3]."""
        dims = "unknown" if self.shape is None else "[" + ",".join(str(d) for d in self.shape) + "]"
        return f"`{self.alias}` {self.dtype.name} {dims}"


@dataclass
class Signature:
    """A signature of a loaded version: input specs, the graph tensors to feed and fetch."""

    name: str
    inputs: dict[str, TensorSpec]
    outputs: tuple[str, ...]
    feeds: dict[str, str]
    fetches: dict[str, str]
    empty_answer: dict[str, np.ndarray] | None = None
    """The answer to a 0-row request, where every output's shape is known but for the batch dimension."""

    def expected(self) -> str:
        """The inputs it takes, for error messages."""
        return ", ".join(s.describe() for s in self.inputs.values())


def spec_of(alias: str, info) -> TensorSpec:
    """TensorSpec from a SignatureDef's TensorInfo."""
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    return TensorSpec(alias, runtime.get().as_dtype(info.dtype), shape)


def empty_answer(outputs) -> dict[str, np.ndarray] | None:
    """0-row arrays shaped like a signature's outputs (None where a shape is unknown past the batch dimension).

    A 0-row request is answered from these without running the model, as TF Serving answers it: TensorFlow's
    oneDNN kernels (on by default on x86) fail on an empty batch on some CPUs (AVX-512 ones: "Incompatible
    shapes: [0,224,224,3] vs. [16]" from a fused batch norm), where the reference kernels return 0 rows."""
    answer = {}
    for alias, info in outputs.items():
        spec = spec_of(alias, info)
        if not spec.shape or any(d < 0 for d in spec.shape[1:]):
            return None
        dtype = object if spec.np_dtype is None else spec.np_dtype
        answer[alias] = np.zeros((0, *spec.shape[1:]), dtype)
    return answer


def dims_of(proto) -> tuple[int, ...]:
    """The shape a TensorProto declares."""
    return tuple(d.size for d in proto.tensor_shape.dim)


def ndarray_of(proto, spec: TensorSpec, dims: tuple[int, ...]) -> np.ndarray:
    """A request tensor as numpy: numbers in tensor_content are viewed in place (read-only, no copy)."""
    if spec.np_dtype is not None:
        content = proto.tensor_content  # read once: each read of a bytes field makes a new bytes object
        if content:
            return np.frombuffer(content, dtype=spec.np_dtype).reshape(dims)
    return runtime.get().make_ndarray(proto)


_CONTENT_DTYPES = ("float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64")
"""Numeric dtypes whose tensors are answered as raw little-endian tensor_content, as make_tensor_proto does."""
_SCALAR_FIELDS = {"float32": "float_val", "float64": "double_val", "int8": "int_val", "int16": "int_val",
                  "int32": "int_val", "uint8": "int_val", "int64": "int64_val"}
"""Where make_tensor_proto writes a one-element tensor of these dtypes (it uses tensor_content from 2 elements on)."""


@functools.lru_cache(maxsize=None)
def _content_enum(dtype: np.dtype) -> int | None:
    """The DataType enum of a numeric numpy dtype sent as tensor_content (None: let make_tensor_proto do it)."""
    if dtype.name not in _CONTENT_DTYPES or dtype.byteorder == ">" or sys.byteorder != "little":
        return None
    return runtime.get().as_dtype(dtype).as_datatype_enum


def fill_tensor_proto(proto, arr: np.ndarray) -> None:
    """Write an output into a response's TensorProto in place: the bytes make_tensor_proto would
    produce for numeric arrays, without its per-call checks (strings still go through it)."""
    enum = _content_enum(arr.dtype)
    scalar_field = _SCALAR_FIELDS.get(arr.dtype.name) if arr.size == 1 else None
    if enum is None or (arr.size == 1 and scalar_field is None):
        proto.CopyFrom(runtime.get().make_tensor_proto(arr))
        return
    proto.dtype = enum
    for d in arr.shape:
        proto.tensor_shape.dim.add().size = d
    if scalar_field is not None:
        getattr(proto, scalar_field).append(arr.item())
    elif arr.size:
        proto.tensor_content = arr.tobytes()
