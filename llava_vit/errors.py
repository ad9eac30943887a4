"""Errors the CLI turns into one clear line and an exit status (no traceback unless --debug)."""

from __future__ import annotations

import errno

# What to do about the operating-system errors a user can cause or fix (disk, permissions, paths).
_OS_ERROR_FIXES = {
    errno.ENOSPC: "the disk is full: free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is exhausted: free some space or write somewhere else",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f): raise the limit or use smaller shards",
    errno.EROFS: "the file system is read-only: choose a writable destination",
    errno.EACCES: "permission denied: choose a destination you can write to, or fix its permissions",
    errno.EPERM: "the operation is not permitted there: choose an ordinary, writable folder",
    errno.ENOENT: "a path does not exist: check it",
    errno.ENOTDIR: "a path component is a file, not a folder: choose another path",
    errno.EISDIR: "a folder is where a file was expected: choose another path",
}


class LlavaViTError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 1


class UsageError(LlavaViTError):
    """Bad arguments or inputs (exit 2)."""

    exit_code = 2


class CheckFailed(LlavaViTError):
    """A check found a problem (exit 1)."""

    exit_code = 1


def one_line(name: object) -> str:
    """A path as one line: control characters (a newline in a file name) escaped as Python writes them."""
    text = str(name)
    return text if text.isprintable() else repr(text)[1:-1]


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: where, what the system said, and what to do about it."""
    where = " -> ".join(one_line(name) for name in (error.filename, error.filename2) if name is not None)
    reason = error.strerror or str(error) or type(error).__name__
    fix = _OS_ERROR_FIXES.get(error.errno or 0, "check the path and try again")
    return f"{where + ': ' if where else ''}{reason}; {fix}"


def describe_hostile_input(error: BaseException) -> str:
    """One line for what only a hostile or broken input causes (deep nesting, a memory bomb, bad text)."""
    if isinstance(error, RecursionError):
        return "an input is nested too deeply to process (a hostile or broken file); fix or replace it"
    if isinstance(error, MemoryError):
        return "an input needs more memory than this machine has (a hostile or broken file?); fix or replace it"
    return f"an input is not valid text ({one_line(error)}); save it as UTF-8"


class Problem:
    """One finding of a judge, about one path (and line): printed as `path[:line]: message`, on one line."""

    def __init__(self, path: str, message: str, line: int = 0) -> None:
        self.path, self.message, self.line = path, message, line

    def __str__(self) -> str:
        path = one_line(self.path)  # a file name holding a newline must not forge a report line
        return f"{path}:{self.line}: {self.message}" if self.line else f"{path}: {self.message}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"
