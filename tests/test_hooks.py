"""The model repo's hooks under real git, git-lfs and pre-commit, plus the check's own findings."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from template_repos import git, run

import llava_vit
from llava_vit.checks.check import fast_problems, full_problems
from llava_vit.checks.guard import file_problems
from llava_vit.git_lfs import lfs_push_hook_problems
from llava_vit.repo_contract import judge_code, render_code_file

PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


@pytest.fixture
def repo(tiny_repo: Path) -> Path:
    return tiny_repo


def test_edited_code_and_auto_map_are_restored(repo: Path, env: dict[str, str]) -> None:
    modeling, config = repo / "modeling_llava_vit.py", repo / "config.json"
    original_modeling, original_config = modeling.read_text(), config.read_text()
    modeling.write_text(original_modeling + "\n# a hand edit\n")
    data = json.loads(original_config)
    del data["auto_map"]
    config.write_text(json.dumps(data, indent=2))
    git(repo, env, "add", "-A")

    result = git(repo, env, "commit", "-m", "hand edits", ok=False)
    assert "llava-vit sync: rewrote modeling_llava_vit.py" in result.stderr + result.stdout
    assert "llava-vit sync: rewrote config.json" in result.stderr + result.stdout
    assert modeling.read_text() == original_modeling
    assert json.loads(config.read_text())["auto_map"] == json.loads(original_config)["auto_map"]
    assert git(repo, env, "rev-list", "--count", "HEAD").stdout.strip() == "1"
    # The working tree is back to the generated files; staging them leaves nothing to commit.
    assert git(repo, env, "diff", "--name-only", "HEAD").stdout == ""


def test_guard_blocks_big_files_pickles_and_tokens(repo: Path, env: dict[str, str]) -> None:
    with (repo / "frames.raw").open("wb") as handle:
        handle.write(os.urandom(20 * 2**20))
    (repo / "weights.pt").write_bytes(b"\x80\x04\x95pickle")
    token = "hf_" + "Ab1" * 12
    (repo / "notes.md").write_text(f"# notes\n\nupload with {token}\n")
    git(repo, env, "add", "-A")

    result = git(repo, env, "commit", "-m", "bad files", ok=False)
    output = result.stdout + result.stderr
    lines = sorted(line.removeprefix("llava-vit guard: ") for line in output.splitlines() if "llava-vit guard:" in line)
    assert len(lines) == 3, lines
    assert lines[0].startswith("frames.raw: 20.0 MB outside git-lfs") and "git lfs track" in lines[0]
    assert lines[1].startswith("notes.md:3: looks like a Hugging Face token") and "HF_TOKEN" in lines[1]
    assert (
        lines[2].startswith("weights.pt: pickle (recognised by content) is not published") and "safetensors" in lines[2]
    )
    assert token not in result.stdout + result.stderr
    assert git(repo, env, "rev-list", "--count", "HEAD").stdout.strip() == "1"


@pytest.mark.slow
def test_push_guards_every_commit_that_skipped_the_hooks(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """`git commit --no-verify` skips the pre-commit guard; the pre-push guard reads every pushed commit."""
    remote = tmp_path / "hub.git"
    git(tmp_path, env, "init", "-q", "--bare", str(remote))
    git(repo, env, "remote", "add", "hub", remote.as_uri())
    git(repo, env, "push", "-q", "--no-verify", "hub", "main")
    token = "hf_" + "Zq9" * 12
    (repo / "notes-utf16.txt").write_bytes(f"token: {token}\n".encode("utf-16"))
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "--no-verify", "-m", "utf-16 notes")
    (repo / "notes-utf16.txt").unlink()
    (repo / "-h").write_bytes(b"\x80\x04\x95pickle")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "--no-verify", "-m", f"remove them; pushed with {token}")
    result = git(repo, env, "push", "hub", "main", ok=False)
    output = result.stdout + result.stderr
    assert "notes-utf16.txt: holds a Hugging Face token (hf_...) in UTF-16-LE text" in output
    assert "-h: pickle (recognised by content) is not published" in output
    assert " message:1: looks like a Hugging Face token" in output
    assert token not in output
    assert git(tmp_path, env, "--git-dir", str(remote), "rev-list", "--count", "main").stdout.strip() == "1"
    guard = [sys.executable, "-m", "llava_vit", "guard"]
    assert "-h: pickle" in run([*guard, "--", "-h"], cwd=repo, env=env, ok=False).stderr
    assert run([*guard, "--range", "HEAD~1..HEAD"], cwd=repo, env=env, ok=False).stderr.count("llava-vit guard:") == 3


@pytest.mark.slow
def test_first_push_guards_the_whole_new_history(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """A new branch whose history reaches the root commit: pre-commit passes no FROM..TO, the guard reads
    every commit the remote lacks."""
    remote = tmp_path / "hub.git"
    git(tmp_path, env, "init", "-q", "--bare", str(remote))
    git(repo, env, "remote", "add", "hub", remote.as_uri())
    (repo / "notes.md").write_text("hf_" + "Wm2" * 12 + "\n")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "--no-verify", "-m", "notes")
    result = git(repo, env, "push", "hub", "main", ok=False)
    assert "llava-vit guard: notes.md:1: looks like a Hugging Face token" in result.stdout + result.stderr
    assert git(tmp_path, env, "--git-dir", str(remote), "branch", "--list").stdout == ""


def test_guard_blocks_small_binaries_outside_lfs_only(repo: Path, env: dict[str, str], monkeypatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", env["GIT_CONFIG_GLOBAL"])
    (repo / "plot.dat").write_bytes(b"\x00\x01binary")
    (repo / "sample.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    (repo / "notes.txt").write_text("x" * 100)
    problems = file_problems(repo, ["plot.dat", "sample.png", "notes.txt", "model.safetensors"])
    assert len(problems) == 1 and problems[0].startswith("plot.dat: binary file outside git-lfs")


def test_new_canonical_code_is_synced_into_the_repo(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """A newer llava_vit (a copy whose modeling body differs, first on PYTHONPATH) rewrites the repo's code."""
    site = tmp_path / "newer-llava-vit"
    shutil.copytree(Path(llava_vit.__file__).parent, site / "llava_vit", ignore=shutil.ignore_patterns("__pycache__"))
    newer_modeling = site / "llava_vit" / "model" / "modeling_llava_vit.py"
    newer_body = newer_modeling.read_text() + "\n# a fix from the next release\n"
    newer_modeling.write_text(newer_body)
    newer = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))}

    result = run([*PRE_COMMIT, "run", "llava-vit-sync", "--all-files"], cwd=repo, env=newer, ok=False)
    assert "rewrote modeling_llava_vit.py" in result.stdout + result.stderr
    assert (repo / "modeling_llava_vit.py").read_text() == render_code_file("modeling_llava_vit.py", newer_body)
    verdict = judge_code("modeling_llava_vit.py", (repo / "modeling_llava_vit.py").read_text())
    assert verdict.body_intact and not verdict.installed  # intact, but from the newer release
    run([*PRE_COMMIT, "run", "llava-vit-sync", "--all-files"], cwd=repo, env=newer)


@pytest.mark.slow  # a real load in a fresh interpreter (verify)
def test_push_runs_the_full_check(repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    remote = tmp_path / "hub.git"
    git(tmp_path, env, "init", "-q", "--bare", str(remote))
    git(repo, env, "remote", "add", "hub", remote.as_uri())
    result = git(repo, env, "push", "-q", "hub", "main")
    assert "llava-vit: real load" in result.stdout + result.stderr
    oid = git(repo, env, "lfs", "ls-files", "--long").stdout.split()[0]
    assert (remote / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).is_file()

    # A clone that lost the weights' LFS object must not push.
    (repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).unlink()
    card = repo / "README.md"
    card.write_text(card.read_text() + "\nMore words.\n")
    git(repo, env, "commit", "-q", "--no-verify", "-am", "card")
    result = git(repo, env, "push", "hub", "main", ok=False)
    message = "llava-vit check: model.safetensors: its git-lfs object is not in this clone"
    assert message in result.stderr + result.stdout


@pytest.mark.slow  # a real load in a fresh interpreter (verify)
def test_full_check_runs_verify_and_needs_the_git_lfs_push_hook(repo: Path, env: dict[str, str], monkeypatch) -> None:
    for key in ("GIT_CONFIG_GLOBAL", "XDG_CACHE_HOME", "PATH"):
        monkeypatch.setenv(key, env[key])
    # NaN weights: every header, name and shape is right, only a real forward (verify) can tell.
    weights = repo / "model.safetensors"
    tensors = load_file(weights)
    tensors["layernorm_pre.weight"][0] = float("nan")
    save_file(tensors, weights, metadata={"format": "pt"})
    assert fast_problems(repo) == []
    problems = full_problems(repo)
    assert problems and all(problem.startswith("verify: ") for problem in problems), problems
    assert any("finite" in problem for problem in problems), problems

    assert lfs_push_hook_problems(repo) == []
    # `pre-commit install -f` (or installing pre-commit before git-lfs) drops git-lfs's hook from the chain.
    (repo / ".git" / "hooks" / "pre-push.legacy").unlink()
    (problem,) = lfs_push_hook_problems(repo)
    assert "publish LFS pointers without their objects" in problem and "git lfs install --local" in problem


def test_check_names_each_inconsistency(repo: Path, env: dict[str, str], monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    assert fast_problems(repo) == []
    config = json.loads((repo / "config.json").read_text())
    (repo / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3, "dtype": "bfloat16"}))
    processor = json.loads((repo / "preprocessor_config.json").read_text())
    processor["size"] = processor["crop_size"] = {"height": 64, "width": 64}  # 64x64, whichever the mode
    (repo / "preprocessor_config.json").write_text(json.dumps(processor))
    card = (repo / "README.md").read_text()
    (repo / "README.md").write_text(card.replace("pipeline_tag: image-feature-extraction", "pipeline_tag: x"))
    problems = fast_problems(repo)
    expected = [  # in the order of the table of repo files
        "weights: missing tensors encoder.layers.2.",
        "weights: stored as float32 but config.json declares dtype bfloat16",
        "preprocessor_config.json: outputs (64, 64), the model expects 32x32",
        "README.md: metadata pipeline_tag must be 'image-feature-extraction'",
    ]
    for start, problem in zip(expected, problems, strict=True):
        assert problem.startswith(start), (start, problems)
    # The repo's code is never run: what config.json means comes from the installed model code, so an edited
    # code file is named and the weights are still judged.
    configuration = repo / "configuration_llava_vit.py"
    configuration.write_text(configuration.read_text().split("\n", 1)[1])
    problems = fast_problems(repo)
    assert problems[0].startswith("configuration_llava_vit.py: no valid llava-vit provenance header"), problems
    assert any(problem.startswith("weights: missing tensors") for problem in problems), problems

    weights = repo / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size - 4)
    assert any("model.safetensors: is truncated" in problem for problem in fast_problems(repo))
    result = run([sys.executable, "-m", "llava_vit", "check", str(repo)], cwd=repo, env=env, ok=False)
    assert all(line.startswith("llava-vit check: ") for line in result.stderr.splitlines())
