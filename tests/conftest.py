"""Shared test fixtures: git identity, and a clean Python that has torch and transformers but no llava_vit."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _git_identity() -> None:
    """Commits made by tests must not depend on the machine's git config."""
    for key, value in {
        "GIT_AUTHOR_NAME": "llava-vit tests",
        "GIT_AUTHOR_EMAIL": "tests@llava-vit.invalid",
        "GIT_COMMITTER_NAME": "llava-vit tests",
        "GIT_COMMITTER_EMAIL": "tests@llava-vit.invalid",
    }.items():
        os.environ.setdefault(key, value)


def _build_clean_env(target: Path) -> Path:
    """A venv with the same torch, transformers and huggingface_hub as this one, and nothing else of ours."""
    python = target / "bin" / "python"
    stamp = target / "ready"
    if stamp.exists():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    pins = [
        f"{name}=={metadata.version(name).split('+')[0]}"
        for name in ("torch", "transformers", "huggingface_hub", "safetensors")
    ]
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins, "pillow"],
        check=True,
    )
    stamp.write_text(" ".join(pins))
    return python


@pytest.fixture(scope="session")
def clean_python() -> Path:
    """Interpreter of an environment with only torch + transformers (what a model's consumer has).

    `LLAVA_VIT_CLEAN_PYTHON` names one (CI builds it ahead); otherwise one matching this environment's
    versions is built once under ~/.cache/llava-vit-tests.
    """
    given = os.environ.get("LLAVA_VIT_CLEAN_PYTHON")
    if given:
        python = Path(given)
    else:
        versions = f"tf{metadata.version('transformers')}-torch{metadata.version('torch')}"
        key = f"{versions}-py{sys.version_info[0]}{sys.version_info[1]}"
        python = _build_clean_env(Path.home() / ".cache" / "llava-vit-tests" / key)
    probe = subprocess.run(
        [str(python), "-I", "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('llava_vit') is not None)"],
        capture_output=True,
    )
    assert probe.returncode == 0, f"{python} can import llava_vit; a clean environment must not"
    return python
