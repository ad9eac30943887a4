"""Helpers for tests that drive real copier, git, git-lfs and pre-commit on generated model repos."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# A custom architecture small enough to export, commit and load in a few seconds.
TINY_ANSWERS = {
    "preset": "custom",
    "hidden_size": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "patch_size": 8,
    "image_size": 32,
    "layer_norm_type": "rms_norm",
}


def tool_env(workdir: Path) -> dict[str, str]:
    """Environment for git/pre-commit/copier subprocesses, independent of the machine's user config.

    The hooks call `llava-vit`: the one next to this interpreter when the environment provides it,
    else a two-line launcher of `python -m llava_vit` (the same entry point).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "llava-vit").is_file():
        bin_dir = workdir / "bin"
        bin_dir.mkdir(exist_ok=True)
        launcher = bin_dir / "llava-vit"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m llava_vit "$@"\n')
        launcher.chmod(0o755)
    empty_config = workdir / "gitconfig"
    empty_config.touch()
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        GIT_CONFIG_GLOBAL=str(empty_config),
        PRE_COMMIT_HOME=str(workdir / "pre-commit-home"),
        XDG_CACHE_HOME=str(workdir / "cache"),
        HF_HUB_OFFLINE="1",
    )
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    """Run a command; with ok=True it must succeed, with ok=False it must fail (output shown either way)."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    output = f"$ {' '.join(cmd)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert (result.returncode == 0) == ok, output
    return result


def copier_copy(template: Path, dest: Path, answers: dict, env: dict[str, str], ok: bool = True):
    """`copier copy --trust --defaults` as a user types it (HEAD of a git template, not its latest tag)."""
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    cmd = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref", "HEAD", *data]
    return run([*cmd, str(template), str(dest)], cwd=dest.parent, env=env, ok=ok)


def copy_repo(source: Path, dest: Path) -> Path:
    """An independent copy of a model repo, .git (hooks, LFS objects) included."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def git(repo: Path, env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd=repo, env=env, ok=ok)
