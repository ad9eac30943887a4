"""transformers' own routes (`save_pretrained`, `push_to_hub`) write a complete llava-vit model repo: the code files
under their provenance header, byte for byte a release, `auto_map`, the processor config for the image size,
safetensors shards. From the package and from a model loaded with trust_remote_code (no llava_vit installed),
to a folder and to a Hub (the local one), checked by `llava-vit verify` in a clean environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from template_repos import TINY_ANSWERS

from llava_vit import LlavaViTConfig, LlavaViTModel
from llava_vit.hub.local_hub import LocalHub
from llava_vit.model.configuration_llava_vit import image_processor_fields
from llava_vit.repo_contract import (
    AUTO_MAP,
    CODE_FILES,
    CONFIG_FILE,
    PROCESSOR_FILE,
    WEIGHTS_INDEX,
    parse_index,
    preprocessor_config,
    render_code_file,
    shard_file_names,
)

TINY = {key: value for key, value in TINY_ANSWERS.items() if key != "preset"}


def tiny_model() -> LlavaViTModel:
    return LlavaViTModel(LlavaViTConfig(**TINY)).eval()


def assert_release_repo(folder: Path, image_size: int = TINY["image_size"]) -> None:
    """The files `llava-vit export` would write, whichever route wrote them."""
    for name in CODE_FILES:
        assert (folder / name).read_bytes() == render_code_file(name).encode(), f"{name} is not the release's bytes"
    assert json.loads((folder / CONFIG_FILE).read_text())["auto_map"] == AUTO_MAP
    assert json.loads((folder / PROCESSOR_FILE).read_text()) == preprocessor_config(image_size)


def verify_passes(target: str, python: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llava_vit", "verify", target, "--python", str(python)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("12/12 checks passed"), result.stdout


def run_clean(python: Path, script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `script` in the consumer's environment (torch + transformers, no llava_vit)."""
    run_env = {**os.environ, **(env or {})}
    run_env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run(
        [str(python), "-I", "-c", script, *args], capture_output=True, text=True, env=run_env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("image_size", [32, 224, 448])
def test_the_shipped_processor_fields_are_the_repo_contracts(image_size: int) -> None:
    """The shipped configuration file cannot import the package, so it spells the processor config out again."""
    assert {"image_processor_type": "CLIPImageProcessor", **image_processor_fields(image_size)} == (
        preprocessor_config(image_size)
    )


@pytest.mark.slow  # end-to-end: a clean interpreter, the local Hub
def test_save_pretrained_from_the_package_writes_a_release(tmp_path: Path, clean_python: Path) -> None:
    model = tiny_model()
    model.save_pretrained(tmp_path / "single")
    assert_release_repo(tmp_path / "single")
    assert sorted(path.name for path in (tmp_path / "single").glob("*.safetensors")) == shard_file_names(1)
    verify_passes(str(tmp_path / "single"), clean_python)

    model.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    assert_release_repo(tmp_path / "sharded")
    shards = sorted(set(parse_index((tmp_path / "sharded" / WEIGHTS_INDEX).read_text()).values()))
    assert len(shards) > 1 and shards == shard_file_names(len(shards))
    verify_passes(str(tmp_path / "sharded"), clean_python)


REMOTE_SAVE = """
import sys
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
model.save_pretrained(sys.argv[2])
"""


@pytest.mark.slow  # end-to-end: a clean interpreter, the local Hub
def test_a_model_loaded_with_trust_remote_code_saves_the_same_repo(tmp_path: Path, clean_python: Path) -> None:
    tiny_model().save_pretrained(tmp_path / "first")
    run_clean(clean_python, REMOTE_SAVE, str(tmp_path / "first"), str(tmp_path / "again"))
    assert_release_repo(tmp_path / "again")
    verify_passes(str(tmp_path / "again"), clean_python)


PACKAGE_PUSH = """
import sys
from llava_vit import LlavaViTConfig, LlavaViTModel
model = LlavaViTModel(LlavaViTConfig(**{fields}))
print(model.push_to_hub(sys.argv[1], commit_message="Push from the package").oid)
model.config.save_pretrained(sys.argv[2], push_to_hub=True, repo_id=sys.argv[3])
"""
REMOTE_PUSH = """
import sys
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
model.save_pretrained(sys.argv[3], push_to_hub=True, repo_id=sys.argv[2])
"""


@pytest.mark.slow  # end-to-end: a clean interpreter, the local Hub
def test_push_to_hub_from_the_package_and_from_remote_code(
    local_hub: LocalHub, clean_python: Path, tmp_path: Path
) -> None:
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy", "HF_HOME": str(tmp_path / "hf")}
    pushed = subprocess.run(
        [sys.executable, "-c", PACKAGE_PUSH.format(fields=TINY), "acme/pushed-vit", str(tmp_path), "acme/config-only"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    repo = local_hub.repo_path("acme/pushed-vit")
    assert (
        subprocess.run(["git", "rev-parse", "main"], cwd=repo, capture_output=True, text=True).stdout.strip()
        == (pushed.stdout.split()[-1])
    )
    assert_release_repo(repo)
    verify_passes("acme/pushed-vit", clean_python, env)
    # A config pushed alone: its code file and the processor config are complete before the upload.
    config_only = local_hub.repo_path("acme/config-only")
    configuration = "configuration_llava_vit.py"
    assert (config_only / configuration).read_bytes() == render_code_file(configuration).encode()
    assert json.loads((config_only / PROCESSOR_FILE).read_text()) == preprocessor_config(TINY["image_size"])

    # A user without llava-vit: load by repo id (transformers prefixes auto_map with it), save and push elsewhere.
    run_clean(clean_python, REMOTE_PUSH, "acme/pushed-vit", "acme/re-pushed-vit", str(tmp_path / "out"), env=env)
    assert_release_repo(local_hub.repo_path("acme/re-pushed-vit"))
    verify_passes("acme/re-pushed-vit", clean_python, env)
