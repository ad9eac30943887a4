"""The pre-push proof (`check --full --pushed`, publish): it judges exactly the pushed commit, runs once per
content, is recorded only when it passed, and is never read through a symlink."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from template_repos import copy_repo

pytestmark = pytest.mark.slow  # runs verify (a real load) in a fresh interpreter


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def proof(repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llava_vit", "check", "--full", "--commit", "HEAD", *extra],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )


def records(repo: Path) -> list[Path]:
    return sorted((repo / ".git" / "llava-vit" / "proofs").glob("*"))


def commit_change(repo: Path, name: str, text: str) -> None:
    path = repo / name
    path.write_text(path.read_text() + text)
    git(repo, "commit", "-q", "--no-verify", "-am", f"edit {name}")


def test_the_proof_runs_once_per_content(made_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(made_repo, tmp_path / "repo")
    first = proof(repo)
    assert first.returncode == 0, first.stderr
    assert "verify: loading commit" in first.stderr and len(records(repo)) == 1

    commit_change(repo, "README.md", "\nA card-only change.\n")
    cached = proof(repo)
    assert cached.returncode == 0, cached.stderr
    assert "verify:" not in cached.stderr, "a card-only change must not run the proof again"

    forced = proof(repo, "--no-cache")
    assert forced.returncode == 0 and "verify: loading commit" in forced.stderr

    data = json.loads((repo / "config.json").read_text())
    data["note"] = "a model file changed"
    (repo / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    git(repo, "commit", "-q", "--no-verify", "-am", "config")
    changed = proof(repo)
    assert changed.returncode == 0 and "verify: loading commit" in changed.stderr and len(records(repo)) == 2


def test_a_failing_proof_records_nothing_and_a_broken_card_still_fails(made_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(made_repo, tmp_path / "repo")
    assert proof(repo).returncode == 0
    before = records(repo)
    card = repo / "README.md"
    card.write_text(card.read_text().replace("license:", "license: Not A License\nold_license:", 1))
    git(repo, "commit", "-q", "--no-verify", "-am", "broken card")
    broken = proof(repo)
    assert broken.returncode == 1 and "README.md: metadata license must be a Hub license id" in broken.stderr
    assert records(repo) == before


def test_a_proof_record_reached_through_a_symlink_is_refused(made_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(made_repo, tmp_path / "repo")
    assert proof(repo).returncode == 0
    proofs = repo / ".git" / "llava-vit" / "proofs"
    elsewhere = tmp_path / "forged"
    proofs.rename(elsewhere)
    proofs.symlink_to(elsewhere)
    result = proof(repo)
    assert result.returncode == 2 and "is a symlink or not a folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
