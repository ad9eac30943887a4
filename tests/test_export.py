"""`llava-vit export`: every reference architecture, exported from .safetensors and from wrapped .pth
checkpoints, loads in a clean environment (no llava_vit) through transformers' remote-code loader and
matches the fixtures; bad inputs are refused with their reason and leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reference import ARCHITECTURES, CASES, REFERENCE, TOLERANCE, architecture, weights_path
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from llava_vit import LlavaViTConfig
from llava_vit.cli import main
from llava_vit.export import export_model
from llava_vit.repo_contract import AUTO_MAP, CLIP_MEAN, CLIP_STD, CODE_FILES, render_code_file
from llava_vit.weights.sizes import parse_size

TESTS = Path(__file__).parent
AUTO_MAP_EXACT = {
    "AutoConfig": "configuration_llava_vit.LlavaViTConfig",
    "AutoModel": "modeling_llava_vit.LlavaViTModel",
}
SHARDED = "tiny_ln_p14-sharded"


def config_file(arch: str) -> str:
    return str(REFERENCE / arch / "architecture.json")


def wrapped_pth(arch: str, target: Path, wrapper: str) -> Path:
    """The fixture weights as a training script saves them: DDP `module.` keys, under `wrapper`, with extras."""
    state = {f"module.{key}": value for key, value in load_file(weights_path(arch)).items()}
    torch.save({wrapper: state, "epoch": 7, "optimizer": {"lr": torch.tensor(0.1)}}, target)
    return target


def leftovers(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def run_export(*args: str) -> int:
    return main(["export", *map(str, args)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    """Folder name -> (architecture, exported folder), written through the CLI."""
    root = tmp_path_factory.mktemp("exports")
    folders: dict[str, tuple[str, Path]] = {}
    for i, arch in enumerate(ARCHITECTURES):
        wrapper = ("model", "state_dict")[i % 2]
        pth = wrapped_pth(arch, root / f"{arch}.pth", wrapper)
        for name, weights in ((f"{arch}-safetensors", weights_path(arch)), (f"{arch}-pth-{wrapper}", pth)):
            assert run_export(root / name, "--config", config_file(arch), "--weights", weights) == 0
            folders[name] = (arch, root / name)
    arch = "tiny_ln_p14"
    args = ("--config", config_file(arch), "--weights", weights_path(arch), "--max-shard-size", "100KB")
    assert run_export(root / SHARDED, *args) == 0
    folders[SHARDED] = (arch, root / SHARDED)
    return folders


@pytest.fixture(scope="module")
def clean_results(exported: dict[str, tuple[str, Path]], clean_python: Path, tmp_path_factory) -> dict:
    """One subprocess in the clean environment loads every exported folder and runs every case, eager and sdpa."""
    work = tmp_path_factory.mktemp("clean")
    result = work / "result.json"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(work / "modules")
    pairs = [f"{arch}={folder}" for arch, folder in exported.values()]
    run = subprocess.run(
        [str(clean_python), str(TESTS / "clean_forward.py"), str(result), *pairs],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(result.read_text())


def test_clean_environment_never_saw_llava_vit(clean_results: dict) -> None:
    assert clean_results["llava_vit_importable"] is False
    assert clean_results["llava_vit_imported"] is False


@pytest.mark.parametrize(
    "name",
    [f"{arch}-safetensors" for arch in ARCHITECTURES]
    + [f"{arch}-pth-{('model', 'state_dict')[i % 2]}" for i, arch in enumerate(ARCHITECTURES)]
    + [SHARDED],
)
def test_export_loads_with_automodel_and_matches_fixtures(name: str, exported: dict, clean_results: dict) -> None:
    arch, folder = exported[name]
    report = clean_results[str(folder)]
    assert "error" not in report, report.get("error")
    model = report["model"]
    assert model["module"].startswith("transformers_modules."), "the model must come from the folder's remote code"
    for implementation in ("eager", "sdpa"):
        assert model[f"config/{implementation}"] == implementation
        assert all(not items for items in model[f"loading_info/{implementation}"].values()), model
    assert set(model["errors"]) == {f"{impl}/{case}" for impl in ("eager", "sdpa") for case in CASES}
    worst = {key: max(errors.values()) for key, errors in model["errors"].items()}
    assert max(worst.values()) <= TOLERANCE, worst
    size = architecture(arch)["image_size"]
    for processor in report["processor"].values():
        assert processor["shape"] == [2, 3, size, size]
        assert processor["mean"] == pytest.approx(CLIP_MEAN)
        assert processor["std"] == pytest.approx(CLIP_STD)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_export_folder_files(arch: str, exported: dict) -> None:
    folder = exported[f"{arch}-safetensors"][1]
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP_EXACT == AUTO_MAP
    assert config["architectures"] == ["LlavaViTModel"]
    assert config["dtype"] == config["torch_dtype"] == "float32"
    assert config["model_type"] == "llava_vit"
    for key, value in architecture(arch).items():
        assert config[key] == value, key
    for name in CODE_FILES:
        assert (folder / name).read_text(encoding="utf-8") == render_code_file(name)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}
    expected = load_file(weights_path(arch))
    written = load_file(folder / "model.safetensors")
    assert written.keys() == expected.keys()
    assert all(torch.equal(written[key], expected[key]) for key in expected)
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    size = config["image_size"]
    # The default processing: the shortest edge to image_size, then a centre crop of image_size x image_size.
    assert processor["size"] == {"shortest_edge": size} and processor["do_center_crop"] is True
    assert processor["crop_size"] == {"height": size, "width": size}


def test_sharded_export_layout(exported: dict) -> None:
    folder = exported[SHARDED][1]
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(folder.glob("model-*.safetensors"))
    count = len(shards)
    assert count > 2 and not (folder / "model.safetensors").exists()
    assert [p.name for p in shards] == [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    assert index["metadata"]["total_size"] == sum(
        t.numel() * 4 for t in load_file(weights_path("tiny_ln_p14")).values()
    )
    for shard in shards:
        with safe_open(str(shard), framework="pt") as handle:
            assert handle.metadata() == {"format": "pt"}
            sizes = [handle.get_tensor(key).numel() * 4 for key in handle.keys()]
        assert sum(sizes) <= 100_000 or len(sizes) == 1, (shard.name, sizes)


def test_reexport_from_sharded_folder_in_bfloat16(exported: dict, tmp_path: Path) -> None:
    """A sharded folder is a valid --weights source, and the dtype conversion is exact torch casting."""
    out = export_model(
        tmp_path / "bf16", LlavaViTConfig(**architecture("tiny_ln_p14")), exported[SHARDED][1], dtype="bfloat16"
    )
    written = load_file(out / "model.safetensors")
    expected = load_file(weights_path("tiny_ln_p14"))
    assert all(torch.equal(written[key], value.to(torch.bfloat16)) for key, value in expected.items())
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_legacy_pth_and_float16(tmp_path: Path) -> None:
    """Pre-zipfile torch.save files cannot be memory-mapped: they are read whole, still with weights_only."""
    arch = "tiny_nohead_p8"
    legacy = tmp_path / "legacy.pt"
    torch.save(load_file(weights_path(arch)), legacy, _use_new_zipfile_serialization=False)
    assert run_export(tmp_path / "out", "--config", config_file(arch), "--weights", legacy, "--dtype", "float16") == 0
    written = load_file(tmp_path / "out" / "model.safetensors")
    assert all(torch.equal(written[k], v.half()) for k, v in load_file(weights_path(arch)).items())


def test_preset_random_weights_warn_and_image_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_export(tmp_path / "small", "--preset", "hf_llava_vit_small_ln", "--image-size", "224") == 0
    assert "RANDOM weights" in capsys.readouterr().err
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert (config["image_size"], config["hidden_size"], config["num_hidden_layers"]) == (224, 384, 6)
    processor = json.loads((tmp_path / "small" / "preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 224} and processor["crop_size"] == {"height": 224, "width": 224}
    with safe_open(str(tmp_path / "small" / "model.safetensors"), framework="pt") as handle:
        norm = handle.get_tensor("layernorm_pre.weight")
        linear = handle.get_tensor("encoder.layers.0.mlp.fc1.weight")
    assert torch.equal(norm, torch.ones(384)) and 0.01 < linear.std().item() < 0.03, "initialised like training"


def test_nan_weights_warn(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    arch = "tiny_ln_p14"
    state = load_file(weights_path(arch))
    state["layernorm_pre.bias"][3] = float("nan")
    save_file(state, tmp_path / "nan.safetensors")
    assert run_export(tmp_path / "out", "--config", config_file(arch), "--weights", tmp_path / "nan.safetensors") == 0
    err = capsys.readouterr().err
    assert "NaN or Inf" in err and "layernorm_pre.bias" in err


class NotWeights:
    """A class a weights-only unpickler must refuse to construct."""


def _bad_checkpoint(kind: str, folder: Path) -> Path:
    state = load_file(weights_path("tiny_ln_p14"))
    if kind == "missing":
        del state["encoder.layers.1.mlp.fc2.bias"]
    elif kind == "many-missing":
        state = {"layernorm_pre.weight": state["layernorm_pre.weight"]}
    elif kind == "extra":
        state["encoder.layers.2.mlp.fc2.bias"] = torch.zeros(128)
    elif kind == "shape":
        state["head.probe"] = torch.zeros(1, 1, 64)
    elif kind == "int":
        state["layernorm_pre.bias"] = torch.zeros(128, dtype=torch.int64)
    elif kind == "pickle":
        path = folder / "checkpoint.pth"
        torch.save({"model": state, "config": NotWeights()}, path)
        return path
    path = folder / "checkpoint.safetensors"
    save_file(state, path)
    return path


@pytest.mark.parametrize(
    ("kind", "messages"),
    [
        ("missing", ["1 missing keys", "encoder.layers.1.mlp.fc2.bias", "--config"]),
        ("many-missing", ["46 missing keys", "... and 26 more"]),
        ("extra", ["1 unexpected keys", "encoder.layers.2.mlp.fc2.bias"]),
        ("shape", ["1 mis-shaped keys", "head.probe: checkpoint [1, 1, 64], model [1, 1, 128]"]),
        ("int", ["non-floating", "layernorm_pre.bias: I64"]),
        ("pickle", ["not a plain weights file", "weights_only=True", "NotWeights", "state_dict()"]),
    ],
)
def test_bad_checkpoint_is_refused_and_leaves_nothing(
    kind: str, messages: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    weights = _bad_checkpoint(kind, inputs)
    status = run_export(tmp_path / "sub" / "out", "--config", config_file("tiny_ln_p14"), "--weights", weights)
    err = capsys.readouterr().err
    assert status == 1, err
    for message in messages:
        assert message in err
    assert leftovers(tmp_path) == ["inputs"], "no OUT, no parent created for it, no temporary folder"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "colossal"], "unknown preset 'colossal'; valid presets: small, base"),
        (["--preset", "small", "--image-size", "100"], "image_size (100) must be divisible by patch_size (16)"),
        (["--preset", "small", "--max-shard-size", "5 parsecs"], "invalid size '5 parsecs'"),
        (["--preset", "small", "--repo-id", "not a repo"], "invalid --repo-id 'not a repo'"),
        (["--preset", "small", "--weights", "missing.pth"], "missing.pth do not exist"),
        (["--config", "absent.json"], "cannot read config absent.json"),
    ],
)
def test_bad_usage_exits_2(args: list[str], message: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_export("out", *args) == 2
    assert message in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_bad_dtype_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_export(tmp_path / "out", "--preset", "small", "--dtype", "float64")
    assert exit_info.value.code == 2
    assert "invalid choice: 'float64'" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_config_file_ignores_hub_keys_and_catches_typos(exported: dict, tmp_path: Path, capsys) -> None:
    """An exported config.json is a valid --config; a misspelt field is an error, not a silent default."""
    source = exported["tiny_rms_p16-safetensors"][1]
    assert run_export(tmp_path / "again", "--config", source / "config.json", "--weights", source) == 0
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({**architecture("tiny_rms_p16"), "hiden_size": 64}))
    assert run_export(tmp_path / "out", "--config", typo) == 2
    assert "hiden_size (did you mean hidden_size?)" in capsys.readouterr().err
    assert leftovers(tmp_path) == ["again", "typo.json"]


def test_existing_output_is_refused_then_replaced_with_force(tmp_path: Path, capsys) -> None:
    arch = "tiny_nohead_p8"
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    args = ("--config", config_file(arch), "--weights", weights_path(arch))
    assert run_export(out, *args) == 2
    assert "already exists and is not empty; pass --force" in capsys.readouterr().err
    assert leftovers(out) == ["notes.txt"] and leftovers(tmp_path) == ["out"]

    bad = tmp_path / "bad.safetensors"
    save_file({"head.probe": torch.zeros(1)}, bad)
    assert run_export(out, "--config", config_file(arch), "--weights", bad, "--force") == 1
    assert leftovers(out) == ["notes.txt"], "a failed --force export keeps the old content"
    bad.unlink()

    assert run_export(out, *args, "--force") == 0
    assert "notes.txt" not in leftovers(out) and (out / "model.safetensors").is_file()
    assert leftovers(tmp_path) == ["out"], "no temporary or old folder left"

    # Replacing the folder the weights are read from would delete the original checkpoint: refused.
    before = (out / "model.safetensors").read_bytes()
    assert run_export(out, "--config", config_file(arch), "--weights", out, "--force", "--dtype", "bfloat16") == 2
    assert "replacing it could delete that input" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before and leftovers(tmp_path) == ["out"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_export(empty, *args) == 0, "an empty folder is not in the way"


def test_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    """SIGINT while the weights are being written: exit 130, no OUT and no temporary folder."""
    process = subprocess.Popen(
        [sys.executable, "-m", "llava_vit", "export", "out", "--preset", "base"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.tmp-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("5GB", 5 * 10**9),
        ("500MB", 500 * 10**6),
        ("1KB", 1000),
        ("1234", 1234),
        ("2GiB", 2 * 2**30),
        ("1.5 mb", 1_500_000),
    ],
)
def test_shard_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size
