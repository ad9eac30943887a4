"""`llava-vit audit`: an allowlist verdict, at the pinned commit, on everything a repo could run."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from template_repos import git

import llava_vit
from llava_vit.cli import main
from llava_vit.repo_contract import AUTO_MAP, CODE_FILES, canonical_source, known_releases, sha256_text
from llava_vit.repo_files import write_code_files


def audit(target: Path | str, capsys, *extra: str) -> tuple[int, str]:
    code = main(["audit", str(target), *extra])
    return code, capsys.readouterr().out


def commit(repo: Path, env: dict[str, str], message: str = "change") -> str:
    """Commit everything without the hooks (what a hostile author does) and return the commit."""
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "--no-verify", "-m", message)
    return git(repo, env, "rev-parse", "HEAD").stdout.strip()


def test_release_table_knows_the_installed_code():
    """Fails until scripts/record_release.py is run after changing a code file."""
    recorded = known_releases()[llava_vit.__version__]
    assert recorded == {name: sha256_text(canonical_source(name)) for name in CODE_FILES}


def test_new_repo_passes_at_head_and_names_the_commit_to_pin(tiny_repo, env, capsys):
    head = git(tiny_repo, env, "rev-parse", "HEAD").stdout.strip()
    code, out = audit(tiny_repo, capsys)
    assert code == 0, out
    assert out.startswith(f"audit of {tiny_repo} at commit {head}\n")
    assert f"modeling_llava_vit.py: identical to llava-vit {llava_vit.__version__}" in out
    assert "example_usage.py: identical to the llava-vit" in out and "template's rendering" in out
    assert "model.safetensors" in out and "weights (safetensors: data only)" in out
    assert out.splitlines()[-1].endswith(f'revision="{head}")')


def test_the_working_tree_is_not_what_is_judged(tiny_repo, env, capsys):
    """An edit that is not committed does not change the verdict on HEAD; a committed one does."""
    modeling = tiny_repo / "modeling_llava_vit.py"
    modeling.write_text(modeling.read_text() + "\nimport subprocess\nsubprocess.run(['curl', 'x'])\neval('1')\n")
    code, out = audit(tiny_repo, capsys)
    assert code == 0, out
    assert "uncommitted changes: they are NOT judged" in out
    commit(tiny_repo, env)
    code, out = audit(tiny_repo, capsys)
    assert code == 1
    assert "modeling_llava_vit.py: MODIFIED: matches no llava-vit release (header claims llava-vit" in out
    assert "edited by hand" in out and "+subprocess.run(['curl', 'x'])" in out
    assert "imports subprocess (runs programs)" in out and "calls eval (evaluates a string as code)" in out
    assert "an explanation, never a reason to trust it" in out
    assert "verdict: NOT an unmodified llava-vit release" in out


def test_any_other_python_file_fails_even_when_it_looks_harmless(tiny_repo, env, capsys):
    """A denylist scan would pass these: an allowlist does not."""
    (tiny_repo / "helper.py").write_text("import torch\n")
    (tiny_repo / "sub").mkdir()
    (tiny_repo / "sub" / "modeling_llava_vit.py").write_text((tiny_repo / "modeling_llava_vit.py").read_text())
    example = tiny_repo / "example_usage.py"
    example.write_text(example.read_text() + "\ngetattr(__builtins__, 'ev' + 'al')('1')\n")
    commit(tiny_repo, env)
    code, out = audit(tiny_repo, capsys)
    assert code == 1
    assert "helper.py: Python file that is not llava-vit release code" in out
    assert "sub/modeling_llava_vit.py: Python file that is not llava-vit release code" in out
    assert "example_usage.py: differs from what the llava-vit template renders" in out
    assert "+getattr(__builtins__, 'ev' + 'al')('1')" in out


def test_auto_maps_custom_pipelines_and_remote_chains_in_any_json(tiny_repo, env, capsys):
    config = json.loads((tiny_repo / "config.json").read_text())
    config["custom_pipelines"] = {"x": {"impl": "pipe.P"}}
    (tiny_repo / "config.json").write_text(json.dumps(config))
    (tiny_repo / "preprocessor_config.json").write_text(json.dumps({"auto_map": {"AutoImageProcessor": "evil.P"}}))
    (tiny_repo / "tok").mkdir()
    (tiny_repo / "tok" / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["other/repo--tok.T", None]}, "trust_remote_code": True})
    )
    commit(tiny_repo, env)
    code, out = audit(tiny_repo, capsys)
    assert code == 1
    assert "config.json: custom_pipelines: custom pipelines run the repo's code" in out
    assert "preprocessor_config.json: auto_map {'AutoImageProcessor': 'evil.P'} makes transformers import" in out
    assert "tok/tokenizer_config.json: auto_map names code in another repo (other/repo--tok.T)" in out
    assert "tok/tokenizer_config.json: trust_remote_code: asks for trust_remote_code" in out


def test_config_auto_map_must_be_exactly_the_contracts(tiny_repo, env, capsys):
    config = json.loads((tiny_repo / "config.json").read_text())
    (tiny_repo / "config.json").write_text(json.dumps({**config, "auto_map": {**AUTO_MAP, "AutoModel": "a/b--m.M"}}))
    commit(tiny_repo, env)
    code, out = audit(tiny_repo, capsys)
    assert code == 1
    assert "config.json: auto_map is {" in out and "'a/b--m.M'" in out


@pytest.mark.parametrize("name", ["weights.pth.tar", "model.ckpt", "MODEL.PTH", "state.joblib", "noext"])
def test_pickles_are_found_by_content_whatever_the_name(tmp_path, capsys, name):
    write_code_files(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_vit", "auto_map": AUTO_MAP}))
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    payload = buffer.getvalue() if name != "state.joblib" else pickle.dumps({"w": [1, 2]}, protocol=0)
    (tmp_path / name).write_bytes(payload)
    code, out = audit(tmp_path, capsys)
    assert code == 1
    assert f"{name}: pickle (recognised by content)" in out


def test_not_a_folder_or_repo_id(tmp_path, capsys):
    code = main(["audit", str(tmp_path / "missing" / "deep" / "path")])
    assert code == 2
    assert "is neither a folder nor a Hub repo id" in capsys.readouterr().err


def _push(repo: Path, hub, repo_id: str, env: dict[str, str]) -> None:
    hub.create_repo(repo_id)
    git(repo, env, "remote", "add", repo_id.replace("/", "-"), hub.remote_url(repo_id))
    git(repo, env, "lfs", "push", "--all", repo_id.replace("/", "-"))  # the hooks' checks are skipped, not LFS
    git(repo, env, "push", "-q", "--no-verify", repo_id.replace("/", "-"), "HEAD:main")


@pytest.mark.slow
def test_hub_audit_downloads_no_weights_and_sniffs_lfs_pickles(tiny_repo, env, local_hub, tmp_path):
    """By repo id: listed at the resolved commit, code/JSON downloaded, binaries read by HTTP range only."""
    _push(tiny_repo, local_hub, "audit-org/clean-vit", env)
    home = tmp_path / "audit-home"
    (home / "tmp").mkdir(parents=True)
    run_env = {**env, "HF_ENDPOINT": local_hub.endpoint, "HF_HOME": str(home / "hf"), "TMPDIR": str(home / "tmp")}
    run_env.pop("HF_HUB_OFFLINE", None)
    argv = [sys.executable, "-m", "llava_vit", "audit", "audit-org/clean-vit"]
    result = subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "example_usage.py: identical to the llava-vit" in result.stdout
    assert "model.safetensors: content not available" not in result.stdout  # its head was read by range
    assert not [p for p in home.rglob("*.safetensors")], "audit downloaded weights"

    git(tiny_repo, env, "lfs", "track", "*.ckpt")
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    (tiny_repo / "extra.ckpt").write_bytes(buffer.getvalue())
    commit(tiny_repo, env)
    assert git(tiny_repo, env, "lfs", "ls-files", "--name-only").stdout.split() == ["extra.ckpt", "model.safetensors"]
    _push(tiny_repo, local_hub, "audit-org/pickled-vit", env)
    result = subprocess.run(
        [*argv[:-1], "audit-org/pickled-vit"], capture_output=True, text=True, env=run_env, timeout=300
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "extra.ckpt: pickle (recognised by content)" in result.stdout
    assert not [p for p in home.rglob("*.safetensors")], "audit downloaded weights"


def test_an_lfs_pointer_names_an_object_id_or_nothing():
    """A hostile pointer cannot send audit or guard to a path outside the LFS object store."""
    from llava_vit.repo_contract import parse_lfs_pointer

    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 9\n"
    assert parse_lfs_pointer(pointer.format("ab" * 32).encode()) == ("ab" * 32, 9)
    assert parse_lfs_pointer(pointer.format("../../../../etc/passwd").encode()) is None
    assert parse_lfs_pointer(pointer.format("AB" * 32).encode()) is None
