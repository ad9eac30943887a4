"""Writing the derived files of a model repo (the code files under their provenance header, config.json's
`auto_map`) safely: every write goes to an exclusive temporary file in the target folder, then replaces the
target in one rename, never through a symlink. A temporary file carries its writer's PID, so what a killed
writer left behind is told apart from a running writer's file and removed by the next write.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import LlavaViTError
from .repo_contract import AUTO_MAP, CODE_FILES, CONFIG_FILE, PROCESSOR_CONFIG_FILE, processor_config, render_code_file


def writer_gone(pid: str) -> bool:
    """Whether the process that named a file after itself (`pid`, as read from the name) is gone, so the file is a
    leftover. A live process (owned by anyone), or text that is no possible PID (a name we did not make), is not
    gone: its files are left alone."""
    if not (pid.isascii() and pid.isdigit()):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # alive under another user; beyond any PID
        pass
    return False


def remove_leftovers(folder: Path, names: Iterable[str]) -> None:
    """Delete the temporary files of `names` in `folder` that a killed `write_atomic` (SIGKILL, power loss) left:
    regular files named exactly as it names them, whose writer is gone. Anything else is left alone."""
    targets = "|".join(re.escape(name) for name in names)
    pattern = re.compile(rf"\.(?:{targets})\.([0-9]+)-[a-z0-9_]+\.tmp")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None or not writer_gone(match.group(1)):
            continue
        leftover = folder / entry
        try:
            if stat.S_ISREG(leftover.lstat().st_mode):
                leftover.unlink()
        except OSError:
            pass  # gone meanwhile, or not ours to delete: litter at worst, never a lost file


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8): a reader sees the old file or the new one, never half of either.

    The temporary file is created exclusively (`mkstemp`), so a file or symlink planted under a predictable
    name cannot redirect the write; a target that is a symlink is refused rather than written through.
    """
    if path.is_symlink():
        raise LlavaViTError(f"{path} is a symlink; refusing to write through it: replace it with a regular file")
    remove_leftovers(path.parent, (path.name,))
    descriptor, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_code_files(folder: Path) -> list[str]:
    """Write or refresh the code files in `folder`; return the names that changed."""
    changed = []
    for name in CODE_FILES:
        target = folder / name
        text = render_code_file(name)
        if target.is_file() and not target.is_symlink() and target.read_bytes() == text.encode("utf-8"):
            continue
        write_atomic(target, text)
        changed.append(name)
    return changed


def complete_saved_folder(folder: str | os.PathLike) -> None:
    """What transformers' save_pretrained leaves out of a llava-vit repo when the package saves it: the code files
    as the release has them (under their provenance header; transformers copies the package's bare sources and
    knows nothing of the processor) and processor_config.json."""
    folder = Path(folder)
    write_code_files(folder)
    target = folder / PROCESSOR_CONFIG_FILE
    if not target.exists():
        patch_size = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["patch_size"]
        write_atomic(target, json.dumps(processor_config(patch_size), indent=2) + "\n")


def config_json_text(data: dict) -> str:
    """config.json as llava-vit writes it (sorted keys, so that diffs stay small)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def with_auto_map(data: dict) -> dict:
    """config.json data with exactly llava-vit's `auto_map`."""
    return {**data, "auto_map": dict(AUTO_MAP)}
