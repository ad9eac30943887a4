"""`llava-vit guard`: block what the Hub rejects or what must never be published.

Run on the files of a commit (pre-commit passes them): big or binary files outside git-lfs (the Hub
refuses them), pickle checkpoints (safetensors only: pickles run code on load), and Hugging Face
tokens. One line per problem, with the file (and line) and the fix.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..cli import program_name
from ..errors import UsageError
from ..git_lfs import git, lfs_tracked
from ..repo_contract import MAX_PLAIN_BYTES, looks_like_pickle

TOKEN_RE = re.compile(rb"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}")
_BINARY_SNIFF_BYTES = 8000


def _is_binary(head: bytes) -> bool:
    """git's own heuristic: a NUL byte near the start means binary."""
    return b"\0" in head[:_BINARY_SNIFF_BYTES]


def _token_lines(path: Path) -> list[int]:
    with path.open("rb") as handle:
        return [number for number, line in enumerate(handle, start=1) if TOKEN_RE.search(line)]


def file_problems(repo: Path, names: list[str]) -> list[str]:
    """Every problem in the given files (paths relative to `repo`), one fix-it line each."""
    tracked = lfs_tracked(repo, names)
    problems = []
    for name in names:
        path = repo / name
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            head = handle.read(_BINARY_SNIFF_BYTES)
        if looks_like_pickle(head):
            problems.append(
                f"{name}: pickle checkpoints are not published (loading one runs arbitrary code); convert it "
                f"with `llava-vit export --weights {name} ...` to safetensors and `git rm --cached {name}`"
            )
            continue
        in_lfs = name in tracked
        size = path.stat().st_size
        binary = _is_binary(head)
        if not in_lfs and size > MAX_PLAIN_BYTES:
            problems.append(
                f"{name}: {size / 2**20:.1f} MB outside git-lfs; the Hub rejects files over 10 MB without LFS: "
                f"run `git lfs track '{name}'`, `git rm --cached {name}`, then `git add .gitattributes {name}`"
            )
        elif not in_lfs and binary:
            problems.append(
                f"{name}: binary file outside git-lfs; the Hub rejects it: run `git lfs track '*{path.suffix}'` "
                f"(or the file name), `git rm --cached {name}`, then `git add .gitattributes {name}`"
            )
        if not binary and size <= MAX_PLAIN_BYTES:
            for number in _token_lines(path):
                problems.append(
                    f"{name}:{number}: looks like a Hugging Face token (hf_...); remove it, revoke it at "
                    "https://huggingface.co/settings/tokens, and use HF_TOKEN or `hf auth login` instead"
                )
    return problems


def run(args: argparse.Namespace) -> int:
    repo = Path.cwd()
    if not (repo / ".git").exists():
        raise UsageError(
            f"{repo} is not the root of a git repository; run `llava-vit guard` there (it reads .gitattributes "
            "to know what git-lfs stores)"
        )
    names = args.files or [name for name in git(repo, "ls-files", "-z").split("\0") if name]
    for name in names:
        if Path(name).is_absolute():
            raise UsageError(f"{name}: pass paths relative to the repository root (as pre-commit does)")
    problems = file_problems(repo, names)
    for problem in problems:
        print(f"{program_name()} guard: {problem}", file=sys.stderr)
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "guard",
        help="block big/binary files outside git-lfs, pickle checkpoints and Hugging Face tokens",
        description="Check files (default: every file git tracks) before they are committed or published.",
    )
    parser.add_argument("files", nargs="*", help="paths relative to the repository root (pre-commit passes them)")
    parser.set_defaults(handler=run)
