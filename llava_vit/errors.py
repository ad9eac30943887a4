"""Errors the CLI turns into one clear line and an exit status (no traceback unless --debug)."""


class LlavaViTError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 1


class UsageError(LlavaViTError):
    """Bad arguments or inputs (exit 2)."""

    exit_code = 2


class CheckFailed(LlavaViTError):
    """A check found a problem (exit 1)."""

    exit_code = 1
