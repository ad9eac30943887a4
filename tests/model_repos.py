"""Small model repos for publishing tests: real git + git-lfs, the reference fixture weights, and a loader
script run by a clean interpreter (no llava_vit) the way a model's user would load it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import torch
from reference import REFERENCE, architecture, weights_path
from safetensors.torch import load_file

from llava_vit import LlavaViTConfig, LlavaViTModel
from llava_vit.provenance import write_code_files

ARCH = "tiny_ln_p14"
AUTO_MAP = {"AutoConfig": "configuration_llava_vit.LlavaViTConfig", "AutoModel": "modeling_llava_vit.LlavaViTModel"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def write_model_files(folder: Path, scale: float = 1.0) -> None:
    """A loadable model folder from the reference weights (scaled, so that two versions give different outputs)."""
    model = LlavaViTModel(LlavaViTConfig(**architecture(ARCH)))
    model.load_state_dict({name: value * scale for name, value in load_file(weights_path(ARCH)).items()})
    model.save_pretrained(folder)
    write_code_files(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = AUTO_MAP
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def make_model_repo(folder: Path) -> str:
    """A committed model repo with its weights under git-lfs; returns the commit."""
    folder.mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "lfs", "install", "--local")
    git(folder, "lfs", "track", "*.safetensors")
    write_model_files(folder)
    return commit_all(folder, "Add tiny LlavaViT model")


def commit_all(folder: Path, message: str) -> str:
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)
    return git(folder, "rev-parse", "HEAD")


LOADER = """
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModel

source, revision, case = sys.argv[1], sys.argv[2] or None, sys.argv[3]
model = AutoModel.from_pretrained(source, trust_remote_code=True, revision=revision).eval()
inputs = {k.removeprefix("input."): v for k, v in load_file(case).items() if k.startswith("input.")}
with torch.no_grad():
    out = model(**inputs)
print(json.dumps({"module": type(model).__module__, "last_hidden_state": out.last_hidden_state.flatten().tolist()}))
"""


def load_outputs(python: Path, source: str, *, revision: str | None = None, env: dict[str, str] | None = None) -> dict:
    """Load `source` (a folder or a repo id) with AutoModel in `python` and run the reference image case."""
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
