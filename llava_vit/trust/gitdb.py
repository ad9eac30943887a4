"""git, hardened: a repo someone handed us is read through the object database of the commit being judged, and
nothing that the repo's own configuration or attributes can name ever runs.

Objects are read by a git process whose repository is an empty scratch folder of ours and whose object
directory is the judged repo's (GIT_OBJECT_DIRECTORY): the repo's `.git/config`, `.git/info/attributes`,
`.gitattributes`, hooks, index and worktree are never even opened by it, so no filter, fsmonitor, textconv or
diff driver, pager, hook or `core.worktree` can run, and no index flag (`skip-worktree`, `assume-unchanged`)
or stat data is trusted. Only ref names are resolved in the repo itself (`rev-parse`, `for-each-ref`, which
run none of those), with global and system configuration, replace refs and pagers turned off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import LlavaViTError, UsageError
from .opener import UnsafeFile, read_regular

ZERO_OID = "0" * 40
# Configuration that every git process of ours gets on its command line (beats anything a repo sets).
_SAFE_CONFIG = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.attributesFile=/dev/null",
    "core.untrackedCache=false",
    "diff.external=",
    "protocol.allow=never",
    "safe.directory=*",
)


def git_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any GIT_* variable (a hook's GIT_DIR, an inherited GIT_CONFIG_*), then
    no system or global configuration, no replace refs, no pager, no prompt."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_ATTR_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_NO_LAZY_FETCH="1",
    )
    env.update(extra)
    return env


def git_command(*args: str) -> list[str]:
    if shutil.which("git") is None:
        raise LlavaViTError("git is not installed or not on PATH; install git")
    config = [part for item in _SAFE_CONFIG for part in ("-c", item)]
    return ["git", "--no-pager", *config, *args]


def find_git_dir(repo: Path) -> Path | None:
    """The git directory of the work tree `repo` (its `.git` folder, or the folder a `.git` file names), or None
    when `repo` is not the top of a git work tree. Read here, as git reads it, so no git process discovers it."""
    dot_git = repo / ".git"
    if dot_git.is_symlink():
        raise UsageError(f"{dot_git} is a symlink; a repo's .git must be its own folder (or a gitdir file)")
    if dot_git.is_dir():
        return dot_git
    if not dot_git.is_file():
        return None
    try:
        text = read_regular(dot_git, 4096).decode("utf-8").strip()
    except (UnsafeFile, UnicodeDecodeError, OSError):
        raise UsageError(f"{dot_git} is not a gitdir file; repair the clone") from None
    if not text.startswith("gitdir: "):
        raise UsageError(f"{dot_git} is not a gitdir file; repair the clone")
    target = Path(text[len("gitdir: ") :])
    return target if target.is_absolute() else (repo / target)


@dataclass(frozen=True)
class TreeEntry:
    """One path of a commit's tree as git stores it."""

    path: str
    mode: str
    kind: str  # blob or commit (a submodule)
    oid: str
    size: int


class GitDB:
    """A git repository, read through its object database (see the module docstring). Use as a context manager:
    the scratch folder goes when it closes."""

    def __init__(self, repo: Path) -> None:
        git_dir = find_git_dir(repo)
        if git_dir is None:
            raise UsageError(f"{repo} is not the top of a git repository")
        self.repo, self.git_dir = repo, git_dir.resolve()
        common = git_dir / "commondir"
        if common.is_file() and not common.is_symlink():
            named = Path(read_regular(common, 4096).decode("utf-8", "replace").strip())
            self.common_dir = (named if named.is_absolute() else self.git_dir / named).resolve()
        else:
            self.common_dir = self.git_dir
        self.objects = self.common_dir / "objects"
        self.lfs_objects = self.common_dir / "lfs" / "objects"
        self.scratch = Path(tempfile.mkdtemp(prefix="llava-vit-git-"))
        (self.scratch / "refs").mkdir()
        (self.scratch / "HEAD").write_text("ref: refs/heads/main\n")
        (self.scratch / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = true\n")

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> GitDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- processes ---------------------------------------------------------------------------------------
    def _objects_env(self) -> dict[str, str]:
        return git_environment({"GIT_DIR": str(self.scratch), "GIT_OBJECT_DIRECTORY": str(self.objects)})

    def _refs_env(self) -> dict[str, str]:
        return git_environment({"GIT_DIR": str(self.git_dir)})

    def _run(self, env: dict[str, str], args: tuple[str, ...], data: bytes | None) -> bytes:
        result = subprocess.run(git_command(*args), cwd=self.scratch, env=env, input=data, capture_output=True)
        if result.returncode:
            message = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise LlavaViTError(
                f"`git {' '.join(args[:3])}` failed in {self.repo}: {message[-1] if message else 'no output'}"
            )
        return result.stdout

    def objects_git(self, *args: str, data: bytes | None = None) -> bytes:
        """git on the object database alone (the scratch repository)."""
        return self._run(self._objects_env(), args, data)

    def refs_git(self, *args: str) -> bytes:
        """git in the repo itself, for resolving ref names only."""
        return self._run(self._refs_env(), args, None)

    # --- refs ---------------------------------------------------------------------------------------------
    def commit(self, ref: str) -> str:
        """The commit `ref` names (an option-like ref is refused by git itself: --end-of-options)."""
        try:
            out = self.refs_git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        except LlavaViTError:
            raise UsageError(f"{ref!r} is not a commit in {self.repo}") from None
        return out.decode().strip()

    def ref_oids(self, *patterns: str) -> list[tuple[str, str, str]]:
        """(ref name, object id, object type) of every ref under `patterns` (e.g. refs/tags/)."""
        out = self.refs_git("for-each-ref", "--format=%(refname)%00%(objectname)%00%(objecttype)", *patterns)
        rows = []
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            name, oid, kind = line.split("\0")
            rows.append((name, oid, kind))
        return rows

    # --- objects ------------------------------------------------------------------------------------------
    def rev_list(self, tips: list[str], exclude: list[str]) -> list[str]:
        """Commits reachable from `tips` and from none of `exclude` (all object ids)."""
        if not tips:
            return []
        present = set(self.existing(exclude))
        out = self.objects_git("rev-list", *tips, "--not", *[oid for oid in exclude if oid in present], "--")
        return [line for line in out.decode().split() if line]

    def existing(self, oids: list[str]) -> list[str]:
        """The object ids of `oids` this database holds (a remote-tracking ref can name a pruned object)."""
        if not oids:
            return []
        out = self.objects_git("cat-file", "--batch-check", data="".join(f"{oid}\n" for oid in oids).encode())
        return [line.split()[0] for line in out.decode().splitlines() if not line.endswith(" missing")]

    def tree(self, commit: str) -> list[TreeEntry]:
        """Every path of `commit`'s tree, recursively, submodules and symlinks included."""
        out = self.objects_git("ls-tree", "-r", "-z", "--full-tree", "--long", commit)
        entries = []
        for record in filter(None, out.split(b"\0")):
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            path = raw_path.decode("utf-8", "surrogateescape")
            entries.append(TreeEntry(path, mode, kind, oid, int(size) if size != "-" else 0))
        return entries

    def raw_object(self, kind: str, oid: str) -> bytes:
        """A commit's or tag's raw text (headers, a blank line, the message)."""
        return self.objects_git("cat-file", kind, oid)

    def blobs(self, oids: list[str]) -> dict[str, bytes]:
        """Contents of blobs (small ones: the caller bounds their sizes), in one `git cat-file --batch`."""
        if not oids:
            return {}
        output = self.objects_git("cat-file", "--batch", data="\n".join(oids).encode() + b"\n")
        blobs, position = {}, 0
        for oid in oids:
            end = output.index(b"\n", position)
            _, _, size = output[position:end].decode().split()
            blobs[oid] = output[end + 1 : end + 1 + int(size)]
            position = end + 1 + int(size) + 1
        return blobs

    def written_blobs(self, commits: list[str]) -> dict[str, tuple[str, str]]:
        """{blob id: (path, mode)} of every blob that `commits` add or change (their diffs against each parent)."""
        if not commits:
            return {}
        raw = self.objects_git(
            "diff-tree", "-r", "-z", "--no-renames", "--root", "-m", "--no-commit-id", "--stdin",
            data="\n".join(commits).encode() + b"\n",
        )  # fmt: skip
        fields = raw.split(b"\0")
        found: dict[str, tuple[str, str]] = {}
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            parts = meta.decode("ascii", "replace").lstrip(":").split()
            if len(parts) == 5 and parts[4] != "D" and parts[1] != "160000":
                found.setdefault(parts[3], (path.decode("utf-8", "surrogateescape"), parts[1]))
        return found

    def sizes(self, oids: list[str]) -> dict[str, int]:
        out = self.objects_git("cat-file", "--batch-check", data="".join(f"{oid}\n" for oid in oids).encode())
        sizes = {}
        for line in out.decode().splitlines():
            oid, _, size = line.split()
            sizes[oid] = int(size)
        return sizes

    def stream_blob(self, oid: str) -> Iterator[bytes]:
        """A blob's bytes in chunks, without holding it whole; the process is reaped however reading ends."""
        process = subprocess.Popen(
            git_command("cat-file", "blob", oid), cwd=self.scratch, env=self._objects_env(), stdout=subprocess.PIPE
        )
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(1 << 20):
                yield chunk
        finally:
            process.stdout.close()
            process.kill()
            process.wait()

    def lfs_object(self, oid: str) -> Path:
        """Where this clone keeps the git-lfs object `oid` (64 hex digits: checked by the pointer parser)."""
        return self.lfs_objects / oid[:2] / oid[2:4] / oid
