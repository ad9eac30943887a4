"""`llava-vit init-repo`: the copier template's post-copy steps, as one tested Python entry point.

`copier copy` renders the card, hooks and attributes, then runs this once in the new folder: export the
model (code, config, processor, weights) into it, and with `--git` make it a git repo with git-lfs and the
hooks installed, and a first commit that passed them. `copier update` never runs it (it would re-export
over the user's weights).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import __version__
from ..errors import LlavaViTError, UsageError


def _run(folder: Path, *command: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()
        raise LlavaViTError(f"`{' '.join(command[:3])} ...` failed in {folder}: {' | '.join(output[-5:])}")


def export_into(folder: Path, args: argparse.Namespace) -> None:
    """Export the model into `folder` (built in a staging folder inside it, then moved in file by file)."""
    from ..export import build_config, export_model

    if args.config_json is not None:
        try:
            fields = json.loads(args.config_json)
        except ValueError as error:
            raise UsageError(f"--config-json is not JSON: {error}") from None
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=folder, delete=False) as handle:
            json.dump(fields, handle)
        config_path = Path(handle.name)
        try:
            config = build_config(config_path=config_path, image_size=args.image_size)
        finally:
            config_path.unlink()
    else:
        config = build_config(preset=args.preset, image_size=args.image_size)
    weights = Path(args.weights).expanduser().resolve() if args.weights else None
    staging = Path(tempfile.mkdtemp(prefix=".llava-vit-export-", dir=folder))
    try:
        out = export_model(
            staging / "out", config, weights, args.dtype, args.repo_id, image_processing=args.image_processing
        )
        for path in sorted(out.iterdir()):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def init_git(folder: Path, repo_id: str | None, hub_endpoint: str, message: str | None = None) -> None:
    """git init on main, the Hub remote (none without a repo id), git-lfs (first: pre-commit then chains to its
    pre-push hook), the hooks, and the first commit, which the hooks check."""
    if shutil.which("git-lfs") is None:
        raise LlavaViTError("git-lfs is required: install it from https://git-lfs.com (apt-get install git-lfs)")
    _run(folder, "git", "init", "-q", "-b", "main")
    # The hooks run llava-vit with this interpreter first: it works from any venv, even an inactive one or the
    # venv of the `hf llava-vit` extension, where no `llava-vit` is on PATH (hooks/render.py's launcher).
    _run(folder, "git", "config", "llava-vit.python", sys.executable)
    if repo_id is not None:
        _run(folder, "git", "remote", "add", "origin", f"{hub_endpoint.rstrip('/')}/{repo_id}")
    # git-lfs before pre-commit: pre-commit keeps git-lfs's pre-push hook as pre-push.legacy and chains to it.
    # The other order (or `pre-commit install -f`) silently pushes LFS pointers without their objects.
    _run(folder, "git", "lfs", "install", "--local")
    _run(folder, sys.executable, "-m", "pre_commit", "install", "--hook-type", "pre-commit", "--hook-type", "pre-push")
    _run(folder, "git", "add", "-A")
    # The hooks run `llava-vit`: make the one beside this interpreter findable even if its venv is not active.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    message = message or f"Model repo for {repo_id} from the llava-vit template (llava-vit {__version__})"
    _run(folder, "git", "commit", "-q", "-m", message, env=env)


def run(args: argparse.Namespace) -> int:
    folder = Path.cwd()
    export_into(folder, args)
    if args.git == "yes":
        init_git(folder, args.repo_id, args.hub_endpoint)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init-repo",
        help="the copier template's post-copy steps (run by `copier copy`)",
        description="Run in a freshly rendered template folder: export the model into it and, with --git, "
        "initialise git, git-lfs and the hooks and make the first commit.",
    )
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", metavar="NAME")
    source.add_argument("--config-json", metavar="JSON", help="config fields of a custom architecture")
    parser.add_argument("--image-size", type=int, required=True, metavar="N")
    parser.add_argument("--dtype", default="float32")
    # Repos rendered by templates from before the question keep export's default (crop).
    parser.add_argument("--image-processing", choices=("crop", "squash"), default=None)
    parser.add_argument("--weights", default="", metavar="PATH")
    parser.add_argument("--hub-endpoint", default="https://huggingface.co", metavar="URL")
    parser.add_argument(
        "--git", choices=("yes", "no"), default="no", help="initialise git, git-lfs, the hooks and commit"
    )
    parser.set_defaults(handler=run)
