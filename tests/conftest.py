"""Shared test fixtures: git identity, and a clean Python that has torch and transformers but no llava_vit."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from llava_vit.hub.local_hub import LocalHub


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
    """A venv with the same torch, transformers and huggingface_hub as this one (plus pillow and av, for
    images and video files), and nothing else of ours."""
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
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins, "pillow", "av"],
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


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for git, pre-commit and copier subprocesses, independent of the machine's user config."""
    from template_repos import tool_env

    return tool_env(tmp_path_factory.mktemp("tools"))


@pytest.fixture(scope="session")
def made_repo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """One tiny model repo made by `llava-vit new` (template, export, hooks, first commit) for the session.

    Tests never change it: they take a copy (`tiny_repo`)."""
    from template_repos import TINY_ANSWERS, run

    dest = tmp_path_factory.mktemp("new") / "hooks-vit"
    answers = [arg for key, value in TINY_ANSWERS.items() if key != "preset" for arg in ("--answer", f"{key}={value}")]
    cmd = [sys.executable, "-m", "llava_vit", "new", str(dest), "--repo-id", "acme/hooks-vit", "--preset", "custom"]
    run([*cmd, *answers], cwd=dest.parent, env=env)
    return dest


@pytest.fixture
def tiny_repo(made_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny model repo, .git (hooks, LFS objects) included."""
    from template_repos import copy_repo

    return copy_repo(made_repo, tmp_path / made_repo.name)


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """One olah server on 127.0.0.1 for the whole session, stopped even when a test fails."""
    from llava_vit.hub.local_hub import LocalHub

    with LocalHub(tmp_path_factory.mktemp("hub")) as running:
        yield running


def pytest_configure(config: pytest.Config) -> None:
    # Marks that transformers' common model tests (tests/test_modeling_common.py runs them) put on their tests
    # ("order" from 4.57's testing_utils.run_first).
    for mark in (
        "accelerate_tests",
        "order",
        "flash_attn_test",
        "flash_attn_3_test",
        "flash_attn_4_test",
        "torch_compile_test",
        "torch_export_test",
    ):
        config.addinivalue_line("markers", f"{mark}: a transformers common-test mark")
