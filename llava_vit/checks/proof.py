"""The full proof of one commit (the pre-push check, publish): judged on exactly what is pushed, once per content.

The commit's tree is read from git's object database (`trust.reader.CommitSource`) and materialized into a
scratch folder: blobs written out, git-lfs objects linked after they were re-hashed against their oids, nothing
else. The fast check, the definition of what can run and `llava-vit verify` then judge that folder, so an
uncommitted fix in the working tree cannot make a broken commit pass.

A proof depends on what it judged and nothing else: its key is the blob ids of every file except the card, the
installed llava-vit release and the torch/transformers/Python versions. A passing proof is recorded under
`.git/llava-vit/proofs/` (never through a symlink; only a pass is ever written), so a push whose model files
already passed costs a tree listing and the card's check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from .. import __version__
from ..errors import LlavaViTError, UsageError, one_line
from ..repo_contract import CARD_FILE, CODE_FILES, GITATTRIBUTES_FILE, MAX_PLAIN_BYTES, canonical_source
from ..repo_files import write_atomic
from ..trust.gitdb import GitDB
from ..trust.opener import UnsafeFile, read_regular
from ..trust.reader import CommitSource, Entry, lfs_attributes, valid_repo_path
from ..trust.runnable import judge_entries
from .verify import verify

PROOF_VERSION = "1"


def cache_dir(git_common_dir: Path, name: str) -> Path:
    """`.git/llava-vit/NAME` of a clone (the probe's and the proofs' caches), refused when any part of it is a
    symlink or not a folder: a cache read through a link could be anyone's verdict."""
    path = git_common_dir
    for part in ("llava-vit", name):
        path = path / part
        if path.is_symlink() or (path.exists() and not stat.S_ISDIR(path.lstat().st_mode)):
            raise UsageError(f"{path} is a symlink or not a folder; llava-vit keeps caches in real folders: remove it")
    if git_common_dir.is_symlink():
        raise UsageError(f"{git_common_dir} is a symlink; llava-vit keeps its caches in real folders: remove it")
    return path


def environment_key() -> str:
    """What any cached verdict on a repo also depends on: the installed llava-vit's code files (an editable install
    changes them without a new version) and the torch, transformers and Python versions that run them. The probe's
    cache and the proofs' records both use it."""
    parts = [f"llava-vit={__version__}", f"python={sys.version_info[0]}.{sys.version_info[1]}"]
    parts += [f"{name}={hashlib.sha256(canonical_source(name).encode()).hexdigest()}" for name in CODE_FILES]
    for package in ("torch", "transformers"):
        try:
            parts.append(f"{package}={importlib_metadata.version(package)}")
        except importlib_metadata.PackageNotFoundError:
            parts.append(f"{package}=missing")
    return "\0".join(parts)


def proof_key(entries: list[Entry]) -> str:
    """What the proof of a tree depends on: every entry's path, kind and content id, the card excepted."""
    digest = hashlib.sha256(f"proof={PROOF_VERSION}\0{environment_key()}".encode())
    for entry in sorted(entries, key=lambda item: item.path):
        if entry.path == CARD_FILE:
            continue
        digest.update(f"\0{entry.path}\0{entry.kind}\0{entry.lfs}\0{entry.ref}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def materialize(source: CommitSource, entries: list[Entry], folder: Path) -> list[str]:
    """Write the regular files of `entries` into `folder` (LFS files as their verified objects); return the
    problems of files that could not be (missing LFS objects, paths no repo may hold)."""
    problems = []
    for entry in entries:
        name = one_line(entry.path)
        if entry.kind != "file":
            continue  # symlinks and submodules: the definition of what can run refuses them
        if not valid_repo_path(entry.path):
            problems.append(f"{name}: a path no model repo may hold; rename it")
            continue
        target = folder / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.lfs and not source.db.lfs_object(entry.ref).is_file():
            problems += _missing_objects(source, [entry])
            continue
        try:
            with source.open(entry) as reader:
                if entry.lfs:
                    reader.close()
                    try:
                        os.link(source.db.lfs_object(entry.ref), target)
                        continue
                    except OSError:
                        pass
                    with source.open(entry) as again, open(target, "xb") as out:
                        shutil.copyfileobj(again, out, 1 << 20)
                else:
                    with open(target, "xb") as out:
                        shutil.copyfileobj(reader, out, 1 << 20)
        except (UnsafeFile, OSError) as error:
            problems.append(f"{name}: {one_line(error)}")
    return problems


def lfs_problems(source: CommitSource, entries: list[Entry]) -> list[str]:
    """Files that .gitattributes sends through LFS but the commit holds as plain blobs (the Hub would refuse them,
    or serve pointers)."""
    attributes = next((entry for entry in entries if entry.path == GITATTRIBUTES_FILE and entry.kind == "file"), None)
    if attributes is None:
        return []
    try:
        text = source.read(attributes, MAX_PLAIN_BYTES)
    except (UnsafeFile, OSError):
        return [f"{GITATTRIBUTES_FILE}: cannot be read; fix it"]
    plain = [entry.path for entry in entries if entry.kind == "file" and not entry.lfs]
    return [
        f"{one_line(name)}: matches an LFS pattern in .gitattributes but was committed without LFS; "
        f"run `git rm --cached -- {name} && git add -- {name}` and commit"
        for name in sorted(lfs_attributes(text, plain))
    ]


@dataclass(frozen=True)
class Checks:
    """The checks a proof runs on the materialized folder (the fast check's, handed in by `check`, which owns
    them): `fast(folder, probe_cache)` and `card(folder)`."""

    fast: Callable[[Path, Path], list[str]]
    card: Callable[[Path], list[str]]
    progress: Callable[[str], None]


def _missing_objects(source: CommitSource, entries: list[Entry]) -> list[str]:
    """LFS files whose object this clone no longer has (a push would publish pointers without their data)."""
    return [
        f"{one_line(entry.path)}: its git-lfs object is not in this clone; run `git lfs fetch && git lfs checkout`"
        for entry in entries
        if entry.lfs and not source.db.lfs_object(entry.ref).is_file()
    ]


def _card_problems(source: CommitSource, entries: list[Entry], folder: Path, checks: Checks) -> list[str]:
    card = next((entry for entry in entries if entry.path == CARD_FILE and entry.kind == "file"), None)
    if card is not None and not (folder / CARD_FILE).exists():
        try:
            (folder / CARD_FILE).write_bytes(source.read(card, MAX_PLAIN_BYTES))
        except (UnsafeFile, OSError) as error:
            return [f"{CARD_FILE}: {one_line(error)}"]
    return checks.card(folder)


def prove_commit(repo: Path, ref: str, checks: Checks, *, use_cache: bool = True) -> list[str]:
    """Every problem of the commit `ref` of the git repo `repo`, judged on that commit alone; [] is a pass."""

    with CommitSource(repo, ref) as source:
        entries = source.entries()
        record = cache_dir(source.db.common_dir, "proofs") / proof_key(entries)
        with tempfile.TemporaryDirectory(prefix="llava-vit-proof-") as scratch:
            folder = Path(scratch) / "repo"
            folder.mkdir()
            if use_cache and _passed(record):  # the model files passed: what can change is the card and the clone
                return _missing_objects(source, entries) + _card_problems(source, entries, folder, checks)
            problems = materialize(source, entries, folder) + lfs_problems(source, entries)
            problems += [str(problem) for problem in judge_entries(source, entries, installed_only=True).problems]
            if not problems:
                problems = checks.fast(folder, cache_dir(source.db.common_dir, "probe"))
            if problems:
                return problems
            checks.progress(f"verify: loading commit {source.commit[:12]} in a fresh interpreter ...")
            report = verify(str(folder), on_check=lambda check: checks.progress(f"verify:{check.line()}"))
            if not report.passed:
                hint = f"run `llava-vit verify {repo}` for the full report"
                failed = [check for check in report.checks if not check.passed]
                return [f"verify: {check.name}: {check.detail}; {hint}" for check in failed] or [
                    "verify: no checks ran"
                ]
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(record, json.dumps({"commit": source.commit, "passed": True}) + "\n")
    except (OSError, LlavaViTError):
        pass  # a read-only clone proves again next time
    return []


def _passed(record: Path) -> bool:
    try:
        return json.loads(read_regular(record, 4096)).get("passed") is True
    except (OSError, UnsafeFile, ValueError, AttributeError):
        return False


def pushed_tip(repo: Path) -> str:
    """The commit pre-commit's pre-push hook is pushing (PRE_COMMIT_TO_REF), else HEAD."""
    with GitDB(repo) as db:
        return db.commit(os.environ.get("PRE_COMMIT_TO_REF") or "HEAD")
