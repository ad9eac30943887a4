"""`llava-vit adopt` and the OneVision-Encoder family: upstream-format repos (config, processor and card in the
formats of the family's Hub repos; the code is this project's own fixture, tests/fixtures/onevision) become
llava-vit repos that check, verify and audit pass, proven equal by running both codes; the Hub route opens one
pull request; presets, training checkpoints and both image-processing modes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from llava_vit import LlavaViTConfig, LlavaViTModel
from llava_vit.cli import main
from llava_vit.repo_contract import CLIP_MEAN, CLIP_STD, preprocessor_config

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "onevision"
UPSTREAM_CODE = ("configuration_onevision_encoder.py", "modeling_onevision_encoder.py")
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, patch_size=14)
UPSTREAM_AUTO_MAP = {
    "AutoConfig": "configuration_onevision_encoder.OneVisionEncoderConfig",
    "AutoModel": "modeling_onevision_encoder.OneVisionEncoderModel",
}
CARD = """---
license: apache-2.0
library_name: transformers
tags:
  - vision
---

# OneVision-Encoder tiny

Prose the authors wrote: training data, benchmarks and a citation.
"""


def upstream_processor(size: int, mode: str = "crop") -> dict:
    """preprocessor_config.json as the family's repos hold it (crop), or a squashing one."""
    data = {
        "crop_size": {"height": size, "width": size},
        "do_center_crop": mode == "crop",
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": size} if mode == "crop" else {"height": size, "width": size},
    }
    return data


def make_upstream(
    folder: Path,
    *,
    image_size: int = 112,
    use_head: bool = True,
    dtype: str = "bfloat16",
    mode: str = "crop",
    card: str | None = CARD,
    seed: int = 0,
    **config_overrides: object,
) -> Path:
    """An upstream-format repo: config.json (model_type onevision_encoder, auto_map, attention_dropout,
    rope_temporal_size, dtype), model.safetensors, preprocessor_config.json, the two code files and a card."""
    folder.mkdir(parents=True)
    for name in UPSTREAM_CODE:
        shutil.copyfile(FIXTURE / name, folder / name)
    (folder / "__init__.py").write_text("")
    torch.manual_seed(seed)
    model = LlavaViTModel(LlavaViTConfig(**TINY, image_size=image_size, use_head=use_head))
    state = {key: value.to(getattr(torch, dtype)).contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["OneVisionEncoderModel"],
        "auto_map": UPSTREAM_AUTO_MAP,
        "model_type": "onevision_encoder",
        **TINY,
        "image_size": image_size,
        "num_channels": 3,
        "layer_norm_type": "layer_norm",
        "layer_norm_eps": 1e-06,
        "hidden_act": "gelu",
        "rope_theta": 10000.0,
        "use_head": use_head,
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "rope_temporal_size": 64,
        "dtype": dtype,
        "transformers_version": "4.57.1",
        **config_overrides,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "preprocessor_config.json").write_text(json.dumps(upstream_processor(image_size, mode), indent=2) + "\n")
    if card is not None:
        (folder / "README.md").write_text(card)
    return folder


def llava_vit(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llava_vit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=900,
    )


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def one_line_error(result: subprocess.CompletedProcess, code: int, command: str = "adopt") -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if f"llava-vit {command}: error:" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- the folder route, end to end ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory, clean_python: Path, env: dict[str, str]) -> dict:
    """One upstream folder (bf16, crop processing, a card) adopted once for the module; the source's code runs in
    the clean environment (no llava_vit), the new folder's in this one."""
    root = tmp_path_factory.mktemp("adopt")
    source = make_upstream(root / "onevision-encoder-tiny")
    out = root / "tiny-vit"
    result = llava_vit("adopt", str(source), str(out), "--python", str(clean_python), env=env)
    return {"source": source, "out": out, "result": result}


@pytest.mark.slow
def test_adopt_writes_a_committed_llava_vit_repo(adopted: dict) -> None:
    result, source, out = adopted["result"], adopted["source"], adopted["out"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the two agree within 1e-4" in result.stdout
    tracked = set(git_out(out, "ls-files").split())
    assert not any(name.endswith("onevision_encoder.py") or name == "__init__.py" for name in tracked)
    assert {"configuration_llava_vit.py", "modeling_llava_vit.py", "processing_llava_vit.py"} <= tracked
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json"} <= tracked
    assert git_out(out, "status", "--porcelain") == ""
    assert "model.safetensors" in git_out(out, "lfs", "ls-files", "--name-only").split()
    config = json.loads((out / "config.json").read_text())
    upstream = json.loads((source / "config.json").read_text())
    assert config["model_type"] == "llava_vit" and config["dtype"] == "bfloat16"
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size"):
        assert config[key] == upstream[key], key
    assert config["image_size"] == 112
    assert "rope_temporal_size" not in config and "attention_dropout" not in config
    # The same tensors, in their own dtype; the processing byte for byte.
    before, after = load_file(str(source / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    assert all(after[key].dtype == torch.bfloat16 and torch.equal(before[key], after[key]) for key in before)
    assert (out / "preprocessor_config.json").read_bytes() == (source / "preprocessor_config.json").read_bytes()


@pytest.mark.slow
def test_adopted_card_keeps_the_prose_and_carries_the_proof(adopted: dict) -> None:
    assert adopted["result"].returncode == 0, adopted["result"].stderr
    card = (adopted["out"] / "README.md").read_text()
    assert "Prose the authors wrote: training data, benchmarks and a citation." in card
    metadata = card.split("---\n")[1]
    for line in ("license: apache-2.0", "library_name: transformers", "pipeline_tag: image-feature-extraction"):
        assert line in metadata
    assert "- vision" in metadata and "- llava-vit" in metadata
    assert "shortest edge resized to image_size, then a centre crop" in card
    rows = [line for line in card.splitlines() if line.startswith("| image_") or line.startswith("| video")]
    cases = {row.split("|")[1].strip() for row in rows}
    assert cases == {"image_square", "image_nonsquare", "video", "video_visible_indices", "video_patch_positions"}
    diffs = [float(row.split("|")[4]) for row in rows]
    assert all(diff <= 1e-4 for diff in diffs) and len(diffs) == 12  # 5 cases x 2 outputs + 2 x pixel_values


@pytest.mark.slow
def test_adopted_repo_passes_check_verify_and_audit(adopted: dict, clean_python: Path, env: dict[str, str]) -> None:
    out = adopted["out"]
    assert adopted["result"].returncode == 0, adopted["result"].stderr
    for args in (
        ("check", str(out), "--full"),
        ("audit", str(out)),
        ("verify", str(out), "--python", str(clean_python)),
    ):
        result = llava_vit(*args, env=env)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"


@pytest.mark.slow
def test_adopted_state_dict_still_loads_into_the_upstream_class(adopted: dict, clean_python: Path) -> None:
    """Back compatibility: the source's own class takes the adopted weights strictly and gives the same outputs."""
    script = """
import sys, torch
from safetensors.torch import load_file
from transformers import AutoModel
source, out = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(source, trust_remote_code=True).float().eval()
before = model(torch.ones(1, 3, 112, 112)).last_hidden_state
missing, unexpected = model.load_state_dict(load_file(out + "/model.safetensors"), strict=True)
after = model.float()(torch.ones(1, 3, 112, 112)).last_hidden_state
print((before - after).abs().max().item())
"""
    result = subprocess.run(
        [str(clean_python), "-I", "-c", script, str(adopted["source"]), str(adopted["out"])],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1]) == 0.0


@pytest.mark.slow
def test_squash_processing_without_head_is_kept_and_named(tmp_path: Path, env: dict[str, str]) -> None:
    source = make_upstream(tmp_path / "src", use_head=False, dtype="float32", mode="squash", card=None, seed=1)
    # As upstream's config.save_pretrained writes it without register_for_auto_class: no auto_map, the code beside.
    config = json.loads((source / "config.json").read_text())
    del config["auto_map"], config["architectures"]
    (source / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    result = llava_vit("adopt", str(source), str(out), "--no-git", "--license", "mit", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / ".git").exists()
    assert (out / "preprocessor_config.json").read_bytes() == (source / "preprocessor_config.json").read_bytes()
    card = (out / "README.md").read_text()
    assert "license: mit" in card and "without a crop" in card
    assert "pooler_output" not in card  # no head: only last_hidden_state is compared
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    assert llava_vit("check", str(out), env=env).returncode == 0
    assert json.loads((source / "config.json").read_text()) == config  # the source is never changed
    (source / "modeling_onevision_encoder.py").unlink()
    line = one_line_error(llava_vit("adopt", str(source), str(tmp_path / "o2"), env=env), 2)
    assert "has neither an auto_map nor upstream's code files" in line


@pytest.mark.slow
def test_a_source_whose_code_disagrees_fails_the_proof_and_writes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    source = make_upstream(tmp_path / "src")
    modeling = source / "modeling_onevision_encoder.py"
    modeling.write_text(modeling.read_text().replace("/ self.head_dim**0.5", "/ self.head_dim**0.45"))
    result = llava_vit("adopt", str(source), str(tmp_path / "out"), env=env)
    line = one_line_error(result, 1)
    assert "differs from the source by" in line and "nothing was written" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# --- refusals: one line, exit 2, nothing written ------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attention_dropout": 0.1}, "attention_dropout is 0.1; LlavaViT has no attention dropout"),
        ({"rope_scaling": {"type": "linear"}}, "fields that have no LlavaViT counterpart: rope_scaling"),
        ({"model_type": "llava_vit"}, "model_type is 'llava_vit', not 'onevision_encoder'"),
        ({"dtype": "int8"}, "dtype 'int8' is not one of float32, bfloat16, float16"),
        ({"auto_map": {"AutoModel": "evil.Model"}}, "the proof must run the source's own code"),
        ({"rope_temporal_size": -1}, "rope_temporal_size is -1"),
        ({"hidden_size": 96}, "head_dim = hidden_size / num_attention_heads = 96 / 2 = 48 must be divisible by 32"),
    ],
)
def test_config_refusals(tmp_path: Path, change: dict, message: str) -> None:
    source = make_upstream(tmp_path / "src", **change)
    result = llava_vit("adopt", str(source), str(tmp_path / "out"))
    assert message in one_line_error(result, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_input_refusals(tmp_path: Path) -> None:
    source = make_upstream(tmp_path / "src")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    cases = [
        (["adopt", str(source), str(tmp_path / "taken")], "already exists and is not empty"),
        (["adopt", str(source), str(tmp_path / "o"), "--revision", "main"], "--revision goes with a Hub repo id"),
        (["adopt", str(tmp_path / "nope"), str(tmp_path / "o")], "is neither a folder nor a Hub repo id"),
        (["adopt", str(source)], "name OUT, the folder to create"),
        (["adopt", str(source), "--create-pr"], "pass SOURCE as ORG/NAME"),
        (["adopt", "org/name", "--create-pr", "--no-git"], "--create-pr sends a committed repo"),
        (["adopt", str(source), str(source / "inside")], "replacing it could delete that input"),
    ]
    for args, message in cases:
        assert message in one_line_error(llava_vit(*args), 2), args
    variable = upstream_processor(112)
    variable["do_center_crop"] = False
    (source / "preprocessor_config.json").write_text(json.dumps(variable))
    line = one_line_error(llava_vit("adopt", str(source), str(tmp_path / "o")), 2)
    assert "outputs a variable size, the model expects 112x112" in line
    (source / "preprocessor_config.json").unlink()
    assert "has no preprocessor_config.json" in one_line_error(llava_vit("adopt", str(source), str(tmp_path / "o")), 2)
    (source / "model.safetensors").unlink()
    assert "has no model.safetensors" in one_line_error(llava_vit("adopt", str(source), str(tmp_path / "o")), 2)
    assert not (tmp_path / "o").exists()


def test_sync_refuses_an_upstream_repo_and_changes_nothing(tmp_path: Path) -> None:
    source = make_upstream(tmp_path / "src")
    before = {path.name: path.read_bytes() for path in source.iterdir()}
    line = one_line_error(llava_vit("sync", str(source)), 1, "sync")
    assert "is a OneVision-Encoder repo" in line and "llava-vit adopt" in line
    assert {path.name: path.read_bytes() for path in source.iterdir()} == before


# --- the Hub route ------------------------------------------------------------------------------------------
def _push_upstream(local_hub, repo_id: str, source: Path) -> Path:
    hub_repo = local_hub.create_repo(repo_id)
    for path in source.iterdir():
        shutil.copy2(path, hub_repo / path.name)
    subprocess.run(["git", "add", "-A"], cwd=hub_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "upstream"], cwd=hub_repo, check=True, capture_output=True)
    return hub_repo


@pytest.mark.slow
def test_hub_route_opens_one_pull_request_that_audit_passes(
    local_hub, tmp_path: Path, clean_python: Path, env: dict[str, str]
) -> None:
    source = make_upstream(tmp_path / "src")
    hub_repo = _push_upstream(local_hub, "lmms-test/onevision-encoder-tiny", source)
    main_before = git_out(hub_repo, "rev-parse", "main").strip()
    hub_env = {**env, "HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy", "HF_HOME": str(tmp_path / "hf")}
    hub_env.pop("HF_HUB_OFFLINE", None)
    result = llava_vit(
        "adopt", "lmms-test/onevision-encoder-tiny", "--create-pr", "--python", str(clean_python), env=hub_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "opened " in result.stdout and "refs/pr/" in result.stdout
    assert git_out(hub_repo, "rev-parse", "main").strip() == main_before  # main is left alone
    prs = git_out(hub_repo, "for-each-ref", "--format=%(refname)", "refs/pr/").split()
    assert prs == ["refs/pr/1"]
    files = set(git_out(hub_repo, "ls-tree", "-r", "--name-only", "refs/pr/1").split())
    assert not {*UPSTREAM_CODE, "__init__.py"} & files
    assert {"configuration_llava_vit.py", "modeling_llava_vit.py", "processor_config.json", "README.md"} <= files
    # One commit on top of main, with the proof in its description.
    assert git_out(hub_repo, "rev-parse", "refs/pr/1^").strip() == main_before
    message = git_out(hub_repo, "log", "-1", "--format=%B", "refs/pr/1")
    assert "| video_visible_indices | last_hidden_state |" in message
    # The PR's weights are the source's tensors.
    blob = subprocess.run(["git", "show", "refs/pr/1:model.safetensors"], cwd=hub_repo, capture_output=True)
    (tmp_path / "pr.safetensors").write_bytes(blob.stdout)
    before, after = load_file(str(source / "model.safetensors")), load_file(str(tmp_path / "pr.safetensors"))
    assert all(torch.equal(before[key], after[key]) for key in before)
    audited = llava_vit("audit", "lmms-test/onevision-encoder-tiny", "--revision", "refs/pr/1", env=hub_env)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "every file transformers or the Hub could run is unmodified llava-vit release code" in audited.stdout
    unadopted = llava_vit("audit", "lmms-test/onevision-encoder-tiny", env=hub_env)  # main still runs upstream code
    assert unadopted.returncode == 1


@pytest.mark.slow
def test_upload_create_pr_can_delete_the_old_code_files(local_hub, tmp_path: Path, env: dict[str, str]) -> None:
    source = make_upstream(tmp_path / "src", dtype="float32", card=None)
    hub_repo = _push_upstream(local_hub, "lmms-test/by-upload", source)
    out = tmp_path / "out"
    assert llava_vit("adopt", str(source), str(out), env=env).returncode == 0
    hub_env = {**env, "HF_ENDPOINT": local_hub.endpoint, "HF_TOKEN": "hf_local_dummy", "HF_HOME": str(tmp_path / "hf")}
    hub_env.pop("HF_HUB_OFFLINE", None)
    kept = llava_vit("upload", str(out), "--repo-id", "lmms-test/by-upload", "--create-pr", env=hub_env)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    files = set(git_out(hub_repo, "ls-tree", "-r", "--name-only", "refs/pr/1").split())
    assert set(UPSTREAM_CODE) <= files  # without the flag, the old code stays
    deleted = llava_vit(
        "upload", str(out), "--repo-id", "lmms-test/by-upload", "--create-pr", "--delete-old-code", env=hub_env
    )
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    files = set(git_out(hub_repo, "ls-tree", "-r", "--name-only", "refs/pr/2").split())
    assert not {*UPSTREAM_CODE, "__init__.py"} & files and "modeling_llava_vit.py" in files


# --- presets, training checkpoints, dtype --------------------------------------------------------------------
def test_ov_encoder_presets_are_upstreams_registrations() -> None:
    from llava_vit.model.presets import PRESETS, preset_config, resolve_preset

    expected = {
        "ov-encoder-base": (768, 12, 12, 3072, 14, 224),
        "ov-encoder-large": (1024, 24, 16, 4096, 14, 448),
        "ov-encoder-huge": (1280, 32, 20, 5120, 14, 224),
    }
    for name, dims in expected.items():
        config = preset_config(name)
        got = (
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.intermediate_size,
            config.patch_size,
            config.image_size,
        )
        assert got == dims, name
        assert resolve_preset(name.replace("-", "_")) == name  # upstream's training name
    assert preset_config("large").image_size == 448 and "ov-encoder-base" in PRESETS


def test_export_takes_a_compiled_training_backbone_pt(tmp_path: Path, capsys) -> None:
    """`<step>/backbone.pt` as upstream's trainer saves it: a plain state dict, here of a torch.compile'd and
    DDP-wrapped model (`module._orig_mod.` keys)."""
    config = LlavaViTConfig(**TINY, image_size=56)
    model = LlavaViTModel(config)
    state = {f"module._orig_mod.{key}": value for key, value in model.state_dict().items()}
    (tmp_path / "000100").mkdir()
    torch.save(state, tmp_path / "000100" / "backbone.pt")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_vit", **TINY, "image_size": 56}))
    args = ["export", str(tmp_path / "out"), "--config", str(tmp_path / "config.json")]
    assert main([*args, "--weights", str(tmp_path / "000100" / "backbone.pt")]) == 0
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(torch.equal(written[key], value) for key, value in model.state_dict().items())
    # Both names of one tensor: refused, naming the prefixes.
    state["_orig_mod.embeddings.patch_embedding.weight"] = state["module._orig_mod.embeddings.patch_embedding.weight"]
    torch.save(state, tmp_path / "000100" / "backbone.pt")
    assert main([*args[:1], str(tmp_path / "out2"), *args[2:], "--weights", str(tmp_path / "000100/backbone.pt")]) == 1
    assert "'module.' / '_orig_mod.' prefixes are removed" in capsys.readouterr().err


def test_export_of_an_upstream_config_keeps_its_dtype(tmp_path: Path) -> None:
    source = make_upstream(tmp_path / "src")
    out = tmp_path / "out"
    args = ["export", str(out), "--config", str(source / "config.json"), "--weights", str(source / "model.safetensors")]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "bfloat16" and config["model_type"] == "llava_vit"
    assert {value.dtype for value in load_file(str(out / "model.safetensors")).values()} == {torch.bfloat16}
    assert main([*args[:1], str(tmp_path / "f32"), *args[2:], "--dtype", "float32"]) == 0  # --dtype still wins
    assert json.loads((tmp_path / "f32" / "config.json").read_text())["dtype"] == "float32"


# --- image processing: crop by default, squash on request, whatever a repo holds is kept ----------------------
def _export(out: Path, *extra: str) -> dict:
    assert main(["export", str(out), "--preset", "small", "--image-size", "64", *extra]) == 0
    return json.loads((out / "preprocessor_config.json").read_text())


def test_export_defaults_to_crop_offers_squash_and_a_reexport_keeps_the_repos(tmp_path: Path) -> None:
    crop = _export(tmp_path / "crop")
    assert crop == preprocessor_config(64, "crop")
    assert crop["size"] == {"shortest_edge": 64} and crop["do_center_crop"] is True
    squash = _export(tmp_path / "squash", "--image-processing", "squash")
    assert squash["size"] == {"height": 64, "width": 64} and squash["do_center_crop"] is False
    # A re-export into the squash repo keeps its processing, byte for byte (an edited but valid one too).
    held = json.loads((tmp_path / "squash" / "preprocessor_config.json").read_text())
    held["resample"] = 2
    text = json.dumps(held, indent=4)
    (tmp_path / "squash" / "preprocessor_config.json").write_text(text)
    _export(tmp_path / "squash", "--force")
    assert (tmp_path / "squash" / "preprocessor_config.json").read_text() == text
    # ... unless asked otherwise, or it no longer fits the image size.
    assert _export(tmp_path / "squash", "--force", "--image-processing", "crop") == crop
    assert main(["export", str(tmp_path / "crop"), "--preset", "small", "--image-size", "32", "--force"]) == 0
    assert json.loads((tmp_path / "crop" / "preprocessor_config.json").read_text()) == preprocessor_config(32)


def test_check_accepts_both_modes_and_refuses_a_variable_size(tmp_path: Path) -> None:
    from llava_vit.checks.check import processor_problems

    out = tmp_path / "out"
    _export(out)
    path = out / "preprocessor_config.json"
    for mode in ("crop", "squash"):
        path.write_text(json.dumps(preprocessor_config(64, mode)))
        assert processor_problems(out, 64) == []
    path.write_text(json.dumps(upstream_processor(64)))  # upstream's file as it is
    assert processor_problems(out, 64) == []
    variable = {**preprocessor_config(64, "crop"), "do_center_crop": False}
    path.write_text(json.dumps(variable))
    assert processor_problems(out, 64) == [
        "preprocessor_config.json: outputs a variable size, the model expects 64x64 (image_size); "
        "re-create it with `llava-vit export`"
    ]
    path.write_text(json.dumps({**preprocessor_config(64), "image_mean": [0.5, 0.5, 0.5]}))
    assert "image_mean must be the CLIP values" in processor_problems(out, 64)[0]


def test_save_pretrained_keeps_the_repos_image_processing(tmp_path: Path) -> None:
    source = make_upstream(tmp_path / "src", image_size=56, mode="squash", dtype="float32")
    out = tmp_path / "out"
    args = ["export", str(out), "--config", str(source / "config.json"), "--weights", str(source / "model.safetensors")]
    assert main(args) == 0
    (out / "preprocessor_config.json").write_bytes((source / "preprocessor_config.json").read_bytes())
    model = LlavaViTModel.from_pretrained(out)
    model.save_pretrained(tmp_path / "saved")
    saved = tmp_path / "saved" / "preprocessor_config.json"
    assert saved.read_bytes() == (source / "preprocessor_config.json").read_bytes()
    # A fresh model (no repo behind it) gets the default, crop.
    LlavaViTModel(LlavaViTConfig(**TINY, image_size=56)).save_pretrained(tmp_path / "fresh")
    fresh = json.loads((tmp_path / "fresh" / "preprocessor_config.json").read_text())
    assert fresh["do_center_crop"] is True and fresh["size"] == {"shortest_edge": 56}


@pytest.mark.slow
def test_new_chooses_the_mode_and_the_card_says_which(tmp_path: Path, env: dict[str, str]) -> None:
    from template_repos import TINY_ANSWERS

    answers = [arg for key, value in TINY_ANSWERS.items() if key != "preset" for arg in ("--answer", f"{key}={value}")]
    base = ["new", "--repo-id", "acme/mode-vit", "--preset", "custom", "--no-git", *answers]
    for mode, phrase in (("squash", "without a crop"), (None, "then a centre crop")):
        dest = tmp_path / (mode or "default")
        result = llava_vit(base[0], str(dest), *base[1:], *(["--image-processing", mode] if mode else []), env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        processor = json.loads((dest / "preprocessor_config.json").read_text())
        assert processor["do_center_crop"] is (mode is None)
        assert phrase in (dest / "README.md").read_text()
        assert llava_vit("check", str(dest), env=env).returncode == 0


def test_create_pr_without_a_token_stops_before_any_work(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    line = one_line_error(llava_vit("adopt", "lmms-test/anything", "--create-pr", env=env), 1)
    assert "no Hugging Face token" in line
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))


@pytest.mark.slow
def test_copier_update_of_a_repo_made_before_the_question_keeps_its_processing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A repo made before the image_processing question (no answer recorded, a squashing processor) keeps squash
    through `copier update --defaults`, and its card then says so."""
    import yaml
    from template_repos import PROJECT, TINY_ANSWERS, copier_copy, git

    template = tmp_path / "template"
    template.mkdir()
    shutil.copy(PROJECT / "copier.yml", template)
    shutil.copytree(PROJECT / "template", template / "template")
    git(template, env, "init", "-q", "-b", "main")
    git(template, env, "add", "-A")
    git(template, env, "commit", "-q", "-m", "v1")
    git(template, env, "tag", "v1.0.0")
    repo = tmp_path / "old-vit"
    copier_copy(template, repo, {"repo_id": "acme/old-vit", **TINY_ANSWERS, "image_processing": "squash"}, env)
    answers_file = repo / ".copier-answers.yml"
    answers = yaml.safe_load(answers_file.read_text())
    del answers["image_processing"]  # as the answers of a repo made before the question
    answers_file.write_text(yaml.safe_dump(answers))
    card = repo / "README.md"
    git(repo, env, "commit", "-q", "--no-verify", "-am", "made before the question")
    (template / "template" / "README.md.jinja").write_text(
        (template / "template" / "README.md.jinja").read_text() + "\n## Citation\n\nCite {{ repo_id }}.\n"
    )
    git(template, env, "commit", "-q", "-am", "v2")
    git(template, env, "tag", "v2.0.0")
    processor = (repo / "preprocessor_config.json").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load(answers_file.read_text())["image_processing"] == "squash"
    text = card.read_text()
    assert "without a crop" in text and "then a centre crop" not in text and "Cite acme/old-vit." in text
    assert "<<<<<<<" not in text and not list(repo.glob("*.rej"))
    assert (repo / "preprocessor_config.json").read_bytes() == processor
