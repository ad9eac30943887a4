"""`llava-vit upload` (no git): a model folder, checked in full, then uploaded over the Hub's HTTP API like
`hf upload` (--revision, --create-pr, --commit-message); a failed check leaves nothing on the Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llava_vit.hub.local_hub import LocalHub, free_port

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it


def upload(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")}
    base.pop("HF_HUB_OFFLINE", None)
    run_env = {**base, "HF_HOME": str(tmp_path / "hf"), "TMPDIR": str(scratch), **env}
    return subprocess.run(
        [sys.executable, "-m", "llava_vit", "upload", *args], capture_output=True, text=True, env=run_env, timeout=600
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("llava-vit upload: error: "), result.stderr
    return lines[-1]


def ours_left(tmp_path: Path) -> list[Path]:
    """Temporary folders of llava-vit's left in the run's TMPDIR (torch's own caches, such as inductor's, are not)."""
    return [path for path in (tmp_path / "tmp").iterdir() if path.name.startswith("llava-vit")]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_a_model_repo_folder_is_checked_then_uploaded(local_hub: LocalHub, tiny_repo: Path, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy"}
    (tiny_repo / "__pycache__").mkdir(exist_ok=True)
    (tiny_repo / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    done = upload(tmp_path, str(tiny_repo), "--repo-id", "acme/uploaded-vit", "--commit-message", "First", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    hub_repo = local_hub.repo_path("acme/uploaded-vit")
    commit = git(hub_repo, "rev-parse", "main")
    assert f"acme/uploaded-vit at {commit}" in done.stdout and f'revision="{commit}"' in done.stdout
    assert git(hub_repo, "log", "-1", "--format=%s", "main") == "First"
    uploaded = set(git(hub_repo, "ls-tree", "-r", "--name-only", "main").splitlines())
    assert uploaded == set(git(tiny_repo, "ls-files").splitlines())  # no .git, no __pycache__
    for name in uploaded:  # the weights' bytes, not their LFS pointer
        shown = subprocess.run(["git", "show", f"main:{name}"], cwd=hub_repo, check=True, capture_output=True)
        assert shown.stdout == (tiny_repo / name).read_bytes(), name


def test_revision_and_create_pr_leave_main_alone(local_hub: LocalHub, tiny_repo: Path, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy"}
    assert upload(tmp_path, str(tiny_repo), "--repo-id", "acme/branched-vit", env=env).returncode == 0
    hub_repo = local_hub.repo_path("acme/branched-vit")
    commit = git(hub_repo, "rev-parse", "main")
    (tiny_repo / "README.md").write_text((tiny_repo / "README.md").read_text() + "\nMore words.\n")
    branch = upload(tmp_path, str(tiny_repo), "--repo-id", "acme/branched-vit", "--revision", "card", env=env)
    assert branch.returncode == 0, branch.stderr
    assert git(hub_repo, "rev-parse", "main") == commit  # main untouched, the branch came from it
    assert git(hub_repo, "rev-parse", "card^") == commit
    assert git(hub_repo, "show", "card:README.md").endswith("More words.")

    pr = upload(tmp_path, str(tiny_repo), "--repo-id", "acme/branched-vit", "--create-pr", env=env)
    assert pr.returncode == 0, pr.stderr
    assert "discussions/1" in pr.stdout and git(hub_repo, "rev-parse", "main") == commit
    assert git(hub_repo, "show", "refs/pr/1:README.md").endswith("More words.")


def test_a_failed_check_leaves_nothing_on_the_hub(local_hub: LocalHub, tiny_repo: Path, tmp_path: Path) -> None:
    modeling = tiny_repo / "modeling_llava_vit.py"
    modeling.write_text(modeling.read_text() + "\n# tweak\n")
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy"}
    result = upload(tmp_path, str(tiny_repo), "--repo-id", "acme/never-vit", env=env)
    error = one_line_error(result, 1)
    assert "full check failed" in error and "nothing was uploaded" in error
    assert "llava-vit upload: modeling_llava_vit.py" in result.stderr
    assert not local_hub.repo_path("acme/never-vit").exists()


def test_the_one_shot_preset_path_renders_checks_and_uploads(local_hub: LocalHub, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy"}
    result = upload(tmp_path, "--preset", "small", "--repo-id", "acme/preset-vit", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    files = git(local_hub.repo_path("acme/preset-vit"), "ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"README.md", "config.json", "model.safetensors", "modeling_llava_vit.py"} <= set(files)
    assert ours_left(tmp_path) == []


def test_unreachable_hub_fails_in_one_line_and_leaves_no_temp_folder(tmp_path: Path) -> None:
    port = free_port()
    env = {"HF_ENDPOINT": f"https://127.0.0.1:{port}", "HF_TOKEN": "hf_dummy_token"}
    result = upload(tmp_path, "--preset", "small", "--repo-id", "org/my-vit", env=env)
    error = one_line_error(result, 1)
    assert f"cannot reach https://127.0.0.1:{port}" in error
    assert "hf_dummy_token" not in result.stdout + result.stderr
    assert ours_left(tmp_path) == []


def test_no_token_is_refused_before_any_work(tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": f"https://127.0.0.1:{free_port()}"}
    no_token = one_line_error(upload(tmp_path, "--preset", "small", "--repo-id", "org/my-vit", env=env), 1)
    assert "no Hugging Face token" in no_token and "hf auth login" in no_token
    assert ours_left(tmp_path) == []


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    env = {"HF_TOKEN": "hf_dummy_token"}
    cases = {
        ("--preset", "enormous", "--repo-id", "org/my-vit"): "unknown preset 'enormous'",
        ("--preset", "small", "--weights", "nope.pth", "--repo-id", "org/my-vit"): "nope.pth does not exist",
        ("--preset", "small", "--repo-id", "no-slash"): "is not a repo id",
        (str(tmp_path), "--preset", "small", "--repo-id", "org/my-vit"): "not both",
        ("--repo-id", "org/my-vit"): "give either FOLDER",
        (str(tmp_path / "missing"), "--repo-id", "org/my-vit"): "is not a folder",
        (str(tmp_path), "--weights", "w.pth", "--repo-id", "org/my-vit"): "--weights goes with --preset",
        (str(tmp_path), "--create-pr", "--revision", "dev", "--repo-id", "org/my-vit"): "leave out --revision",
    }
    for args, message in cases.items():
        assert message in one_line_error(upload(tmp_path, *args, env=env), 2), args


def test_only_what_git_would_track_is_sent(local_hub: LocalHub, tiny_repo: Path, tmp_path: Path) -> None:
    """.gitignore is honoured, and secrets, environments, caches and temporaries are never sent."""
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy"}
    secret = "hf_" + "Kq4" * 12
    junk = {
        ".env": f"HF_TOKEN={secret}\n",
        ".env.local": f"HF_TOKEN={secret}\n",
        "venv/lib/site.py": "import os\n",
        ".cache/huggingface/x.lock": "",
        "notes.tmp": "scratch\n",
        "private/key.txt": f"{secret}\n",
        "sub/.DS_Store": "x",
    }
    for name, text in junk.items():
        (tiny_repo / name).parent.mkdir(parents=True, exist_ok=True)
        (tiny_repo / name).write_text(text)
    (tiny_repo / ".gitignore").write_text((tiny_repo / ".gitignore").read_text() + "private/\n")
    done = upload(tmp_path, str(tiny_repo), "--repo-id", "acme/tracked-only-vit", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    uploaded = set(git(local_hub.repo_path("acme/tracked-only-vit"), "ls-tree", "-r", "--name-only", "main").split())
    assert uploaded == set(git(tiny_repo, "ls-files").splitlines()), uploaded ^ set(junk)
    assert secret not in done.stdout + done.stderr


def test_the_guard_stops_an_upload(local_hub: LocalHub, tiny_repo: Path, tmp_path: Path) -> None:
    """What would be sent goes through the same guard as a publish: a pickle or a token stops everything."""
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy"}
    (tiny_repo / "extra.bin").write_bytes(b"\x80\x04\x95" + bytes(8) + b".")
    (tiny_repo / "notes.md").write_text("token: hf_" + "Kq4" * 12 + "\n")
    (tmp_path / "ssh-key").write_text("a private key\n")
    (tiny_repo / "key.txt").symlink_to(tmp_path / "ssh-key")
    done = upload(tmp_path, str(tiny_repo), "--repo-id", "acme/guarded-vit", env=env)
    assert done.returncode == 1
    assert (
        "extra.bin: pickle (recognised by content)" in done.stderr and "notes.md:1: looks like a Hugging" in done.stderr
    )
    assert not local_hub.repo_path("acme/guarded-vit").exists()
