"""Writing weights as safetensors shards while holding only one tensor in memory at a time.

`safetensors.torch.save_file` wants the whole shard as a dict of tensors, which for a 5 GB shard means
5 GB of RAM on top of the source. The safetensors layout is simple and fully known before any data is
read (8-byte little-endian header length, JSON header with dtype/shape/offsets, raw bytes), so the
header is written first and each tensor is converted and appended as it arrives.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub.utils import tqdm

from ..errors import LlavaViTError
from ..repo_contract import WEIGHTS_INDEX, shard_file_names
from .checkpoint import TORCH_TO_SAFETENSORS


@dataclass(frozen=True)
class Entry:
    name: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass
class WrittenWeights:
    """What `write_weights` produced: files in order, total bytes, tensors holding NaN or Inf."""

    files: list[str]
    total_bytes: int
    non_finite: list[str] = field(default_factory=list)


def plan_shards(entries: list[Entry], max_bytes: int) -> list[list[Entry]]:
    """Greedy split in order: a shard closes when the next tensor would push it past `max_bytes`
    (a single tensor larger than the limit gets a shard of its own)."""
    shards: list[list[Entry]] = [[]]
    size = 0
    for entry in entries:
        if shards[-1] and size + entry.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += entry.nbytes
    return shards


def _header(entries: list[Entry], code: str) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for entry in entries:
        header[entry.name] = {
            "dtype": code,
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return blob + b" " * (-len(blob) % 8)


def _write_shard(
    path: Path,
    entries: list[Entry],
    dtype: torch.dtype,
    fetch: Callable[[str], torch.Tensor],
    bar: tqdm,
    non_finite: list[str],
) -> None:
    header = _header(entries, TORCH_TO_SAFETENSORS[dtype])
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)))
        handle.write(header)
        for entry in entries:
            tensor = fetch(entry.name).to(device="cpu", dtype=dtype).contiguous()
            if tuple(tensor.shape) != entry.shape:
                raise LlavaViTError(f"{entry.name}: read shape {list(tensor.shape)}, expected {list(entry.shape)}")
            if not bool(torch.isfinite(tensor).all()):
                non_finite.append(entry.name)
            handle.write(tensor.reshape(-1).view(torch.uint8).numpy().data)
            del tensor
            bar.update(entry.nbytes)


def write_weights(
    folder: Path,
    shapes: dict[str, tuple[int, ...]],
    dtype: torch.dtype,
    fetch: Callable[[str], torch.Tensor],
    max_shard_bytes: int,
) -> WrittenWeights:
    """Write every tensor of `shapes` (in that order), converted to `dtype`, as one file or as shards + index."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    entries = [Entry(name, shape, itemsize * math.prod(shape)) for name, shape in shapes.items()]
    shards = plan_shards(entries, max_shard_bytes)
    names = shard_file_names(len(shards))
    total = sum(entry.nbytes for entry in entries)
    written = WrittenWeights(files=names, total_bytes=total)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="converting and writing weights",
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    ) as bar:
        for name, shard in zip(names, shards, strict=True):
            _write_shard(folder / name, shard, dtype, fetch, bar, written.non_finite)
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": total},
            "weight_map": {entry.name: name for name, shard in zip(names, shards, strict=True) for entry in shard},
        }
        (folder / WEIGHTS_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return written
