"""Render the model-repo copier template from Python: `llava-vit new`, and a plain folder for uploads.

The template (copier.yml + template/) is the one description of a model repo. It sits at the root of
a git checkout and inside the wheel (llava_vit/_template), so the installed package renders the
same files that `copier copy` does.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..cli import program_name
from ..errors import LlavaViTError, UsageError
from ..model.presets import PRESETS

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # llava_vit/


def template_path() -> Path:
    """The folder holding copier.yml: llava_vit/_template in a wheel, the project root in a checkout."""
    for candidate in (_PACKAGE_DIR / "_template", _PACKAGE_DIR.parent):
        if (candidate / "copier.yml").is_file() and (candidate / "template").is_dir():
            return candidate
    raise LlavaViTError(
        f"the llava-vit copier template is missing from {_PACKAGE_DIR}; reinstall llava-vit (pip install llava-vit)"
    )


def render_repo(dest: Path, answers: dict[str, Any], *, git: bool) -> Path:
    """Render the template into the new folder `dest` with `answers` (copier's question names).

    With git, the result is a repo with LFS and the hooks installed and one commit that passed them;
    without, a plain folder (for API uploads). Rendered in a sibling temp folder, then renamed, so a
    failure leaves nothing behind.
    """
    import copier
    from copier.errors import CopierError

    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists and is not empty; choose a new folder")
    source = template_path()
    # In a git checkout, render the checked-out files (copier would otherwise pick the latest tag).
    vcs_ref = "HEAD" if (source / ".git").exists() else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Dirty template changes included automatically")
            copier.run_copy(
                str(source),
                str(staging),
                data={**answers, "initialize_git": git},
                defaults=True,
                unsafe=True,
                quiet=True,
                vcs_ref=vcs_ref,
            )
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    except (CopierError, ValueError) as error:
        raise LlavaViTError(f"rendering the model repo template failed: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _answer(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def run(args: argparse.Namespace) -> int:
    answers: dict[str, Any] = {"repo_id": args.repo_id, "preset": args.preset}
    for key in ("image_size", "image_processing", "dtype", "license", "description", "hub_endpoint"):
        if getattr(args, key) is not None:
            answers[key] = getattr(args, key)
    if args.weights is not None:
        answers["weights"] = str(args.weights.expanduser().resolve())
    answers.update(dict(args.answer))
    dest = render_repo(args.dest, answers, git=not args.no_git)
    print(f"{program_name()} new: created {dest}" + ("" if args.no_git else " (git repo on main, hooks installed)"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "new",
        help="create a model repo from the llava-vit copier template (export + card + hooks + first commit)",
        description="Non-interactive `copier copy` of the llava-vit template; use copier itself to be asked.",
    )
    parser.add_argument("dest", type=Path, help="new folder to create")
    parser.add_argument("--repo-id", required=True, help="Hub repo id, ORG/NAME")
    parser.add_argument("--preset", default="large", choices=[*PRESETS, "custom"], help="architecture")
    parser.add_argument("--image-size", type=int, help="input resolution (default: the preset's, else 448)")
    parser.add_argument(
        "--image-processing",
        choices=("crop", "squash"),
        help="crop: shortest edge to image_size, then a centre crop (default, the OneVision-Encoder recipe); "
        "squash: resize to image_size x image_size without a crop",
    )
    parser.add_argument("--weights", type=Path, help="checkpoint to import (default: random weights)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="weights dtype (default float32)")
    parser.add_argument("--license", help="Hub license id (default apache-2.0)")
    parser.add_argument("--description", help="model card description")
    parser.add_argument("--hub-endpoint", help="Hub URL for the git remote (default https://huggingface.co)")
    parser.add_argument(
        "--answer",
        type=_answer,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other template answer, e.g. hidden_size=768 with --preset custom",
    )
    parser.add_argument("--no-git", action="store_true", help="a plain folder: no git, LFS, hooks or commit")
    parser.set_defaults(handler=run)
