"""A real wheel: `python -m build`, `pip install` of the wheel into a fresh venv, then what a maintainer does with
it: the `llava-vit` and `hf-llava-vit` commands, `copier copy` of the template the wheel carries, and the hooks of
the repo it makes, all from the wheel's files (never this checkout's).

To stay fast and offline, the fresh venv sees this environment's third-party packages (torch, transformers,
copier, pre-commit) through a plain path in a `.pth` file, added after the wheel is installed with --no-deps: the
venv's own llava_vit (the wheel's) comes first on sys.path, whether this environment's is editable or installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
from pathlib import Path

import pytest
from template_repos import PROJECT, TINY_ANSWERS

import llava_vit

pytestmark = pytest.mark.slow


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"$ {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(PROJECT)], timeout=600)
    return out


def test_the_sdist_carries_the_template(dist: Path) -> None:
    (sdist,) = dist.glob("llava_vit-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"copier.yml", "template/README.md.jinja", "hooks/definitions.yaml", "pyproject.toml"} <= names


def test_an_installed_wheel_makes_a_model_repo(dist: Path, tmp_path: Path, env: dict[str, str]) -> None:
    (wheel,) = dist.glob("llava_vit-*.whl")
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(target)
    python = target / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # The wheel first: once the .pth is in, pip would find this environment's llava_vit (in CI a regular install,
    # not an editable one) and call the requirement satisfied. The venv's own site-packages then comes first.
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(wheel)])
    Path(site, "third-party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    # Only the venv's own commands (and git, sh) on PATH: nothing from this checkout or its environment.
    ours = Path(sys.executable).parent
    path = [str(target / "bin"), *(p for p in env["PATH"].split(os.pathsep) if p and Path(p) != ours)]
    venv_env = {**env, "PATH": os.pathsep.join(path), "VIRTUAL_ENV": str(target)}
    venv_env.pop("PYTHONPATH", None)
    # Run outside this checkout, whose folder python -c would put first on sys.path.
    located = run(
        [str(python), "-c", "import llava_vit.scaffold.new as n; print(n.template_path())"], env=venv_env, cwd=tmp_path
    )
    template = Path(located.stdout.strip())
    assert template == Path(site) / "llava_vit" / "_template", template
    assert (
        run(["llava-vit", "--version"], env=venv_env, cwd=tmp_path).stdout.strip()
        == f"llava-vit {llava_vit.__version__}"
    )
    assert run(["hf-llava-vit", "--help"], env=venv_env, cwd=tmp_path).stdout.startswith("usage: hf llava-vit ")

    dest = tmp_path / "wheel-vit"
    answers = [
        arg
        for key, value in {"repo_id": "acme/wheel-vit", **TINY_ANSWERS}.items()
        for arg in ("--data", f"{key}={value}")
    ]
    run(
        [str(python), "-m", "copier", "copy", "--trust", "--defaults", *answers, str(template), str(dest)], env=venv_env
    )
    assert run(["git", "config", "llava-vit.python"], cwd=dest, env=venv_env).stdout.strip() == str(python)
    assert run(["git", "log", "--format=%s"], cwd=dest, env=venv_env).stdout.count("\n") == 1  # hooks passed
    checked = run([str(python), "-m", "llava_vit", "check", "--full", str(dest)], env=venv_env, cwd=tmp_path)
    assert "[PASS] model loads" in checked.stderr  # a real load; exit 0: code provenance passed too
