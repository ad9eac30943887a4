"""`hf llava-vit ...`: llava-vit as a Hugging Face CLI extension, dispatched by huggingface_hub's own `hf`.

The extension lives where `hf extensions install OWNER/hf-llava-vit` puts a Python extension (huggingface_hub's
cli/extensions.py): `~/.local/share/hf/extensions/hf-llava-vit/` holding `manifest.json` and a `venv` whose
`bin/hf-llava-vit` console script is what `hf` runs. Here that venv is made without downloads: it sees this
environment's packages (llava_vit included) through a `.pth` file, and its console script is the one pip writes.
Model-repo hooks must then work with llava-vit only in that venv: no `llava-vit` on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pytest

HUB_VERSION = tuple(int(part) for part in metadata.version("huggingface_hub").split(".")[:2])
pytestmark = [
    pytest.mark.slow,  # end-to-end through real tools
    pytest.mark.skipif(
        HUB_VERSION < (1, 7), reason=f"hf CLI extensions need huggingface_hub >= 1.7 (installed: {HUB_VERSION})"
    ),
]
HF = Path(sys.executable).parent / "hf"
CONSOLE_SCRIPT = """#!{python}
import sys
from llava_vit.cli import hf_main
if __name__ == "__main__":
    sys.exit(hf_main())
"""


def install_extension(home: Path) -> Path:
    """What `hf extensions install` leaves for a Python extension named hf-llava-vit; returns the venv's python."""
    folder = home / ".local" / "share" / "hf" / "extensions" / "hf-llava-vit"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder / "venv")
    python = folder / "venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]  # processes its .pth files too (the editable llava_vit)
    Path(site, "this-env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    script = folder / "venv" / "bin" / "hf-llava-vit"
    script.write_text(CONSOLE_SCRIPT.format(python=python))
    script.chmod(0o755)
    manifest = {
        "owner": "acme",
        "repo": "hf-llava-vit",
        "repo_id": "acme/hf-llava-vit",
        "short_name": "llava-vit",
        "executable_path": str(script.resolve()),
        "type": "python",
        "installed_at": datetime.now(timezone.utc).isoformat(),
        "description": "Publish LlavaViT encoders",
        "commit_sha": None,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return python


@pytest.fixture
def hf_env(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """A HOME with the extension installed, and a PATH with `hf`, git and sh but no `llava-vit`."""
    home = tmp_path / "home"
    install_extension(home)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hf").symlink_to(HF)
    system = [p for p in os.environ["PATH"].split(os.pathsep) if p and not (Path(p) / "llava-vit").exists()]
    return {
        **env,
        "HOME": str(home),
        "PATH": os.pathsep.join([str(bin_dir), *system]),
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }


def test_hf_dispatches_to_the_extension_and_messages_name_it(hf_env: dict[str, str], tmp_path: Path) -> None:
    assert shutil.which("llava-vit", path=hf_env["PATH"]) is None
    listed = subprocess.run(["hf", "--help"], capture_output=True, text=True, env=hf_env)
    assert "llava-vit" in listed.stdout and "acme/hf-llava-vit" in listed.stdout, listed.stdout

    helped = subprocess.run(["hf", "llava-vit", "--help"], capture_output=True, text=True, env=hf_env)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: hf llava-vit "), helped.stdout
    presets = subprocess.run(["hf", "llava-vit", "presets"], capture_output=True, text=True, env=hf_env)
    assert presets.returncode == 0 and "giant" in presets.stdout, presets.stderr

    failed = subprocess.run(
        ["hf", "llava-vit", "check", str(tmp_path / "nope")], capture_output=True, text=True, env=hf_env
    )
    assert failed.returncode == 1 and failed.stderr.startswith("hf llava-vit check: error: "), failed.stderr


def test_model_repo_hooks_run_through_the_extension(hf_env: dict[str, str], tiny_repo: Path) -> None:
    """A clone without the recorded interpreter: the hooks fall back to `hf llava-vit`; with the extension's
    interpreter recorded (what init-repo does when run from it), they use it directly."""
    git = ["git", "-C", str(tiny_repo)]
    subprocess.run([*git, "config", "--unset", "llava-vit.python"], env=hf_env, check=True)
    modeling = tiny_repo / "modeling_llava_vit.py"
    modeling.write_text(modeling.read_text() + "# hand edit\n")
    subprocess.run([*git, "add", "-A"], env=hf_env, check=True)
    synced = subprocess.run([*git, "commit", "-q", "-m", "edit"], capture_output=True, text=True, env=hf_env)
    assert synced.returncode != 0, synced.stdout + synced.stderr
    assert "hf llava-vit sync: rewrote modeling_llava_vit.py" in synced.stdout + synced.stderr

    extension_python = Path(hf_env["HOME"]) / ".local/share/hf/extensions/hf-llava-vit/venv/bin/python"
    subprocess.run([*git, "config", "llava-vit.python", str(extension_python)], env=hf_env, check=True)
    (tiny_repo / "README.md").write_text((tiny_repo / "README.md").read_text() + "\nMore words.\n")
    subprocess.run([*git, "add", "-A"], env=hf_env, check=True)
    committed = subprocess.run([*git, "commit", "-q", "-m", "card"], capture_output=True, text=True, env=hf_env)
    assert committed.returncode == 0, committed.stdout + committed.stderr
