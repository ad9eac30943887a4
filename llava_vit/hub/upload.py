"""`llava-vit upload`: the seed's one-shot path, for those who don't want a git repo.

It renders the same copier template as `llava-vit new` (without git) into a fresh temporary folder, runs the
full check on it, and uploads it with `HfApi().upload_folder`. The folder is removed afterwards, whatever
happens.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

from ..errors import UsageError
from ..model.presets import resolve_preset
from ..scaffold.new import render_repo
from .access import endpoint, ensure_hub_repo, hub_errors, require_token, validate_repo_id
from .publish import full_check, loading_snippet

# What the check's import probe may leave behind (the template's .gitignore keeps it out of git repos).
UPLOAD_IGNORED = ["__pycache__/*", "*.py[cod]"]


def upload(preset: str, weights: Path | None, repo_id: str, private: bool = False) -> str:
    """Render, check and upload a model repo in one go; return the Hub commit it made."""
    validate_repo_id(repo_id)
    try:
        preset = resolve_preset(preset)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if weights is not None and not weights.expanduser().exists():
        raise UsageError(f"--weights {weights} does not exist; pass a .pth/.safetensors checkpoint or leave it out")
    token = require_token()
    ensure_hub_repo(repo_id, token, private)
    staging = Path(tempfile.mkdtemp(prefix="llava-vit-upload-"))
    try:
        answers = {"repo_id": repo_id, "preset": preset, "hub_endpoint": endpoint()}
        if weights is not None:
            answers["weights"] = str(weights.expanduser().resolve())
        folder = render_repo(staging / repo_id.split("/")[1], answers, git=False)
        full_check(folder)
        with hub_errors(repo_id):
            info = HfApi(endpoint=endpoint(), token=token).upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=f"Upload {preset} LlavaViT with llava-vit",
                ignore_patterns=UPLOAD_IGNORED,
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    commit = info.oid
    print(f"uploaded {endpoint()}/{repo_id} at {commit}")
    print("load it with:")
    print(loading_snippet(repo_id, commit))
    return commit


def _run(args: argparse.Namespace) -> int:
    upload(args.preset, args.weights, args.repo_id, args.private)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload", help="one shot, no git: render the model repo from a preset and weights and upload it to the Hub"
    )
    parser.add_argument("--preset", required=True, help="architecture preset (or a seed alias)")
    parser.add_argument("--weights", type=Path, help="checkpoint to import (default: random weights)")
    parser.add_argument("--repo-id", required=True, help="Hub repo id, ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private (when it is new)")
    parser.set_defaults(handler=_run)
