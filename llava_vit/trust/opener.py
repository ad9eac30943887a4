"""Opening a file that someone else controls: the one way, for every judge and every reader of repo files.

A symlink is never followed (O_NOFOLLOW), a FIFO or device never blocks (O_NONBLOCK, then fstat says what was
opened and only a regular file is kept), and a size limit holds while reading, not after: a file that grows
between the check and the read is still cut off at its limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class UnsafeFile(ValueError):
    """A path that is not a regular file (symlink, FIFO, device, folder), or content beyond its size limit."""


class CappedReader:
    """A binary stream that raises UnsafeFile once more than `limit` bytes were read from it (None: no limit)."""

    def __init__(self, handle: BinaryIO, name: str, limit: int | None) -> None:
        self.handle, self.name, self.limit, self.count = handle, name, limit, 0

    def read(self, size: int = -1) -> bytes:
        if self.limit is not None:
            size = self.limit + 1 - self.count if size < 0 else min(size, self.limit + 1 - self.count)
        data = self.handle.read(size)
        self.count += len(data)
        if self.limit is not None and self.count > self.limit:
            raise UnsafeFile(f"{self.name} is larger than the {self.limit} bytes this file may have")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def seekable(self) -> bool:
        return self.handle.seekable()

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> CappedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_regular(path: Path | str, limit: int | None = None, *, follow: bool = False) -> CappedReader:
    """A reader on the regular file `path`, capped at `limit` bytes. `follow` allows a symlink, for a path the
    user named on the command line; a repo's own paths never set it."""
    flags = os.O_RDONLY | (0 if follow else _NOFOLLOW) | _NONBLOCK
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if os.path.islink(path):
            raise UnsafeFile(f"{path} is a symlink; refusing to follow it") from None
        raise error
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise UnsafeFile(f"{path} is not a regular file (a folder, FIFO, socket or device)")
    if limit is not None and info.st_size > limit:
        os.close(descriptor)
        raise UnsafeFile(f"{path} is {info.st_size} bytes, more than the {limit} this file may have")
    return CappedReader(os.fdopen(descriptor, "rb"), str(path), limit)


def read_regular(path: Path | str, limit: int, *, follow: bool = False) -> bytes:
    """The whole regular file `path`, at most `limit` bytes (UnsafeFile beyond, or for anything not regular)."""
    with open_regular(path, limit, follow=follow) as handle:
        return handle.read()
