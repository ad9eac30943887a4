"""`llava-vit upload`: put a model repo folder on the Hub over its HTTP API, as `hf upload` does, without git.

The folder is an export, a `save_pretrained` folder or a model repo checkout; `--preset` keeps the seed's one-shot
path (render the copier template into a temporary folder first, removed afterwards whatever happens). Either way
the full check runs first, and the Hub repo is created only once it passed: a failed check leaves nothing on the
Hub.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from ..cli import program_name
from ..errors import CheckFailed, UsageError, one_line
from ..model.presets import resolve_preset
from ..trust.reader import FolderSource, repo_names
from .access import endpoint, ensure_hub_repo, hub_errors, require_token, validate_repo_id
from .publish import loading_snippet


def require_guarded(folder: Path, names: list[str]) -> None:
    """The guard publish runs on its commits, on exactly the files to send (the Hub's HTTP API stores large and
    binary files in LFS itself, so only pickles, uninspectable archives and tokens stop an upload)."""
    from ..checks.guard import source_problems

    with FolderSource(folder, names) as source:
        entries = source.entries()
        problems = [
            f"{one_line(entry.path)}: a {entry.kind} file is never uploaded (a symlink would send what it points to); "
            "replace it with a regular file or remove it"
            for entry in entries
            if entry.kind != "file"
        ]
        problems += source_problems(source, entries, lfs_rules=False)
    for problem in problems:
        print(f"{program_name()} upload: guard: {problem}", file=sys.stderr)
    if problems:
        raise CheckFailed(f"the files to upload hold {len(problems)} problem(s), see above; nothing was uploaded")


def _pattern(name: str) -> str:
    """An fnmatch pattern that matches exactly `name`."""
    return "".join(f"[{char}]" if char in "*?[]" else char for char in name)


def render_preset(staging: Path, preset: str, weights: Path | None, repo_id: str) -> Path:
    """The copier template rendered without git into `staging`, as `llava-vit new --no-git` would."""
    from ..scaffold.new import render_repo

    answers = {"repo_id": repo_id, "preset": preset, "hub_endpoint": endpoint()}
    if weights is not None:
        answers["weights"] = str(weights.expanduser().resolve())
    return render_repo(staging / repo_id.split("/")[1], answers, git=False)


def upload_folder(
    folder: Path,
    repo_id: str,
    *,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_description: str | None = None,
    delete_patterns: list[str] | None = None,
) -> str:
    """Check `folder`, then create the Hub repo if needed and upload it; return the commit (the PR's with create_pr).
    `delete_patterns`: files of the Hub repo to delete in the same commit unless the folder has them (e.g. `*.py`,
    an upstream repo's old code files)."""
    from huggingface_hub import HfApi

    token = token or require_token()
    from ..checks.check import require_full_check

    names = repo_names(folder)
    require_guarded(folder, names)
    require_full_check(folder, "upload", "nothing was uploaded: fix them and upload again")
    ensure_hub_repo(repo_id, token, private)
    api = HfApi(endpoint=endpoint(), token=token)
    with hub_errors(repo_id):
        if revision is not None and not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload LlavaViT with llava-vit from {folder.name}",
            revision=revision,
            create_pr=create_pr,
            allow_patterns=[_pattern(name) for name in names],
            commit_description=commit_description,
            delete_patterns=delete_patterns,
        )
    where = f"{endpoint()}/{repo_id}" + (f" ({revision})" if revision else "")
    if create_pr:
        print(f"opened {info.pr_url} on {where} at {info.oid}")
    else:
        print(f"uploaded {folder} to {where} at {info.oid}")
    print("load it with:")
    print(loading_snippet(repo_id, info.oid))
    return info.oid


def upload(args: argparse.Namespace) -> str:
    repo_id = validate_repo_id(args.repo_id)
    if (args.folder is None) == (args.preset is None):
        raise UsageError("give either FOLDER (an export or model repo folder) or --preset NAME, not both")
    if args.weights is not None and args.preset is None:
        raise UsageError("--weights goes with --preset; a FOLDER already holds its weights")
    if args.weights is not None and not args.weights.expanduser().exists():
        raise UsageError(
            f"--weights {args.weights} does not exist; pass a .pth/.safetensors checkpoint or leave it out"
        )
    if args.create_pr and args.revision not in (None, "main"):
        raise UsageError("--create-pr opens a pull request against main; leave out --revision")
    if args.folder is not None and not args.folder.is_dir():
        raise UsageError(f"{args.folder} is not a folder; pass an export or model repo folder")
    options = {"revision": args.revision, "create_pr": args.create_pr, "commit_message": args.commit_message}
    if args.delete_old_code:  # an upstream repo's code files (any *.py the folder does not hold): audit fails them
        options["delete_patterns"] = ["*.py"]
    if args.folder is not None:
        return upload_folder(args.folder.resolve(), repo_id, private=args.private, **options)
    try:
        preset = resolve_preset(args.preset)
    except ValueError as error:
        raise UsageError(str(error)) from None
    token = require_token()  # before rendering: minutes of export are wasted without one
    staging = Path(tempfile.mkdtemp(prefix="llava-vit-upload-"))
    try:
        folder = render_preset(staging, preset, args.weights, repo_id)
        return upload_folder(folder, repo_id, private=args.private, token=token, **options)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    upload(args)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload",
        help="check a model folder, then upload it to the Hub (no git); or render one from a preset first",
        description="Run the full check on FOLDER (an export, a save_pretrained folder or a model repo), then create "
        "the Hub repo if needed and upload the folder with the Hub's HTTP API, like `hf upload`. With --preset "
        "instead of FOLDER, render the model repo template into a temporary folder first. Exit status: 0 uploaded, "
        "1 the check or the Hub failed (nothing was uploaded), 2 bad arguments.",
    )
    parser.add_argument("folder", nargs="?", type=Path, metavar="FOLDER", help="model folder to upload")
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="Hub repo id")
    parser.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created from main if missing)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--commit-message", metavar="TEXT", help="summary of the Hub commit")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private (when it is new)")
    parser.add_argument(
        "--delete-old-code",
        action="store_true",
        help="in the same commit, delete the Hub repo's Python files that FOLDER does not hold (e.g. a "
        "OneVision-Encoder repo's configuration/modeling_onevision_encoder.py), so that audit can pass it",
    )
    parser.add_argument("--preset", metavar="NAME", help="render this preset instead of uploading FOLDER")
    parser.add_argument("--weights", type=Path, metavar="PATH", help="with --preset: checkpoint to import")
    parser.set_defaults(handler=_run)
