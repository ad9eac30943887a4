"""Read a safetensors file's tensor table from its header alone, without touching the tensor data.

The format is an 8-byte little-endian header length, a JSON header, then the data. Reading only the
header keeps repo checks fast on multi-GB shards and works on sparse or LFS-smudged files alike.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

# Bytes per element of each safetensors dtype.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
# torch dtype names as written in config.json, by safetensors dtype.
TORCH_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
_MAX_HEADER_BYTES = 100 * 1024 * 1024
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"


class HeaderError(ValueError):
    """The file is not a well-formed safetensors file; the message says why."""


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]


def read_header(path: Path) -> SafetensorsHeader:
    """Parse and validate the header of `path`, checking offsets against the file size (read via stat)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if prefix == LFS_POINTER_PREFIX[:8] and prefix + handle.read(len(LFS_POINTER_PREFIX) - 8) == LFS_POINTER_PREFIX:
            raise HeaderError("is a git-lfs pointer, not the weights (run `git lfs pull`)")
        if len(prefix) < 8:
            raise HeaderError(f"is {size} bytes, too short for a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(_MAX_HEADER_BYTES, size - 8):
            raise HeaderError(f"declares a {length}-byte header but the file is {size} bytes")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HeaderError(f"has an unreadable JSON header ({error})") from None
    if not isinstance(header, dict):
        raise HeaderError("has a header that is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, TensorEntry] = {}
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise HeaderError(f"has a malformed entry for tensor {name!r}") from None
        if dtype not in DTYPE_SIZES:
            raise HeaderError(f"has tensor {name!r} with unknown dtype {dtype!r}")
        count = 1
        for dim in shape:
            count *= dim
        if end - start != count * DTYPE_SIZES[dtype] or start < 0:
            raise HeaderError(f"has tensor {name!r} whose byte range {start}..{end} does not fit {dtype}{list(shape)}")
        tensors[name] = TensorEntry(dtype, shape, start, end)
    data_size = size - 8 - length
    needed = max((entry.end for entry in tensors.values()), default=0)
    if needed > data_size:
        raise HeaderError(f"is truncated: its tensors need {needed} data bytes, the file holds {data_size}")
    return SafetensorsHeader(tensors=tensors, metadata=metadata)
