"""Interrupted work: export, sync and publish killed (SIGKILL, SIGINT) at random moments, as real processes.

Afterwards the destination is untouched or complete, never half written, and running the command again
finishes the job. Kill points are random with a fixed seed per test: export is killed once a random number of
its files are written; sync and publish at a random moment of the span an uninterrupted run took.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from published_repos import ARCH, commit_all, export_repo, git
from reference import REFERENCE, architecture, weights_path

from llava_vit import LlavaViTConfig
from llava_vit.checks.sync import sync_repo
from llava_vit.cli import main
from llava_vit.errors import LlavaViTError
from llava_vit.export import export_model
from llava_vit.repo_contract import CODE_FILES, canonical_source, render_code_file
from llava_vit.repo_files import write_atomic

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it

# Big enough that writing its shards takes a noticeable time, small enough for a CI machine.
MID = {
    "hidden_size": 256,
    "num_attention_heads": 8,
    "num_hidden_layers": 6,
    "intermediate_size": 1024,
    "patch_size": 16,
    "image_size": 64,
}
SHARD = "1MB"


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llava_vit", *args]


def run_killed(
    argv: list[str], cwd: Path, sig: signal.Signals, delay: Callable[[], float], started: Callable[[], bool]
) -> subprocess.CompletedProcess[str]:
    """Start `argv` in its own process group, wait until `started()` (or the end), then `delay()` seconds more,
    and send `sig` to the whole group (its git and hook children too, as a terminal's Ctrl-C or a crash would)."""
    process = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not started() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay())
    if process.poll() is None:
        os.killpg(process.pid, sig)
    out, err = process.communicate(timeout=300)
    with_children_gone(process.pid)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def with_children_gone(group: int) -> None:
    """Wait until no process of the killed group is left (git children may outlive their parent briefly)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(group, signal.SIGKILL)


def timed(argv: list[str], cwd: Path, started: Callable[[], bool]) -> tuple[float, float]:
    """(seconds until `started()`, seconds from then to the end) of an uninterrupted run, which must succeed."""
    begin = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = None
    while process.poll() is None:
        if start is None and started():
            start = time.monotonic()
        time.sleep(0.002)
    out, err = process.communicate()
    assert process.returncode == 0, out + err
    end = time.monotonic()
    start = start or end
    return start - begin, end - start


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_killed_while_writing_is_absent_or_complete(tmp_path: Path) -> None:
    """Killed after a random number of its files were written (SIGKILL, then Ctrl-C)."""
    rng = random.Random(1)
    config = LlavaViTConfig(**MID)
    expected = tree(export_model(tmp_path / "reference", config, max_shard_size=SHARD))
    assert sum(name.endswith(".safetensors") for name in expected) > 10, "the export must be multi-shard"
    (tmp_path / "mid.json").write_text(config.to_json_string())
    work = tmp_path / "work"
    work.mkdir()
    argv = command("export", "out", "--config", str(tmp_path / "mid.json"), "--max-shard-size", SHARD)

    def written(count: int) -> Callable[[], bool]:
        """True once the export's staging folder holds `count` files: kills land at a point of its progress,
        however fast or slow the machine."""
        return lambda: any(len(os.listdir(folder)) >= count for folder in work.glob(".out.tmp-*"))

    outcomes = []
    for sig in (signal.SIGKILL, signal.SIGKILL, signal.SIGKILL, signal.SIGINT):
        killed = run_killed(argv, work, sig, lambda: 0.0, written(rng.randint(1, len(expected))))
        out = work / "out"
        if out.exists():
            assert tree(out) == expected, "a complete export, byte for byte"
            outcomes.append("complete")
        else:
            outcomes.append("absent")
            if sig == signal.SIGINT:
                assert killed.returncode == 130 and "interrupted" in killed.stderr, killed.stderr
                assert os.listdir(work) == [], "Ctrl-C removes its temporary folder"
            assert main(["export", str(out), *argv[5:]]) == 0, "the re-run finishes the job"
            assert tree(out) == expected
        assert os.listdir(work) == ["out"], "the re-run removed what the killed run left"
        shutil.rmtree(out)
    assert "absent" in outcomes, outcomes


def _old_repo(folder: Path) -> dict[str, str]:
    """An exported repo whose code files come from an older release and whose config lacks auto_map."""
    export_model(folder, LlavaViTConfig(**architecture(ARCH)), weights_path(ARCH))
    for name in CODE_FILES:
        old = render_code_file(name, canonical_source(name) + "\n# 0.0.9\n", version="0.0.9")
        (folder / name).write_text(old, encoding="utf-8")
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"auto_map"', '"auto_map_removed"'))
    return {name: (folder / name).read_text() for name in (*CODE_FILES, "config.json")}


def test_sync_killed_leaves_each_file_old_or_new(tmp_path: Path) -> None:
    rng = random.Random(2)
    pristine = tmp_path / "pristine"
    old = _old_repo(pristine)
    done = tmp_path / "done"
    shutil.copytree(pristine, done)
    _, total = timed(command("sync", str(done)), tmp_path, lambda: True)
    new = {name: (done / name).read_text() for name in old}
    assert all(new[name] != old[name] for name in old)
    for i in range(4):
        repo = shutil.copytree(pristine, tmp_path / f"repo{i}")
        run_killed(
            command("sync", str(repo)), tmp_path, signal.SIGKILL, lambda: rng.uniform(0.7, 1.05) * total, lambda: True
        )
        for name in old:
            assert (repo / name).read_text() in (old[name], new[name]), f"{name} is half written"
        sync_repo(repo)
        assert {name: (repo / name).read_text() for name in old} == new
        assert not [p.name for p in repo.iterdir() if p.name.endswith(".tmp")]


def test_sync_removes_what_a_killed_sync_left(tmp_path: Path) -> None:
    """A SIGKILL between a temporary file's creation and its rename leaves `.NAME.PID-XXXX.tmp` (a window too short
    to hit reliably by chance). The next sync deletes those of a dead writer, also beside files it need not
    rewrite, and leaves a live writer's file and anything not named or made as its own."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(finished.stdout), os.getpid()
    repo = tmp_path / "repo"
    _old_repo(repo)
    sync_repo(repo)
    stale = [repo / f".{name}.{dead}-x1y2z3_4.tmp" for name in (*CODE_FILES, "config.json")]
    for path in stale:
        path.write_text("half")
    kept = [
        repo / f".config.json.{alive}-abcd1234.tmp",
        repo / f".config.json.{10**30}-abcd1234.tmp",  # no process can have that PID: not a name sync made
        repo / f".config.json.{2**31}-abcd1234.tmp",
        repo / "notes.tmp",
        repo / f".README.md.{dead}-abcd1234.tmp",
    ]
    for path in kept:
        path.write_text("not a leftover of sync")
    (repo / f".config.json.{dead}-dir00000.tmp").mkdir()
    (repo / f".config.json.{dead}-link0000.tmp").symlink_to(repo / "notes.tmp")
    assert sync_repo(repo) == []
    assert not any(path.exists() for path in stale)
    assert all(path.read_text() == "not a leftover of sync" for path in kept)
    assert (repo / f".config.json.{dead}-dir00000.tmp").is_dir()
    assert (repo / f".config.json.{dead}-link0000.tmp").is_symlink()


def test_every_atomic_write_removes_its_own_leftovers(tmp_path: Path) -> None:
    """Not only sync: any `write_atomic` (the check cache, the local hub's state) first deletes what a killed write of
    the same file left, and nothing of other files. A sync that refuses its folder deletes nothing."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = finished.stdout.strip()
    stale, other = tmp_path / f".state.json.{dead}-abcd1234.tmp", tmp_path / f".config.json.{dead}-abcd1234.tmp"
    stale.write_text("half")
    other.write_text("half")
    with pytest.raises(LlavaViTError):
        sync_repo(tmp_path)  # no config.json: not a model repo
    assert stale.exists() and other.exists()
    write_atomic(tmp_path / "state.json", "{}")
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, "state.json"])


CARD = (
    "---\nlibrary_name: transformers\npipeline_tag: image-feature-extraction\nlicense: apache-2.0\n---\n# killed-vit\n"
)


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported model with a card, committed with its weights in git-lfs (git-lfs's pre-push hook on)."""
    repo = tmp_path_factory.mktemp("publish") / "killed-vit"
    export_repo(repo, "tiny-org/killed-vit")
    (repo / "README.md").write_text(CARD)
    commit_all(repo, "Card")
    return repo


def _remote_state(remote: Path) -> str | None:
    result = subprocess.run(["git", "rev-parse", "-q", "--verify", "refs/heads/main"], cwd=remote, capture_output=True)
    return result.stdout.decode().strip() or None


def _lfs_objects_complete(remote: Path, repo: Path, commit: str) -> None:
    """Every LFS file of `commit` has its object on the remote, with the right content."""
    git_dir = remote / ".git" if (remote / ".git").is_dir() else remote
    for line in git(repo, "lfs", "ls-files", "--long", commit).splitlines():
        oid = line.split()[0]
        stored = git_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        assert stored.is_file(), line
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == oid, line


def test_publish_killed_lands_old_or_new_and_rerun_completes(committed: Path, tmp_path: Path, capsys) -> None:
    rng = random.Random(3)
    commit = git(committed, "rev-parse", "HEAD")
    bare = tmp_path / "timing.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    _, total = timed(command("publish", str(committed), "--remote", bare.as_uri()), tmp_path, lambda: True)
    for i, (sig, kind) in enumerate(
        ((signal.SIGKILL, "remote"), (signal.SIGKILL, "local-hub"), (signal.SIGINT, "remote"))
    ):
        repo = shutil.copytree(committed, tmp_path / f"repo{i}", symlinks=True)
        if kind == "remote":
            remote = tmp_path / f"remote{i}.git"
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
            target = ["--remote", remote.as_uri()]
        else:
            remote = tmp_path / f"hub{i}" / "models" / "tiny-org" / "killed-vit"
            target = ["--local-hub", "--hub-dir", str(tmp_path / f"hub{i}"), "--repo-id", "tiny-org/killed-vit"]
        argv = command("publish", str(repo), *target)
        killed = run_killed(argv, tmp_path, sig, lambda: rng.uniform(0.5, 1.0) * total, lambda: True)
        assert "Traceback" not in killed.stderr or sig == signal.SIGKILL, killed.stderr
        if remote.exists():
            assert _remote_state(remote) in (None, commit), "the remote branch is at the old or the new commit"
        assert main(argv[3:]) == 0, "the re-run finishes the job"
        assert _remote_state(remote) == commit
        _lfs_objects_complete(remote, repo, commit)
        capsys.readouterr()
        assert main(argv[3:]) == 0
        assert capsys.readouterr().out.startswith("nothing new to publish")


def test_export_repairs_what_a_killed_force_replace_left(tmp_path: Path, capsys) -> None:
    """`--force` moves the old OUT aside, then renames the new one in: a SIGKILL between the two renames (too
    short a window to hit by chance) leaves no OUT, the old one aside and maybe a half-built folder. The next
    export puts the old OUT back and deletes the rest, then decides as if nothing had happened."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    config = LlavaViTConfig(**architecture(ARCH))
    previous = tree(export_model(tmp_path / f".out.old-{dead}-0a0a0a0a", config, weights_path(ARCH)))
    half = tmp_path / f".out.tmp-{dead}-0b0b0b0b"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    foreign = [tmp_path / f".out.tmp-{10**30}-0c0c0c0c", tmp_path / ".out.tmp-\u00b2-0d0d0d0d"]  # no PID: not ours
    for folder in foreign:
        folder.mkdir()
    args = ["export", str(tmp_path / "out"), "--config", str(REFERENCE / ARCH / "architecture.json")]
    assert main(args) == 2 and "already exists and is not empty; pass --force" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == sorted(["out", *(f.name for f in foreign)])
    assert tree(tmp_path / "out") == previous
