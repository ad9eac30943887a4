"""Small model repos for publishing tests (the real export and template, real git + git-lfs, the reference
fixture weights) and a loader run by a clean interpreter (no llava_vit), the way a model's user loads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from reference import REFERENCE, architecture, weights_path
from safetensors.torch import load_file, save_file

from llava_vit import LlavaViTConfig
from llava_vit.export import export_model

ARCH = "tiny_ln_p14"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def scaled_weights(folder: Path, scale: float) -> Path:
    """The reference weights times `scale` (two versions of a model that give different outputs)."""
    path = folder / f"weights-x{scale}.safetensors"
    save_file({name: value * scale for name, value in load_file(weights_path(ARCH)).items()}, path)
    return path


def export_repo(folder: Path, repo_id: str) -> str:
    """`llava-vit export` of the reference model, as a git repo with its weights under git-lfs; returns the commit."""
    export_model(folder, LlavaViTConfig(**architecture(ARCH)), weights_path(ARCH), repo_id=repo_id)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "lfs", "install", "--local")
    git(folder, "lfs", "track", "*.safetensors")
    return commit_all(folder, "Export the tiny reference model")


def new_repo(folder: Path, repo_id: str) -> str:
    """`llava-vit new`: the copier template with the reference weights, hooks installed, first commit made."""
    arch = architecture(ARCH)
    dims = ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "patch_size")
    answers = [arg for name in dims for arg in ("--answer", f"{name}={arch[name]}")]
    command = [sys.executable, "-m", "llava_vit", "new", str(folder), "--repo-id", repo_id, "--preset", "custom"]
    command += ["--image-size", str(arch["image_size"]), "--weights", str(weights_path(ARCH)), *answers]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return git(folder, "rev-parse", "HEAD")


def commit_all(folder: Path, message: str, *, hooks: bool = True) -> str:
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message, *([] if hooks else ["--no-verify"]))
    return git(folder, "rev-parse", "HEAD")


LOADER = """
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModel

source, revision, case = sys.argv[1], sys.argv[2] or None, sys.argv[3]
model = AutoModel.from_pretrained(source, trust_remote_code=True, revision=revision).eval()
processor = AutoImageProcessor.from_pretrained(source, revision=revision)
inputs = {k.removeprefix("input."): v for k, v in load_file(case).items() if k.startswith("input.")}
with torch.no_grad():
    out = model(**inputs)
print(json.dumps({
    "module": type(model).__module__,
    "processor_crop": processor.crop_size["height"],
    "last_hidden_state": out.last_hidden_state.flatten().tolist(),
}))
"""


def load_outputs(python: Path, source: str, *, revision: str | None = None, env: dict[str, str] | None = None) -> dict:
    """Load `source` (a folder or a repo id) with AutoModel and AutoImageProcessor in `python`, as the model card
    says, and run the reference image case."""
    case = REFERENCE / ARCH / "image.safetensors"
    run_env = {**os.environ, **(env or {})}
    run_env.pop("HF_HUB_OFFLINE", None)
    run_env.pop("TRANSFORMERS_OFFLINE", None)
    result = subprocess.run(
        [str(python), "-I", "-c", LOADER, source, revision or "", str(case)],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=300,
    )
    assert result.returncode == 0, f"loading {source} failed:\n{result.stderr[-3000:]}"
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    payload["last_hidden_state"] = torch.tensor(payload["last_hidden_state"])
    return payload
