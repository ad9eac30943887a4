"""The copier template end to end: real copier, git, git-lfs, pre-commit, and a clean consumer env."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from template_repos import PROJECT, TINY_ANSWERS, copier_copy, copy_repo, git, run

from llava_vit import LlavaViTConfig
from llava_vit.checks.check import card_metadata, fast_problems
from llava_vit.errors import LlavaViTError, UsageError
from llava_vit.export import export_model
from llava_vit.repo_contract import CODE_FILES, judge_code
from llava_vit.scaffold.new import render_repo, template_path

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it

REPO_FILES = {
    ".copier-answers.yml",
    ".gitattributes",
    ".gitignore",
    ".pre-commit-config.yaml",
    "README.md",
    "config.json",
    "configuration_llava_vit.py",
    "example_usage.py",
    "model.safetensors",
    "modeling_llava_vit.py",
    "preprocessor_config.json",
    "processing_llava_vit.py",
    "processor_config.json",
}


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """A git copy of this project's template, tagged v1.0.0 (copier update needs a tagged template)."""
    template = tmp_path_factory.mktemp("template") / "llava-vit-template"
    template.mkdir()
    shutil.copy(PROJECT / "copier.yml", template)
    shutil.copytree(PROJECT / "template", template / "template")
    git(template, env, "init", "-q", "-b", "main")
    git(template, env, "add", "-A")
    git(template, env, "commit", "-q", "-m", "v1")
    git(template, env, "tag", "v1.0.0")
    return template


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory, template_repo: Path, env: dict[str, str]) -> Path:
    dest = tmp_path_factory.mktemp("scaffold") / "tiny-vit"
    copier_copy(template_repo, dest, {"repo_id": "acme/tiny-vit", **TINY_ANSWERS}, env)
    return dest


def assert_scaffolded(repo: Path, env: dict[str, str], repo_id: str) -> None:
    tracked = set(git(repo, env, "ls-files").stdout.split())
    assert tracked == REPO_FILES
    assert git(repo, env, "branch", "--show-current").stdout.strip() == "main"
    assert git(repo, env, "rev-list", "--count", "HEAD").stdout.strip() == "1"
    assert git(repo, env, "status", "--porcelain").stdout == ""
    assert git(repo, env, "lfs", "ls-files", "--name-only").stdout.split() == ["model.safetensors"]
    assert git(repo, env, "remote", "get-url", "origin").stdout.strip() == f"https://huggingface.co/{repo_id}"
    hooks = repo / ".git" / "hooks"
    assert "pre-commit" in (hooks / "pre-commit").read_text()
    # git-lfs went first: pre-commit kept its hook as pre-push.legacy and chains to it.
    assert "git lfs pre-push" in (hooks / "pre-push.legacy").read_text()
    assert "pre-commit" in (hooks / "pre-push").read_text()
    assert all(judge_code(name, (repo / name).read_text()).installed for name in CODE_FILES)
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["repo_id"] == repo_id and answers["_src_path"]
    card = (repo / "README.md").read_text()
    metadata = card_metadata(card)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "image-feature-extraction"
    assert metadata["license"] == "apache-2.0" and "llava-vit" in metadata["tags"]
    for placeholder in ("{{", "}}", "{%", "TODO", "More Information Needed"):
        assert placeholder not in card
    for section in (
        "## Architecture",
        "### Image",
        "### Video",
        "### Codec-style token budget",
        "visible_indices",
        "patch_positions",
        "## Before `trust_remote_code=True`",
        f"llava-vit audit {repo_id}",
        "## Limitations",
        'pipeline("image-feature-extraction"',
        "tested with transformers 4.57 and 5.x",
    ):
        assert section in card
    assert "pip install llava-vit" not in card  # a model's users need transformers only
    assert ("The weights in this repo are random" in card) == (not answers.get("weights"))
    assert fast_problems(repo) == []


def test_custom_dimensions(tiny_repo: Path, env: dict[str, str]) -> None:
    assert_scaffolded(tiny_repo, env, "acme/tiny-vit")
    config = json.loads((tiny_repo / "config.json").read_text())
    for key, value in TINY_ANSWERS.items():
        if key != "preset":
            assert config[key] == value, key
    card = (tiny_repo / "README.md").read_text()
    assert "| Hidden size | 64 |" in card and "| Normalization | rms_norm |" in card
    assert "16 tokens per frame" in card
    result = run([sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=tiny_repo, env=env)
    assert result.stdout.count("Passed") == 3 and "Failed" not in result.stdout


def test_example_runs_offline_in_a_clean_env(tiny_repo: Path, clean_python: Path, tmp_path: Path, env) -> None:
    """On the generated picture and clip, and on a local image of another size and aspect ratio (resized to
    32x32); video frames come out at 224x224 (28x28 patches of 8), 8 frames on the 64-frame timeline."""
    image = tmp_path / "photo.png"
    Image.new("RGB", (50, 40), (200, 30, 90)).save(image)
    for args in ([], [str(image)]):
        result = run([str(clean_python), "example_usage.py", *args], cwd=tiny_repo, env=env)
        assert "image: last_hidden_state (1, 16, 64), pooler_output (1, 64)" in result.stdout
        assert "video (8 frames at t = [0, 9, 18, 27, 36, 45, 54, 63]): last_hidden_state (1, 6272, 64)" in (
            result.stdout
        )
        assert "video, the 1568 patches that move most: last_hidden_state (1, 1568, 64)" in result.stdout
        assert "PyAV is not installed" not in result.stdout
        assert "pipeline: features (1, 16, 64)" in result.stdout


def test_render_repo_small_preset_plain_folder_and_refusals(tmp_path: Path, env: dict[str, str], monkeypatch) -> None:
    """The package renders its own template (what `llava-vit upload` uses): the small preset, all defaults."""
    for key in ("PATH", "GIT_CONFIG_GLOBAL", "XDG_CACHE_HOME"):
        monkeypatch.setenv(key, env[key])
    dest = render_repo(tmp_path / "plain", {"repo_id": "acme/small-vit", "preset": "small"}, git=False)
    assert not (dest / ".git").exists()
    assert {p.name for p in dest.iterdir()} == REPO_FILES
    config = json.loads((dest / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["image_size"]) == (384, 6, 448)
    assert "| Hidden size | 384 |" in (dest / "README.md").read_text()
    assert fast_problems(dest) == []
    with pytest.raises(UsageError, match="not empty"):
        render_repo(dest, {"repo_id": "acme/small-vit", **TINY_ANSWERS}, git=False)
    bad = [
        ({"repo_id": "acme--x/vit"}, "not a Hub repo id"),
        ({"repo_id": "acme/vit", **TINY_ANSWERS, "num_attention_heads": 4}, "divisible by 32"),
        ({"repo_id": "acme/vit", **TINY_ANSWERS, "image_size": 36}, "image_size \\(36\\) must be divisible"),
        ({"repo_id": "acme/vit", "weights": str(tmp_path / "missing.pth")}, "no such checkpoint"),
    ]
    for answers, message in bad:
        with pytest.raises(LlavaViTError, match=message):
            render_repo(tmp_path / "bad", answers, git=False)
        assert not (tmp_path / "bad").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_weights_path_is_relative_to_where_copier_runs(tmp_path: Path, env: dict[str, str]) -> None:
    """`--data weights=ckpt/...` names a file next to the user, not inside the new repo; dtype converts it."""
    dims = {key: value for key, value in TINY_ANSWERS.items() if key != "preset"}
    export_model(tmp_path / "ckpt", LlavaViTConfig(**dims))
    answers = {"repo_id": "acme/trained", **TINY_ANSWERS, "weights": "ckpt/model.safetensors", "dtype": "bfloat16"}
    copier_copy(PROJECT, tmp_path / "trained", {**answers, "initialize_git": "false"}, env)
    source = load_file(tmp_path / "ckpt" / "model.safetensors")
    exported = load_file(tmp_path / "trained" / "model.safetensors")
    assert source.keys() == exported.keys()
    assert all(torch.equal(exported[name], source[name].to(torch.bfloat16)) for name in source)
    assert not (tmp_path / "trained" / ".git").exists()
    assert "The weights in this repo are random" not in (tmp_path / "trained" / "README.md").read_text()


def test_template_ships_with_the_package() -> None:
    assert (template_path() / "copier.yml").is_file()
    assert (template_path() / "template" / "README.md.jinja").is_file()
    pyproject = (PROJECT / "pyproject.toml").read_text()
    assert '"copier.yml" = "llava_vit/_template/copier.yml"' in pyproject


def test_hook_manifest_and_repo_config_are_valid(env: dict[str, str]) -> None:
    run([sys.executable, "-m", "pre_commit", "validate-manifest", ".pre-commit-hooks.yaml"], cwd=PROJECT, env=env)
    config = PROJECT / "template" / ".pre-commit-config.yaml"
    run([sys.executable, "-m", "pre_commit", "validate-config", str(config)], cwd=PROJECT, env=env)
    manifest = {hook["id"] for hook in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())}
    local = {hook["id"] for hook in yaml.safe_load(config.read_text())["repos"][0]["hooks"]}
    hooks = ["llava-vit-guard", "llava-vit-guard-push", "llava-vit-sync", "llava-vit-check", "llava-vit-check-full"]
    assert manifest == local == set(hooks)


def test_copier_update_keeps_the_users_card_edit(
    tmp_path: Path, template_repo: Path, tiny_repo: Path, env: dict[str, str]
) -> None:
    repo = copy_repo(tiny_repo, tmp_path / "tiny-vit")
    card = repo / "README.md"
    card.write_text(card.read_text().replace("## Usage", "## Training data\n\nOur own clips.\n\n## Usage"))
    # The hooks are exercised by the other tests; here only the template evolution matters.
    git(repo, env, "commit", "-q", "--no-verify", "-am", "Describe the training data")

    card_template = template_repo / "template" / "README.md.jinja"
    card_template.write_text(card_template.read_text() + "\n## Citation\n\nCite {{ repo_id }}.\n")
    git(template_repo, env, "commit", "-q", "-am", "v2: citation section")
    git(template_repo, env, "tag", "v2.0.0")

    weights_before = (repo / "model.safetensors").read_bytes()
    run([sys.executable, "-m", "copier", "update", "--trust", "--defaults"], cwd=repo, env=env)
    text = card.read_text()
    assert "## Training data\n\nOur own clips." in text
    assert "## Citation\n\nCite acme/tiny-vit." in text
    assert "<<<<<<<" not in text and not list(repo.glob("*.rej"))
    assert (repo / "model.safetensors").read_bytes() == weights_before
    assert yaml.safe_load((repo / ".copier-answers.yml").read_text())["_commit"] == "v2.0.0"
    changed = set(git(repo, env, "status", "--porcelain").stdout.split()) - {"M"}
    assert changed == {"README.md", ".copier-answers.yml"}
    assert fast_problems(repo) == []
