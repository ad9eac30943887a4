"""git and git-lfs queries shared by the guard and the repo checks (all through the real git CLI)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .errors import LlavaViTError
from .weights.safetensors_header import LFS_POINTER_PREFIX


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    """Run git in `repo` and return its stdout; a failure becomes a LlavaViTError with git's message."""
    if shutil.which("git") is None:
        raise LlavaViTError("git is not installed or not on PATH; install git")
    result = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True)
    if result.returncode:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise LlavaViTError(f"`git {' '.join(args)}` failed in {repo}: {message[-1] if message else 'no output'}")
    return result.stdout


def is_lfs_pointer(path: Path) -> bool:
    """True when the file on disk is a git-lfs pointer instead of the real content."""
    with path.open("rb") as handle:
        return handle.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX


def lfs_tracked(repo: Path, paths: Iterable[str]) -> set[str]:
    """The subset of `paths` (relative to `repo`) whose git attributes route them through git-lfs."""
    paths = list(paths)
    if not paths:
        return set()
    fields = git(repo, "check-attr", "-z", "--stdin", "filter", stdin="\0".join(paths) + "\0").split("\0")
    return {fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] == "lfs"}


def lfs_media_dir(repo: Path) -> Path:
    """Where this clone keeps its git-lfs objects (`git lfs env`'s LocalMediaDir)."""
    for line in git(repo, "lfs", "env").splitlines():
        if line.startswith("LocalMediaDir="):
            return (repo / line.partition("=")[2]).resolve()
    raise LlavaViTError(f"`git lfs env` in {repo} names no LocalMediaDir; update git-lfs (https://git-lfs.com)")


GIT_LFS_MISSING = "git-lfs is not installed: install it (https://git-lfs.com), then run `git lfs install --local`"


def lfs_object_problems(repo: Path) -> list[str]:
    """Problems that would make a push publish LFS pointers without their objects, one line each."""
    if shutil.which("git-lfs") is None:
        return [GIT_LFS_MISSING]
    problems = []
    media = lfs_media_dir(repo)
    pointers = set()
    for line in git(repo, "lfs", "ls-files", "--long").splitlines():
        oid, _, name = line.split(" ", 2)
        pointers.add(name)
        if not (media / oid[:2] / oid[2:4] / oid).is_file():
            problems.append(f"{name}: its git-lfs object is not in this clone; run `git lfs fetch && git lfs checkout`")
        elif (repo / name).is_file() and is_lfs_pointer(repo / name):
            problems.append(f"{name}: the working copy is an LFS pointer; run `git lfs checkout {name}`")
    committed = [name for name in git(repo, "ls-files", "-z").split("\0") if name]
    for name in sorted(lfs_tracked(repo, committed) - pointers):
        problems.append(
            f"{name}: matches an LFS pattern in .gitattributes but was committed without LFS; "
            f"run `git rm --cached {name} && git add {name}` and commit"
        )
    return problems


def lfs_push_hook_problems(repo: Path) -> list[str]:
    """git-lfs uploads objects from its pre-push hook: without it in the chain, a push sends bare pointers.
    (Without git-lfs itself there is nothing to ask: `lfs_object_problems` reports that.)"""
    if shutil.which("git-lfs") is None:
        return []
    if not git(repo, "lfs", "ls-files", "--name-only").strip():
        return []
    hooks = (repo / git(repo, "rev-parse", "--git-path", "hooks").strip()).resolve()
    chain = [hooks / "pre-push", hooks / "pre-push.legacy"]
    if any(path.is_file() and "git lfs pre-push" in path.read_text(errors="replace") for path in chain):
        return []
    return [
        "git-lfs's pre-push hook is not installed, so a push would publish LFS pointers without their objects; "
        "run `pre-commit uninstall -t pre-push && git lfs install --local && pre-commit install -t pre-push`"
    ]
