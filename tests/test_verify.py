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
from llava_vit.checks.verify import PROVENANCE, Check, Report, judge_before_loading
from llava_vit.cli import main
from llava_vit.export import export_model
from llava_vit.repo_contract import AUTO_MAP, CODE_FILES, canonical_source, render_code_file

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it

ARCH = "tiny_nohead_p8"
CHECKS = [
    PROVENANCE,
    "config loads",
    "processor",
    "model loads",
    "weights match checkpoint",
    "image forward",
    "video forward",
    "masked forward",
    "patch_positions forward",
    "video processor and token budget",
    "outputs finite, shapes right",
    "eager and sdpa agree",
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
    assert all(f"[PASS] {name}:" in text for name in CHECKS) and text.endswith("12/12 checks passed")
    checks[2] = Check(checks[2].name, False, "cropped")
    text = Report(data["target"], "v2", data["python"], data["environment"], checks).to_text()
    assert "[FAIL] processor: cropped" in text and text.endswith("11/12 checks passed; failed: processor")
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
        ("no-auto-map", PROVENANCE, "auto_map is None"),
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
    if check == PROVENANCE:  # what could run is not release code: nothing is loaded, so nothing of it runs
        assert [item["name"] for item in report["checks"]] == [PROVENANCE]
        assert "not loaded (its code would run)" in failures[PROVENANCE]
        return
    # Everything that does not depend on the broken part still runs and passes.
    independent = {
        "cropping-processor": set(CHECKS) - {"processor"},
        "truncated-weights": {"config loads", "processor", PROVENANCE},
    }[damage]
    assert not independent & set(failures), failures


def test_hub_repo_id_goes_through_huggingface_hub(tmp_path: Path, capsys, monkeypatch) -> None:
    """A repo id is listed by the Hub client before anything loads (offline here: one line, exit 1)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    status = main(["verify", "acme/not-in-cache", "--revision", "v1"])
    err = capsys.readouterr().err
    assert status == 1 and "acme/not-in-cache@v1" in err and len(err.strip().splitlines()) == 1, err


def test_bad_targets_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify", str(tmp_path / "no" / "such" / "folder")]) == 2
    assert "neither an existing folder nor a Hub repo id" in capsys.readouterr().err
    assert main(["verify", str(tmp_path), "--python", str(tmp_path / "nopython")]) == 2
    assert "cannot run" in capsys.readouterr().err


def _code_folder(folder: Path, text_of) -> Path:  # type: ignore[no-untyped-def]
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_vit", "auto_map": AUTO_MAP}))
    for name in CODE_FILES:
        if (text := text_of(name)) is not None:
            (folder / name).write_text(text)
    return folder


def test_provenance_names_the_release(tmp_path: Path) -> None:
    """Judged before loading: intact files are named by their recorded release; a self-consistent header on other
    code, an edited body or a missing file is flagged, and nothing is loaded."""
    folder = _code_folder(tmp_path / "release", render_code_file)
    check, commit = judge_before_loading(str(folder), True, None)
    assert check.passed and check.detail.count(f"llava-vit {__version__}") == len(CODE_FILES) and commit is None

    older = _code_folder(
        tmp_path / "older",
        lambda name: render_code_file(name, canonical_source(name) + "\n# 0.0.9 body\n", version="0.0.9"),
    )
    check, _ = judge_before_loading(str(older), True, None)
    assert not check.passed and "claims llava-vit 0.0.9 but matches no recorded llava-vit release" in check.detail

    edited = _code_folder(
        tmp_path / "edited", lambda name: render_code_file(name).replace("import torch\n", "import torch  # edited\n")
    )
    check, _ = judge_before_loading(str(edited), True, None)
    assert not check.passed and "modeling_llava_vit.py: edited by hand" in check.detail

    partial = _code_folder(tmp_path / "partial", lambda name: None if name == CODE_FILES[1] else render_code_file(name))
    check, _ = judge_before_loading(str(partial), True, None)
    assert not check.passed and f"{CODE_FILES[1]} missing" in check.detail
