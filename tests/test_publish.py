"""`llava-vit publish`, run as a user runs it: real git, git-lfs, the full check, a local hub, real failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from published_repos import ARCH, commit_all, git, load_outputs, new_repo
from reference import TOLERANCE, load_case

from llava_vit.errors import LlavaViTError
from llava_vit.hub.local_hub import LocalHub, free_port
from llava_vit.hub.publish import publish as publish_repo

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it

REPO_ID = "tiny-org/published-vit"


@pytest.fixture(scope="module")
def hub(local_hub: LocalHub) -> LocalHub:
    return local_hub


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory) -> Path:
    """One `llava-vit new` repo (template, export, hooks, first commit) for the module; tests take copies."""
    repo = tmp_path_factory.mktemp("template") / "published-vit"
    new_repo(repo, REPO_ID)
    return repo


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the template repo, hooks and LFS config included."""
    copy = tmp_path / template_repo.name
    shutil.copytree(template_repo, copy, symlinks=True)
    return copy


def publish(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, **(env or {})}
    run_env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-m", "llava_vit", "publish", str(repo), *args],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=600,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("llava-vit publish: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in error
    return error


def bare_remote(path: Path) -> str:
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path.as_uri()


def remote_head(url: str) -> str | None:
    out = subprocess.run(["git", "ls-remote", url, "refs/heads/main"], check=True, capture_output=True, text=True)
    return out.stdout.split()[0] if out.stdout.strip() else None


def test_publish_to_local_hub_then_nothing_new(hub: LocalHub, repo: Path, clean_python: Path, tmp_path: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    first = publish(repo, "--local-hub", "--hub-dir", str(hub.root))
    assert first.returncode == 0, first.stderr
    assert f"published {REPO_ID} at {commit}" in first.stdout
    assert f"HF_ENDPOINT={hub.endpoint}" in first.stdout
    assert f'AutoModel.from_pretrained("{REPO_ID}", revision="{commit}", trust_remote_code=True)' in first.stdout
    assert git(hub.repo_path(REPO_ID), "rev-parse", "HEAD") == commit

    # Every file is served at the pinned commit, the weights from the pushed LFS objects, byte for byte.
    for name in git(repo, "ls-files").splitlines():
        with urllib.request.urlopen(f"{hub.endpoint}/{REPO_ID}/resolve/{commit}/{name}", timeout=60) as response:
            assert response.read() == (repo / name).read_bytes(), name

    # A user with only torch + transformers gets the reference numbers from the pinned commit.
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf-home")}
    loaded = load_outputs(clean_python, REPO_ID, revision=commit, env=env)
    _, expected = load_case(ARCH, "image")
    error = (loaded["last_hidden_state"] - expected["last_hidden_state"].flatten()).abs().max().item()
    assert error <= TOLERANCE

    second = publish(repo, "--local-hub", "--hub-dir", str(hub.root))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"nothing new to publish: {hub.remote_url(REPO_ID)} already at {commit}"


def test_failed_check_publishes_nothing(repo: Path, tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "remote.git")
    good = git(repo, "rev-parse", "HEAD")
    git(repo, "push", "-q", "--no-verify", remote, "main")

    # Truncated weights, committed past the pre-commit hooks: publish's own full check must stop them.
    weights = repo / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    commit_all(repo, "Truncated weights", hooks=False)
    refused = publish(repo, "--remote", remote)
    assert_one_line_error(refused, "full check failed", "nothing was pushed")
    assert remote_head(remote) == good


@pytest.mark.slow
def test_publish_guards_every_commit_it_pushes(repo: Path, tmp_path: Path) -> None:
    """A token committed past the hooks and deleted again is still in the history publish would send."""
    remote = bare_remote(tmp_path / "remote.git")
    good = git(repo, "rev-parse", "HEAD")
    git(repo, "push", "-q", "--no-verify", remote, "main")
    token = "hf_" + "Lk4" * 12
    (repo / "notes.txt").write_bytes(f"token {token}\n".encode("utf-16"))
    commit_all(repo, "Notes", hooks=False)
    (repo / "notes.txt").unlink()
    commit_all(repo, "Remove the notes", hooks=False)
    refused = publish(repo, "--remote", remote)
    assert_one_line_error(refused, "hold 2 problem(s)", "nothing was pushed")  # binary outside LFS, token
    assert "llava-vit guard: notes.txt: holds a Hugging Face token (hf_...) in UTF-16-LE text" in refused.stderr
    assert token not in refused.stderr + refused.stdout
    assert remote_head(remote) == good


def test_rejected_push_reports_gits_reason(repo: Path, tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote.git"
    remote = bare_remote(remote_dir)
    hook = remote_dir / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are frozen for the release' >&2\nexit 1\n")
    hook.chmod(0o755)
    refused = publish(repo, "--remote", remote)
    assert_one_line_error(refused, "was rejected", "pushes are frozen for the release")
    assert remote_head(remote) is None


def test_remote_with_other_history_is_not_overwritten(repo: Path, tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "remote.git")
    other = tmp_path / "other"
    shutil.copytree(repo, other, symlinks=True)
    (other / "README.md").write_text("someone else's card\n")
    other_commit = commit_all(other, "Someone else's commit", hooks=False)
    git(other, "push", "-q", "--no-verify", remote, "main")
    (repo / "README.md").write_text("my card\n")
    commit_all(repo, "My commit", hooks=False)
    with pytest.raises(LlavaViTError, match="not in your history.*git pull"):
        publish_repo(repo, remote=remote)
    assert remote_head(remote) == other_commit


def test_refuses_uncommitted_changes_and_non_repos(repo: Path, tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "remote.git")
    (repo / "README.md").write_text("an edit not committed yet\n")
    with pytest.raises(LlavaViTError, match=r"uncommitted changes .*README\.md.*commit them first"):
        publish_repo(repo, remote=remote)
    assert remote_head(remote) is None

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(LlavaViTError, match="is not a git repository"):
        publish_repo(plain, remote=remote)


def test_unreachable_hub_fails_in_one_line_without_leaking_credentials(repo: Path, tmp_path: Path) -> None:
    port = free_port()
    git(repo, "remote", "set-url", "origin", f"https://someone:s3cret-in-url@127.0.0.1:{port}/org/my-vit")
    env = {"HF_ENDPOINT": f"https://127.0.0.1:{port}", "HF_TOKEN": "hf_dummy_token", "HF_HOME": str(tmp_path / "hf")}
    result = publish(repo, env=env)
    assert_one_line_error(result, f"cannot reach https://127.0.0.1:{port}")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert "s3cret-in-url" not in result.stdout + result.stderr
    assert "hf_dummy_token" not in result.stdout + result.stderr
    assert git(repo, "for-each-ref", "refs/remotes") == ""


def test_hub_remote_without_token_says_how_to_log_in(repo: Path, tmp_path: Path) -> None:
    port = free_port()
    git(repo, "remote", "set-url", "origin", f"https://127.0.0.1:{port}/org/my-vit")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")}
    env.update(HF_ENDPOINT=f"https://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run(
        [sys.executable, "-m", "llava_vit", "publish", str(repo)], capture_output=True, text=True, env=env
    )
    assert_one_line_error(result, "no Hugging Face token", "HF_TOKEN", "hf auth login")
