"""`llava-vit verify`: passes on a good export loaded in a clean environment, and names the failing check on
a hand-edited modeling file, a config without auto_map, a cropping processor and a truncated weights file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reference import REFERENCE, weights_path

from llava_vit import LlavaViTConfig, __version__
from llava_vit.checks.verify import PROVENANCE, Check, Report, provenance_check
from llava_vit.cli import main
from llava_vit.export import export_model
from llava_vit.repo_contract import CODE_FILES, canonical_source, render_code_file

ARCH = "tiny_nohead_p8"
CHECKS = [
    "config loads",
    "processor",
    "model loads",
    "weights match checkpoint",
    "image forward",
    "video forward",
    "masked forward",
    "patch_positions forward",
    "outputs finite, shapes right",
    "eager and sdpa agree",
    PROVENANCE,
]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = LlavaViTConfig(**json.loads((REFERENCE / ARCH / "architecture.json").read_text()))
    return export_model(tmp_path_factory.mktemp("verify") / "good", config, weights_path(ARCH), max_shard_size="100KB")


def run_verify(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict]:
    status = main(["verify", *map(str, args), "--json"])
    return status, json.loads(capsys.readouterr().out)


def failed(report: dict) -> dict[str, str]:
    return {check["name"]: check["detail"] for check in report["checks"] if not check["passed"]}


@pytest.fixture(scope="module")
def good_run(good: Path, clean_python: Path) -> tuple[int, str]:
    """One verify of the good export, in the clean environment, through the CLI."""
    process = subprocess.run(
        [sys.executable, "-m", "llava_vit", "verify", str(good), "--python", str(clean_python), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return process.returncode, process.stdout


def test_good_export_passes_in_clean_environment(good_run: tuple[int, str], clean_python: Path) -> None:
    status, out = good_run
    report = json.loads(out)
    assert status == 0, failed(report)
    assert report["passed"] is True
    assert [check["name"] for check in report["checks"]] == CHECKS
    assert report["environment"]["python"] == str(clean_python)
    assert report["environment"]["llava_vit_imported"] is False
    details = {check["name"]: check["detail"] for check in report["checks"]}
    assert "from the repo's code" in details["model loads"]
    assert f"llava-vit {__version__}" in details[PROVENANCE]


def test_text_checklist(good_run: tuple[int, str]) -> None:
    data = json.loads(good_run[1])
    checks = [Check(**check) for check in data.pop("checks")]
    text = Report(data["target"], None, data["python"], data["environment"], checks).to_text()
    assert all(f"[PASS] {name}:" in text for name in CHECKS) and text.endswith("11/11 checks passed")
    checks[1] = Check(checks[1].name, False, "cropped")
    text = Report(data["target"], "v2", data["python"], data["environment"], checks).to_text()
    assert "[FAIL] processor: cropped" in text and text.endswith("10/11 checks passed; failed: processor")
    assert text.startswith(f"verify {data['target']} @ v2 (transformers ")


def _broken(good: Path, tmp_path: Path, damage: str) -> Path:
    folder = tmp_path / damage
    shutil.copytree(good, folder)
    if damage == "edited-modeling":
        path = folder / "modeling_llava_vit.py"
        path.write_text(path.read_text() + "\n# quick fix, will upstream later\n")
    elif damage == "no-auto-map":
        path = folder / "config.json"
        config = json.loads(path.read_text())
        del config["auto_map"]
        path.write_text(json.dumps(config))
    elif damage == "cropping-processor":
        path = folder / "preprocessor_config.json"
        processor = json.loads(path.read_text())
        processor.update(size={"shortest_edge": 32}, do_center_crop=True, crop_size={"height": 16, "width": 16})
        path.write_text(json.dumps(processor))
    elif damage == "truncated-weights":
        shard = sorted(folder.glob("model-*.safetensors"))[-1]
        shard.write_bytes(shard.read_bytes()[:-100])
    return folder


@pytest.mark.parametrize(
    ("damage", "check", "reason"),
    [
        ("edited-modeling", PROVENANCE, "modeling_llava_vit.py: edited by hand"),
        ("no-auto-map", "config loads", "auto_map is None"),
        ("cropping-processor", "processor", "into [16, 16], expected image_size x image_size = [32, 32]"),
        ("truncated-weights", "model loads", "SafetensorError"),
    ],
)
def test_broken_repo_fails_naming_the_check(
    good: Path, tmp_path: Path, capsys, damage: str, check: str, reason: str
) -> None:
    status, report = run_verify(capsys, _broken(good, tmp_path, damage))
    assert status == 1 and report["passed"] is False
    failures = failed(report)
    assert check in failures and reason in failures[check], failures
    # Everything that does not depend on the broken part still runs and passes.
    independent = {
        "edited-modeling": set(CHECKS) - {PROVENANCE},
        "cropping-processor": set(CHECKS) - {"processor"},
        "no-auto-map": {PROVENANCE},
        "truncated-weights": {"config loads", "processor", PROVENANCE},
    }[damage]
    assert not independent & set(failures), failures


def test_hub_repo_id_goes_through_huggingface_hub(tmp_path: Path, capsys, monkeypatch) -> None:
    """A repo id is resolved by the Hub client (offline here, so it cannot be found: config loads fails)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    status, report = run_verify(capsys, "acme/not-in-cache", "--revision", "v1")
    assert status == 1 and report["revision"] == "v1"
    failures = failed(report)
    assert "config.json" in failures["config loads"] or "offline" in failures["config loads"].lower(), failures
    assert set(failures) == set(CHECKS), "nothing can pass without the repo"


def test_bad_targets_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify", str(tmp_path / "no" / "such" / "folder")]) == 2
    assert "neither an existing folder nor a Hub repo id" in capsys.readouterr().err
    assert main(["verify", str(tmp_path), "--python", str(tmp_path / "nopython")]) == 2
    assert "cannot run" in capsys.readouterr().err


def test_provenance_names_the_release(tmp_path: Path) -> None:
    """Intact files are named by their recorded release; a self-consistent header on other code, or an edited
    body, is flagged."""
    current = {name: tmp_path / "release" / name for name in CODE_FILES}
    (tmp_path / "release").mkdir()
    for name, path in current.items():
        path.write_text(render_code_file(name))
    check = provenance_check({name: str(path) for name, path in current.items()})
    assert check.passed and check.detail.count(f"llava-vit {__version__}") == 2

    older = {}
    for name in CODE_FILES:
        older[name] = tmp_path / name
        older[name].write_text(render_code_file(name, canonical_source(name) + "\n# 0.0.9 body\n", version="0.0.9"))
    check = provenance_check({name: str(path) for name, path in older.items()})
    assert not check.passed and "claims llava-vit 0.0.9 but matches no recorded llava-vit release" in check.detail

    current = tmp_path / "current"
    current.mkdir()
    for name in CODE_FILES:
        (current / name).write_text(render_code_file(name).replace("import torch\n", "import torch  # edited\n"))
    check = provenance_check({name: str(current / name) for name in CODE_FILES})
    assert not check.passed and "modeling_llava_vit.py: edited by hand" in check.detail

    check = provenance_check({CODE_FILES[0]: str(older[CODE_FILES[0]]), CODE_FILES[1]: None})
    assert not check.passed and f"{CODE_FILES[1]} is missing" in check.detail
