"""`llava-vit guard`: block what the Hub rejects or what must never be published.

Three ways to say what is checked: the files of a commit (pre-commit passes them; default: every file git
tracks), `--range FROM..TO` (every blob written by every commit in the range, and every commit message), or
`--pushed` (the range pre-commit's pre-push hook is about to push, from PRE_COMMIT_FROM_REF/PRE_COMMIT_TO_REF;
so `git commit --no-verify` cannot smuggle anything past the push). `llava-vit publish` guards its push the
same way. Problems: big or binary files outside git-lfs (the Hub refuses them), pickles (recognised by content,
whatever their name: they run code on load) and Hugging Face tokens in any text encoding (UTF-8, UTF-16/32
with or without BOM), in LFS-stored files (their real content, not the pointer), in safetensors header
metadata and in commit messages. One line per problem, with the file (and line) and the fix.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import struct
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..cli import program_name
from ..errors import LlavaViTError, UsageError, one_line
from ..git_lfs import git, lfs_tracked
from ..repo_contract import (
    LFS_POINTER_MAX_BYTES,
    MAX_PLAIN_BYTES,
    SNIFF_BYTES,
    ZIP_MAGIC,
    looks_like_pickle,
    parse_lfs_pointer,
)

TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}")
_TOKEN_BYTES_RE = re.compile(rb"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}")
_BINARY_SNIFF_BYTES = 8000
_CHUNK = 1 << 20  # a multiple of 4, so UTF-16/32 text keeps its alignment from chunk to chunk
_OVERLAP = 256  # a multiple of 4, longer than any token in any encoding
_WIDE_ENCODINGS = (("utf-16-le", 2), ("utf-16-be", 2), ("utf-32-le", 4), ("utf-32-be", 4))
_WIDE_PREFIX_RE = re.compile(b"|".join(re.escape("hf_".encode(encoding)) for encoding, _ in _WIDE_ENCODINGS))
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_ZERO = "0" * 40
TOKEN_FIX = "remove it, revoke it at https://huggingface.co/settings/tokens, and use HF_TOKEN or `hf auth login`"


def _is_binary(head: bytes) -> bool:
    """git's own heuristic: a NUL byte near the start means binary."""
    return b"\0" in head[:_BINARY_SNIFF_BYTES]


def _wide_encoding(chunk: bytes) -> str | None:
    """The wide encoding (UTF-16/32, either byte order) in which the chunk holds a token, if any: every alignment
    is tried, aligned readings first, so that one token is reported once, under the encoding it was written in.
    Chunks without "hf_" spelled in a wide encoding are not decoded at all (weights and media stay cheap)."""
    if not _WIDE_PREFIX_RE.search(chunk):
        return None
    for offset in range(4):
        for encoding, width in _WIDE_ENCODINGS:
            if offset < width and TOKEN_RE.search(chunk[offset:].decode(encoding, errors="ignore")):
                return encoding.upper()
    return None


@dataclass
class TokenScan:
    """Where a stream of bytes holds a token: lines of UTF-8/ASCII/Latin-1 text, and the wide encodings."""

    lines: list[int]
    encodings: set[str]

    @classmethod
    def of(cls, chunks: Iterator[bytes]) -> TokenScan:
        lines: set[int] = set()
        encodings: set[str] = set()
        carry, newlines_before = b"", 0  # `carry`: the end of the previous chunk, scanned again with the next
        for chunk in chunks:
            data = carry + chunk
            for match in _TOKEN_BYTES_RE.finditer(data):
                if match.end() > len(carry):  # not already found in the previous chunk
                    lines.add(newlines_before + data.count(b"\n", 0, match.start()) + 1)
            found = _wide_encoding(data) if not encodings else None
            if found:
                encodings.add(found)
            carry = data[-_OVERLAP:]
            newlines_before += data.count(b"\n", 0, len(data) - len(carry))
        return cls(sorted(lines), encodings)

    @property
    def found(self) -> bool:
        return bool(self.lines or self.encodings)


def token_problems(name: str, scan: TokenScan) -> list[str]:
    problems = [f"{name}:{line}: looks like a Hugging Face token (hf_...); {TOKEN_FIX}" for line in scan.lines]
    problems += [
        f"{name}: holds a Hugging Face token (hf_...) in {encoding} text; {TOKEN_FIX}"
        for encoding in sorted(scan.encodings)
    ]
    return problems


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def _safetensors_strings(head: bytes, handle: BinaryIO) -> bytes | None:
    """A safetensors file's header (tensor names, dtypes and `__metadata__`) as decoded JSON text, so escaped
    characters cannot hide a token; None when the file is not safetensors."""
    if len(head) < 8:
        return None
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= _MAX_SAFETENSORS_HEADER or head[8:9] != b"{":
        return None
    raw = head[8 : 8 + length]
    if len(raw) < length:
        raw += handle.read(length - len(raw))
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return json.dumps(header, ensure_ascii=False).encode("utf-8")


@dataclass
class Content(ABC):
    """One thing to guard: its name, its size, whether git-lfs stores it, and a way to read it."""

    name: str
    size: int
    in_lfs: bool

    @abstractmethod
    def open(self) -> BinaryIO:
        """A binary stream of the real content (an LFS file's object, not its pointer)."""


def content_problems(item: Content) -> list[str]:
    """Pickle, size/binary outside LFS, tokens: one fix-it line each."""
    name = item.name
    with item.open() as handle:
        head = handle.read(SNIFF_BYTES)
        header = _safetensors_strings(head, handle) if head[8:9] == b"{" else None
        tail = [head]

        def stream() -> Iterator[bytes]:
            yield head
            for chunk in _chunks(handle):
                tail[0] = (tail[0] + chunk)[-SNIFF_BYTES:]
                yield chunk

        scan = TokenScan.of(stream())  # every byte, tensor data included: any file can carry a secret
    # A safetensors header is also read decoded, so that a JSON escape cannot hide a token in its metadata.
    in_header = TokenScan.of(iter([header])) if header is not None else None
    tokens = (
        token_problems(f"{name} (safetensors header)", in_header)
        if in_header is not None and in_header.found
        else token_problems(name, scan)
    )
    if header is None and looks_like_pickle(head, tail[0] if head.startswith(ZIP_MAGIC) else b""):
        return [
            f"{name}: pickle (recognised by content) is not published (loading one runs arbitrary code); convert "
            f"it with `llava-vit export --weights {name} ...` to safetensors and `git rm --cached -- {name}`"
        ]
    problems = []
    if not item.in_lfs and item.size > MAX_PLAIN_BYTES:
        problems.append(
            f"{name}: {item.size / 2**20:.1f} MB outside git-lfs; the Hub rejects files over 10 MB without LFS: "
            f"run `git lfs track '{name}'`, `git rm --cached -- {name}`, then `git add .gitattributes {name}`"
        )
    elif not item.in_lfs and _is_binary(head):
        problems.append(
            f"{name}: binary file outside git-lfs; the Hub rejects it: run `git lfs track '*{Path(name).suffix}'` "
            f"(or the file name), `git rm --cached -- {name}`, then `git add .gitattributes {name}`"
        )
    return problems + tokens


# --- the working tree (pre-commit) ---------------------------------------------------------------------
@dataclass
class WorkingFile(Content):
    path: Path = Path()

    def open(self) -> BinaryIO:
        descriptor = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        return os.fdopen(descriptor, "rb")


def name_problems(names: list[str]) -> list[str]:
    """A token spelled in a file's name travels with every clone too."""
    return [
        f"{one_line(name).replace(match, 'hf_...')}: its file name holds a Hugging Face token; rename the file, "
        f"{TOKEN_FIX.split(', ', 1)[1]}"
        for name in names
        for match in TOKEN_RE.findall(name)[:1]
    ]


def file_problems(repo: Path, names: list[str]) -> list[str]:
    """Every problem in the given files (paths relative to `repo`), one fix-it line each. Symlinks, FIFOs and
    devices are not followed or read (git stores a symlink as the path it names)."""
    tracked = lfs_tracked(repo, names)
    problems = name_problems(names)
    for name in names:
        path = repo / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        problems += content_problems(WorkingFile(name, info.st_size, name in tracked, path))
    return problems


# --- commits (pre-push, publish) -------------------------------------------------------------------------
def _git_bytes(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    result = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True)
    if result.returncode:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LlavaViTError(f"`git {' '.join(args)}` failed in {repo}: {message[-1] if message else 'no output'}")
    return result.stdout


@dataclass
class Blob(Content):
    repo: Path = Path()
    oid: str = ""
    lfs_object: Path | None = None

    def open(self) -> BinaryIO:
        if self.lfs_object is not None:
            return self.lfs_object.open("rb")
        process = subprocess.Popen(["git", "cat-file", "blob", self.oid], cwd=self.repo, stdout=subprocess.PIPE)
        assert process.stdout is not None
        return _ProcessReader(process)


class _ProcessReader:
    """A `git cat-file` stream that is closed (and its process reaped) however reading ends."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def read(self, size: int = -1) -> bytes:
        assert self.process.stdout is not None
        return self.process.stdout.read(size)

    def __enter__(self) -> _ProcessReader:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.process.kill()
        self.process.wait()


def _commit(repo: Path, ref: str) -> str:
    """The commit `ref` names; a ref that looks like an option is refused by git itself (--end-of-options)."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}").strip()
    except LlavaViTError:
        raise UsageError(f"{ref!r} is not a commit in {repo}; pass --range FROM..TO with two commits") from None


def pushed_revisions(repo: Path) -> list[str]:
    """What pre-commit's pre-push hook is pushing: FROM..TO when it says so; else (a new branch whose history
    reaches the root commit) every commit of the pushed branch that the remote does not have."""
    from_ref, to_ref = os.environ.get("PRE_COMMIT_FROM_REF"), os.environ.get("PRE_COMMIT_TO_REF")
    if from_ref and to_ref and from_ref != _ZERO:
        return [_commit(repo, to_ref), "--not", _commit(repo, from_ref)]
    tip = _commit(repo, to_ref or os.environ.get("PRE_COMMIT_LOCAL_BRANCH") or "HEAD")
    remote = os.environ.get("PRE_COMMIT_REMOTE_NAME")
    return [tip, "--not", f"--remotes={remote}" if remote else "--remotes"]


def range_revisions(repo: Path, text: str) -> list[str]:
    """`git rev-list` arguments for FROM..TO (FROM empty or all zeros: everything reachable from TO)."""
    start, dots, end = text.partition("..")
    if not dots or not end or end.startswith("."):
        raise UsageError(f"--range {text!r}: expected FROM..TO (two commits), e.g. origin/main..HEAD")
    tip = _commit(repo, end)
    return [tip] if not start or start == _ZERO else [tip, "--not", _commit(repo, start)]


def range_problems(repo: Path, revisions: list[str]) -> list[str]:
    """Every problem in the blobs written by the commits `revisions` selects, and in their messages."""
    commits = [c for c in git(repo, "rev-list", *revisions, "--").split() if c]
    if not commits:
        return []
    problems = []
    for commit in commits:
        headers, _, message = _git_bytes(repo, "cat-file", "commit", commit).partition(b"\n\n")
        problems += token_problems(f"commit {commit[:12]} author/committer", TokenScan.of(iter([headers])))
        problems += token_problems(f"commit {commit[:12]} message", TokenScan.of(iter([message])))
    raw = _git_bytes(
        repo, "diff-tree", "-r", "-z", "--no-renames", "--root", "-m", "--no-commit-id", "--stdin",
        data="\n".join(commits).encode() + b"\n",
    )  # fmt: skip
    fields = raw.split(b"\0")
    blobs: dict[str, str] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        parts = meta.decode("ascii", "replace").lstrip(":").split()
        if len(parts) == 5 and parts[1] in ("100644", "100755", "120000") and parts[4] != "D":
            blobs.setdefault(parts[3], path.decode("utf-8", "surrogateescape"))  # a symlink's blob: its target
    media = _lfs_media(repo)
    checks = "".join(f"{oid}\n" for oid in blobs).encode()
    sizes = {}
    for line in _git_bytes(repo, "cat-file", "--batch-check", data=checks).decode().splitlines():
        oid, _, size = line.split()
        sizes[oid] = int(size)
    problems += name_problems(sorted(set(blobs.values())))
    for oid, name in sorted(blobs.items(), key=lambda item: item[1]):
        item = Blob(name, sizes[oid], False, repo, oid)
        if sizes[oid] <= LFS_POINTER_MAX_BYTES:
            pointer = parse_lfs_pointer(_git_bytes(repo, "cat-file", "blob", oid))
            if pointer is not None:
                lfs_oid, lfs_size = pointer
                path = media / lfs_oid[:2] / lfs_oid[2:4] / lfs_oid
                if not path.is_file():
                    problems.append(
                        f"{name}: its git-lfs object {lfs_oid[:12]} is not in this clone, so its content cannot be "
                        "checked; run `git lfs fetch --all`"
                    )
                    continue
                item = Blob(name, lfs_size, True, repo, oid, path)
        problems += content_problems(item)
    return problems


def _lfs_media(repo: Path) -> Path:
    common = Path(git(repo, "rev-parse", "--git-common-dir").strip())
    return (common if common.is_absolute() else repo / common) / "lfs" / "objects"


def run(args: argparse.Namespace) -> int:
    repo = Path.cwd()
    if not (repo / ".git").exists():
        raise UsageError(
            f"{repo} is not the root of a git repository; run `llava-vit guard` there (it reads .gitattributes "
            "to know what git-lfs stores)"
        )
    if args.range or args.pushed:
        if args.files:
            raise UsageError("pass files, or --range/--pushed, not both")
        revisions = range_revisions(repo, args.range) if args.range else pushed_revisions(repo)
        problems = range_problems(repo, revisions)
    else:
        names = args.files or [name for name in git(repo, "ls-files", "-z").split("\0") if name]
        for name in names:
            if Path(name).is_absolute():
                raise UsageError(f"{name}: pass paths relative to the repository root (as pre-commit does)")
        problems = file_problems(repo, names)
    for problem in problems:
        print(f"{program_name()} guard: {problem}", file=sys.stderr)
    if problems and (args.range or args.pushed):
        print(
            f"{program_name()} guard: these are in commits about to be pushed: fix them, rewrite those commits "
            "(`git commit --amend` or `git rebase -i`), then push",
            file=sys.stderr,
        )
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "guard",
        help="block big/binary files outside git-lfs, pickle checkpoints and Hugging Face tokens",
        description="Check files (default: every file git tracks), or every commit of a range, before they are "
        "committed or pushed. Put `--` before file names that start with '-'.",
    )
    parser.add_argument("files", nargs="*", help="paths relative to the repository root (pre-commit passes them)")
    parser.add_argument("--range", metavar="FROM..TO", help="guard every blob and message of these commits")
    parser.add_argument(
        "--pushed",
        action="store_true",
        help="guard the commits pre-commit's pre-push hook is pushing (PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF)",
    )
    parser.set_defaults(handler=run)
