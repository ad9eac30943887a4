"""Read a safetensors file's tensor table from its header alone, without touching the tensor data.

The format is an 8-byte little-endian header length, a JSON header, then the data. Reading only the
header keeps repo checks fast on multi-GB shards and works on sparse or LFS-smudged files alike.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ..repo_contract import json_depth_ok
from ..trust.opener import UnsafeFile, open_regular

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
_MAX_RANK = 16
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


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_header(path: Path) -> SafetensorsHeader:
    """Parse and validate the header of `path`, checking offsets against the file size (read via fstat): every
    tensor's byte range fits its dtype and shape, the ranges do not overlap and together cover the data."""
    try:
        opened = open_regular(path)
    except UnsafeFile:
        raise HeaderError("is not a regular file (a symlink, folder, FIFO or device)") from None
    with opened as handle:
        size = os.fstat(handle.handle.fileno()).st_size
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
        text = raw.decode("utf-8")
        if not json_depth_ok(text, 4):
            raise HeaderError("has a header nested deeper than safetensors allows")
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise HeaderError(f"has an unreadable JSON header ({error})") from None
    if not isinstance(header, dict):
        raise HeaderError("has a header that is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise HeaderError("has __metadata__ that is not a map of strings")
    tensors: dict[str, TensorEntry] = {}
    for name, info in header.items():
        try:
            dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
            start, end = offsets
        except (KeyError, TypeError, ValueError):
            raise HeaderError(f"has a malformed entry for tensor {name!r}") from None
        if dtype not in DTYPE_SIZES:
            raise HeaderError(f"has tensor {name!r} with unknown dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > _MAX_RANK or not all(_is_count(dim) for dim in shape):
            raise HeaderError(f"has tensor {name!r} whose shape {shape!r} is not a list of non-negative integers")
        if not (_is_count(start) and _is_count(end)):
            raise HeaderError(f"has tensor {name!r} whose data_offsets {offsets!r} are not non-negative integers")
        count = 1
        for dim in shape:
            count *= dim
        if end - start != count * DTYPE_SIZES[dtype]:
            raise HeaderError(f"has tensor {name!r} whose byte range {start}..{end} does not fit {dtype}{shape}")
        tensors[name] = TensorEntry(dtype, tuple(shape), start, end)
    data_size = size - 8 - length
    needed = max((entry.end for entry in tensors.values()), default=0)
    if needed > data_size:
        raise HeaderError(f"is truncated: its tensors need {needed} data bytes, the file holds {data_size}")
    position = 0
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if entry.start != position:
            what = "overlaps another tensor" if entry.start < position else "leaves a gap before it"
            raise HeaderError(f"has tensor {name!r} at bytes {entry.start}..{entry.end} that {what}")
        position = entry.end
    if position != data_size:
        raise HeaderError(f"has {data_size - position} data bytes that no tensor covers")
    return SafetensorsHeader(tensors=tensors, metadata=metadata)
