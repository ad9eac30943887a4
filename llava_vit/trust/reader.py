"""One reader of a repo, whatever it is: a folder, a git commit, a pushed range of commits, a Hub revision.

Each source lists its entries (every path, symlinks, submodules and special files included, none followed) and
opens an entry's real content one way: regular files only, capped while reading; git blobs from the object
database of the judged commit (`gitdb`); git-lfs objects re-hashed against their oid before they are judged;
Hub files streamed with a cap per file, under the overall time budget of the caller.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import stat
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import LlavaViTError, UsageError
from ..repo_contract import LFS_POINTER_MAX_BYTES, MAX_PLAIN_BYTES, never_sent, parse_lfs_pointer
from .gitdb import GitDB, find_git_dir, git_command, git_environment
from .opener import CappedReader, UnsafeFile, open_regular, read_regular
from .sniff import SNIFF_BYTES, Sniffed, sniff, sniff_ends

MAX_FILES = 10_000  # a model repo has a handful; more is refused rather than walked forever
_HEX40 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Entry:
    """One path of the judged tree: `kind` is file, symlink, submodule or special (FIFO, socket, device)."""

    path: str
    kind: str
    size: int
    lfs: bool = False
    ref: str = ""  # the git blob id (or the LFS object id when `lfs`)
    blob: str = ""  # the git blob id, also for an LFS file (its pointer's)


class Source(ABC):
    """The files of one judged tree, and the commit they are at (None: a folder, nothing pins it)."""

    commit: str | None = None
    notes: list[str]

    @abstractmethod
    def entries(self) -> list[Entry]:
        """Every path of the tree, none followed."""

    @abstractmethod
    def open(self, entry: Entry, limit: int | None = None) -> BinaryIO:
        """The real content (an LFS file's verified object), capped at `limit` bytes while reading."""

    def read(self, entry: Entry, limit: int) -> bytes:
        """The whole content, at most `limit` bytes (UnsafeFile beyond)."""
        if entry.size > limit:
            raise UnsafeFile(f"{entry.path} is {entry.size} bytes, more than the {limit} this file may have")
        with self.open(entry, limit) as handle:
            return handle.read()

    def sniff(self, entry: Entry, tokens: bool = False) -> Sniffed | None:
        """What the content holds (pickles, tokens), or None when it is not available here."""
        with self.open(entry) as handle:
            return sniff(handle, tokens)

    def lfs_covered(self, paths: list[str]) -> set[str]:
        """The paths .gitattributes sends through LFS, where the listing does not say it already."""
        return set()

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release what the source holds (scratch folders)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _too_many(where: object) -> LlavaViTError:
    return LlavaViTError(f"{where} holds more than {MAX_FILES} files; not a model repo")


def lfs_attributes(attributes: bytes, paths: list[str]) -> set[str]:
    """The `paths` that a .gitattributes text sends through git-lfs, decided by git itself in a scratch repo (the
    judged repo's own configuration is never read)."""
    if not paths or not attributes:
        return set()
    with tempfile.TemporaryDirectory(prefix="llava-vit-attr-") as scratch:
        env = git_environment({"GIT_DIR": str(Path(scratch) / ".git"), "GIT_WORK_TREE": scratch})
        subprocess.run(
            git_command("init", "-q", "--template=", "--", scratch), env=env, check=True, capture_output=True
        )
        (Path(scratch) / ".gitattributes").write_bytes(attributes)
        result = subprocess.run(
            git_command("check-attr", "-z", "--stdin", "filter"),
            cwd=scratch,
            env=env,
            input="\0".join(paths).encode("utf-8", "surrogateescape") + b"\0",
            capture_output=True,
            check=True,
        )
    fields = result.stdout.decode("utf-8", "surrogateescape").split("\0")
    return {fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] == "lfs"}


def repo_names(folder: Path) -> list[str]:
    """What a commit or an upload of one's own `folder` would hold: what `git add -A` would take (its .gitignore
    files honoured, read by git without running anything the folder configures), less what is never sent. (Audit,
    which judges a folder someone handed you, walks every file instead.)"""
    git_dir = find_git_dir(folder)
    with tempfile.TemporaryDirectory(prefix="llava-vit-names-") as scratch:
        base = ["--work-tree", str(folder.resolve()), "ls-files", "-z", "--others", "--exclude-standard"]
        if git_dir is not None:
            with GitDB(folder) as db:
                out = db.refs_git(*base, "--cached")
        else:
            env = {**git_environment({}), "GIT_DIR": scratch}
            (Path(scratch) / "refs").mkdir()
            (Path(scratch) / "objects").mkdir()
            (Path(scratch) / "HEAD").write_text("ref: refs/heads/main\n")
            (Path(scratch) / "config").write_text("[core]\n\trepositoryformatversion = 0\n")
            result = subprocess.run(git_command(*base), cwd=scratch, env=env, capture_output=True, check=False)
            if result.returncode:
                raise LlavaViTError(f"cannot list {folder}: {result.stderr.decode('utf-8', 'replace').strip()}")
            out = result.stdout
    names = {name for name in out.decode("utf-8", "surrogateescape").split("\0") if name}
    return sorted(name for name in names if not never_sent(name) and os.path.lexists(folder / name))


class FolderSource(Source):
    """A folder as it is on disk (no git): walked without following symlinks; `.git` itself is never read.
    `names` limits it to those paths (what pre-commit passes)."""

    def __init__(self, root: Path, names: list[str] | None = None) -> None:
        self.root, self.names = root, names
        self.notes = ["a plain folder (not a git repo): nothing pins it; judge a commit for a verdict to rely on"]

    def _entry(self, rel: str, info: os.stat_result) -> Entry:
        if stat.S_ISLNK(info.st_mode):
            return Entry(rel, "symlink", 0)
        if stat.S_ISREG(info.st_mode):
            return Entry(rel, "file", info.st_size)
        return Entry(rel, "special", 0)

    def entries(self) -> list[Entry]:
        if self.names is not None:
            found = []
            for rel in self.names:
                try:
                    info = os.lstat(self.root / rel)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(info.st_mode):
                    found.append(self._entry(rel, info))
            return found
        found, pending = [], [""]
        while pending:
            prefix = pending.pop()
            with os.scandir(self.root / prefix) as listing:
                for item in listing:
                    rel = f"{prefix}{item.name}"
                    if rel == ".git":
                        continue
                    info = item.stat(follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(rel + "/")
                    else:
                        found.append(self._entry(rel, info))
                    if len(found) > MAX_FILES:
                        raise _too_many(self.root)
        return sorted(found, key=lambda entry: entry.path)

    def open(self, entry: Entry, limit: int | None = None) -> BinaryIO:
        return open_regular(self.root / entry.path, limit)  # type: ignore[return-value]

    def lfs_covered(self, paths: list[str]) -> set[str]:
        try:
            attributes = read_regular(self.root / ".gitattributes", MAX_PLAIN_BYTES)
        except (OSError, UnsafeFile):
            return set()
        return lfs_attributes(attributes, paths)


class _ChunkReader:
    """A read()-able stream over an iterator of byte chunks (a git blob), capped at `limit`."""

    def __init__(self, chunks: Iterator[bytes], name: str, limit: int | None) -> None:
        self.chunks, self.buffer, self.name, self.limit, self.count = chunks, b"", name, limit, 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
            self.count += len(chunk)
            if self.limit is not None and self.count > self.limit:
                raise UnsafeFile(f"{self.name} is larger than the {self.limit} bytes this file may have")
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> _ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GitObjects(Source):
    """Entries whose content lives in a git object database (and its clone's git-lfs store)."""

    def __init__(self, db: GitDB) -> None:
        self.db = db
        self.verified: set[str] = set()

    def open(self, entry: Entry, limit: int | None = None) -> BinaryIO:
        if entry.lfs:
            path = self.db.lfs_object(entry.ref)
            if entry.ref not in self.verified:
                digest = hashlib.sha256()
                with open_regular(path) as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                if digest.hexdigest() != entry.ref:
                    raise UnsafeFile(f"{entry.path}: its local git-lfs object does not match its oid (tampered)")
                self.verified.add(entry.ref)
            return open_regular(path, limit)  # type: ignore[return-value]
        return _ChunkReader(self.db.stream_blob(entry.ref), entry.path, limit)  # type: ignore[return-value]

    def sniff(self, entry: Entry, tokens: bool = False) -> Sniffed | None:
        if entry.lfs and not self.db.lfs_object(entry.ref).exists():
            return None
        return super().sniff(entry, tokens)

    def resolve(self, raw: list[tuple[str, str, str, int]]) -> list[Entry]:
        """Entries from (path, mode, blob id, size) rows: small blobs that are LFS pointers become LFS entries."""
        small = [oid for _, mode, oid, size in raw if size <= LFS_POINTER_MAX_BYTES and mode != "120000"]
        pointers = self.db.blobs(sorted(set(small)))
        found = []
        for path, mode, oid, size in raw:
            if mode == "120000":
                found.append(Entry(path, "symlink", 0, ref=oid, blob=oid))
            elif mode == "160000":
                found.append(Entry(path, "submodule", 0, ref=oid, blob=oid))
            elif (pointer := parse_lfs_pointer(pointers.get(oid, b""))) is not None:
                found.append(Entry(path, "file", pointer[1], lfs=True, ref=pointer[0], blob=oid))
            else:
                found.append(Entry(path, "file", size, ref=oid, blob=oid))
        return sorted(found, key=lambda entry: entry.path)

    def close(self) -> None:
        self.db.close()


class CommitSource(GitObjects):
    """A local git repo at one commit (HEAD by default), read from its object database, never the work tree."""

    def __init__(self, root: Path, ref: str = "HEAD") -> None:
        super().__init__(GitDB(root))
        self.root = root
        try:
            self.commit = self.db.commit(ref)
        except UsageError:
            self.db.close()
            raise UsageError(f"{root} has no commit {ref}; commit the model repo, then run this again") from None
        self.notes = [f"judged at commit {self.commit} (git {ref}), not the working tree"]

    def entries(self) -> list[Entry]:
        rows = self.db.tree(self.commit)
        if len(rows) > MAX_FILES:
            raise _too_many(f"{self.root} at {self.commit}")
        return self.resolve([(row.path, row.mode, row.oid, row.size) for row in rows])

    def dirty(self) -> list[str]:
        """Tracked paths whose work-tree file is not what the commit holds (compared by content, never by git's
        index or stat data)."""
        changed = []
        for entry in self.entries():
            path = self.root / entry.path
            try:
                if entry.kind == "symlink":
                    same = path.is_symlink()
                elif entry.lfs:
                    same = _sha256(path) == entry.ref
                else:
                    same = entry.kind == "file" and _git_blob_id(path) == entry.ref
            except (OSError, UnsafeFile):
                same = False
            if not same:
                changed.append(entry.path)
        return changed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _git_blob_id(path: Path) -> str:
    with open_regular(path) as handle:
        size = os.fstat(handle.handle.fileno()).st_size
        digest = hashlib.sha1(f"blob {size}\0".encode())
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class RangeSource(GitObjects):
    """What a push sends: every blob that the selected commits write, every commit's headers and message, and every
    annotated tag's (a `git push --tags` or `push.followTags` sends them too)."""

    def __init__(self, root: Path, tips: list[str], exclude: list[str]) -> None:
        super().__init__(GitDB(root))
        self.root = root
        self.notes = []
        tags = [(name, oid) for name, oid, kind in self.db.ref_oids("refs/tags/") if kind == "tag"]
        self.tags = tags
        self.commits = self.db.rev_list(tips + [oid for _, oid in tags], exclude)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(what, text) of every commit's headers and message, and every annotated tag's."""
        for commit in self.commits:
            headers, _, message = self.db.raw_object("commit", commit).partition(b"\n\n")
            yield f"commit {commit[:12]} author/committer", headers
            yield f"commit {commit[:12]} message", message
        for name, oid in self.tags:
            yield f"tag {name.removeprefix('refs/tags/')}", self.db.raw_object("tag", oid)

    def entries(self) -> list[Entry]:
        written = self.db.written_blobs(self.commits)
        if len(written) > 10 * MAX_FILES:
            raise _too_many(f"the pushed commits of {self.root}")
        sizes = self.db.sizes(list(written))
        return self.resolve([(path, mode, oid, sizes[oid]) for oid, (path, mode) in written.items()])


# --- the Hub ---------------------------------------------------------------------------------------------
def valid_repo_path(path: object) -> bool:
    """A file path a Hub listing may hold: relative, '/'-separated, no '..', '.' or empty parts, no backslash,
    no control character."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path or not path.isprintable():
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


class HubSource(Source):
    """A Hub repo at one commit (a 40-hex sha, nothing else): its listing validated, small files streamed with a
    cap, large and LFS files only read at both ends with HTTP range requests (weights are never downloaded)."""

    def __init__(self, repo_id: str, revision: str | None) -> None:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        self.repo_id = repo_id
        where = f"{repo_id}@{revision or 'main'} on {constants.ENDPOINT}"
        try:
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        except (RepositoryNotFoundError, RevisionNotFoundError) as error:
            raise UsageError(
                f"{where} not found ({first_line(error)}): check ORG/NAME and --revision; for a private repo set "
                "HF_TOKEN or run `hf auth login`"
            ) from None
        except Exception as error:  # the transport's own errors (requests, httpx) are not OSErrors
            if not isinstance(error, HfHubHTTPError | OSError) and not _transport_error(error):
                raise
            raise LlavaViTError(
                f"could not reach {where} ({first_line(error)}): check the network or HF_ENDPOINT"
            ) from None
        if not isinstance(info.sha, str) or not _HEX40.fullmatch(info.sha):
            raise LlavaViTError(
                f"{where} answered {str(info.sha)[:60]!r} as its commit, not a 40-hex sha; cannot pin a verdict"
            )
        self.commit = info.sha
        self.siblings = list(info.siblings or [])
        if len(self.siblings) > MAX_FILES:
            raise _too_many(repo_id)
        bad = [s.rfilename for s in self.siblings if not valid_repo_path(s.rfilename)]
        if bad:
            raise LlavaViTError(
                f"{where} lists a file path that no repo can hold ({str(bad[0])[:80]!r}); refusing to judge it"
            )
        self.notes = [f"judged at commit {self.commit} (what {revision or 'main'} points to now)"]

    def entries(self) -> list[Entry]:
        found = []
        for sibling in self.siblings:
            lfs = sibling.lfs
            size = sibling.size if sibling.size is not None else (getattr(lfs, "size", None) or 0)
            found.append(Entry(sibling.rfilename, "file", int(size), lfs=lfs is not None))
        return sorted(found, key=lambda entry: entry.path)

    def open(self, entry: Entry, limit: int | None = None) -> BinaryIO:
        cap = MAX_PLAIN_BYTES if limit is None else limit
        if entry.lfs or entry.size > cap:
            raise UnsafeFile(f"{entry.path} is {entry.size} bytes, more than the {cap} this file may have")
        data = self._get(entry, None, cap)
        if data is None:
            raise UnsafeFile(f"{entry.path} could not be downloaded from {self.repo_id}")
        return CappedReader(io.BytesIO(data), entry.path, cap)  # type: ignore[return-value]

    def sniff(self, entry: Entry, tokens: bool = False) -> Sniffed | None:
        if not entry.lfs and entry.size <= MAX_PLAIN_BYTES and not entry.path.endswith(".safetensors"):
            try:
                return super().sniff(entry, tokens)
            except UnsafeFile:
                pass  # larger than its listing said (or than any plain file): judged from its two ends
        head = self._get(entry, f"bytes=0-{SNIFF_BYTES - 1}", SNIFF_BYTES)
        if head is None:
            return None
        tail = b""
        if entry.size > SNIFF_BYTES:
            tail = self._get(entry, f"bytes=-{SNIFF_BYTES}", SNIFF_BYTES) or b""
        return sniff_ends(head, tail)

    def _get(self, entry: Entry, byte_range: str | None, cap: int) -> bytes | None:
        """One streamed GET of the file at the pinned commit, cut off after `cap` bytes (a range when given)."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session

        url = hf_hub_url(self.repo_id, entry.path, revision=self.commit)
        headers = build_hf_headers()
        if byte_range:
            headers["Range"] = byte_range
        session = get_session()
        try:
            if callable(getattr(session, "stream", None)):  # httpx (huggingface_hub >= 1.0); requests: a flag
                with session.stream("GET", url, headers=headers, follow_redirects=True, timeout=30) as response:
                    return _capped(response.status_code, response.iter_bytes(), byte_range, cap)
            with session.get(url, headers=headers, stream=True, timeout=30) as response:  # requests
                return _capped(response.status_code, response.iter_content(65536), byte_range, cap)
        except OSError:
            return None
        except Exception as error:  # the transport's own errors (requests or httpx): content unavailable
            if _transport_error(error):
                return None
            raise


def _transport_error(error: BaseException) -> bool:
    """An error of the HTTP stack under huggingface_hub (requests, httpx and their vendored copies)."""
    top = type(error).__module__.split(".")[0]
    return top.rstrip("0123456789") in ("requests", "httpx", "httpcore", "urllib3", "huggingface_hub")


def _capped(status: int, chunks: Iterator[bytes], byte_range: str | None, cap: int) -> bytes | None:
    if byte_range and status == 200 and byte_range.startswith("bytes=-"):
        return None  # the server ignored the range: the tail would need the whole file
    if status not in (200, 206):
        return None
    data = b""
    for chunk in chunks:
        data += chunk
        if len(data) > cap:
            if byte_range:
                break
            raise UnsafeFile(f"the server sent more than the {cap} bytes the file may have")
    return data[:cap] if byte_range else data


def first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


@contextmanager
def time_budget(seconds: float, what: str) -> Iterator[None]:
    """Ends the work inside after `seconds` with one clear line (a slow server must not hang an audit)."""

    def expired(signum: int, frame: object) -> None:
        raise LlavaViTError(f"{what} did not finish within {seconds:g} s (a slow or stalled server?); try again later")

    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return
    try:
        previous = signal.signal(signal.SIGALRM, expired)
    except ValueError:  # not the main thread: no alarm to use
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
