"""`llava-vit audit`: judging a repo's code without running it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import save_file

import llava_vit
from llava_vit.cli import main
from llava_vit.repo_contract import (
    AUTO_MAP,
    CODE_FILES,
    canonical_source,
    known_releases,
    processor_config,
    sha256_text,
)
from llava_vit.repo_files import write_code_files

LFS_RULES = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    import torch

    write_code_files(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_vit", "auto_map": AUTO_MAP}))
    (tmp_path / "processor_config.json").write_text(json.dumps(processor_config(14)))
    (tmp_path / ".gitattributes").write_text(LFS_RULES)
    save_file({"w": torch.zeros(4)}, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "example_usage.py").write_text("import torch\nprint(torch.zeros(1))\n")
    return tmp_path


def audit(target: Path, capsys) -> tuple[int, str]:
    code = main(["audit", str(target)])
    return code, capsys.readouterr().out


def test_release_table_knows_the_installed_code():
    """Fails until scripts/record_release.py is run after changing a code file."""
    recorded = known_releases()[llava_vit.__version__]
    assert recorded == {name: sha256_text(canonical_source(name)) for name in CODE_FILES}


def test_unmodified_release_passes_and_lists_roles(repo, capsys):
    code, out = audit(repo, capsys)
    assert code == 0, out
    assert f"modeling_llava_vit.py: identical to llava-vit {llava_vit.__version__}" in out
    assert "model.safetensors" in out and "weights (safetensors: data only)" in out
    assert "example_usage.py" in out and "script (not run by loading" in out
    assert "verdict: unmodified llava-vit release code" in out


def test_modified_code_is_flagged_with_diff_and_risky_calls(repo, capsys):
    modeling = repo / "modeling_llava_vit.py"
    modeling.write_text(modeling.read_text() + "\nimport subprocess\nsubprocess.run(['curl', 'x'])\neval('1')\n")
    code, out = audit(repo, capsys)
    assert code == 1
    assert "modeling_llava_vit.py: MODIFIED: matches no llava-vit release (header claims llava-vit" in out
    assert "imports subprocess (runs programs)" in out
    assert "calls subprocess.run" in out and "calls eval (evaluates a string as code)" in out
    assert "+subprocess.run(['curl', 'x'])" in out
    assert "verdict: NOT an unmodified llava-vit release" in out


def test_pickles_and_binaries_outside_lfs(repo, capsys):
    (repo / "pytorch_model.bin").write_bytes(b"\x80\x04junk\0")
    (repo / "weights.npy").write_bytes(b"\x93NUMPY\0\0")
    (repo / "image.png").write_bytes(b"\x89PNG\0\0")
    code, out = audit(repo, capsys)
    assert code == 1
    assert "pytorch_model.bin: pickle file: loading it can run arbitrary code" in out
    assert "weights.npy: binary or > 10 MB but not tracked by LFS" in out
    assert "image.png: binary" not in out


def test_not_a_folder_or_repo_id(tmp_path, capsys):
    code = main(["audit", str(tmp_path / "missing" / "deep" / "path")])
    assert code == 2
    assert "is neither a folder nor a Hub repo id" in capsys.readouterr().err


def test_code_reached_through_auto_map_or_repo_imports_is_flagged(repo, capsys):
    """Release-identical code files are not enough: auto_map and relative imports decide what else runs."""
    (repo / "evil.py").write_text("class Model:\n    pass\n")
    config = json.loads((repo / "config.json").read_text())
    (repo / "config.json").write_text(json.dumps({**config, "auto_map": {**AUTO_MAP, "AutoModel": "evil.Model"}}))
    (repo / "preprocessor_config.json").write_text(json.dumps({"auto_map": {"AutoImageProcessor": "evil.P"}}))
    (repo / "processor_config.json").write_text(json.dumps({"auto_map": {"AutoProcessor": "evil.P"}}))
    (repo / "helper.py").write_text("from .evil import Model\n")
    code, out = audit(repo, capsys)
    assert code == 1
    assert "config.json: auto_map is {" in out and "'evil.Model'" in out
    assert "preprocessor_config.json: auto_map {'AutoImageProcessor': 'evil.P'} makes transformers import" in out
    assert "processor_config.json: auto_map is {'AutoProcessor': 'evil.P'}, not llava-vit's" in out
    assert "helper.py:1: imports evil from the repo (runs that code)" in out
