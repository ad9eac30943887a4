"""Sizes as people write them ("5GB", "500MB"): torch-free, so the CLI can check `--max-shard-size` early."""

from __future__ import annotations

import os
import re

from ..errors import UsageError

DEFAULT_MAX_SHARD_SIZE = "5GB"
_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Bytes in "5GB", "500MB", "1KB", "2GiB" or a plain number of bytes (decimal units, as transformers)."""
    if isinstance(text, int):
        size = text
    else:
        match = _SIZE_RE.match(text)
        unit = match[2].upper() if match else None
        if match is None or unit not in _UNITS:
            raise UsageError(
                f"invalid size {text!r}; use a number of bytes or a number with a unit, e.g. 5GB, 500MB, 1KB, 2GiB"
            )
        size = int(float(match[1]) * _UNITS[unit])
    if size <= 0:
        raise UsageError(f"invalid size {text!r}: it must be positive")
    return size


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable), or None where that is unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
