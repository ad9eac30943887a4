"""Audit by repo id against a hostile Hub: only a 40-hex commit is pinned, every listed path is validated, every
download is capped while it streams, and the whole audit ends within its time budget in one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_hub import Behaviour, hostile_hub

from llava_vit.repo_contract import AUTO_MAP, CODE_FILES, render_code_file

LIMITED = """
import resource, sys
limit = 1200 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from llava_vit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def release_files() -> dict[str, bytes]:
    files = {name: render_code_file(name).encode() for name in CODE_FILES}
    files["config.json"] = json.dumps({"model_type": "llava_vit", "auto_map": AUTO_MAP}).encode()
    return files


def audit(endpoint: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-c", LIMITED, "audit", "acme/vit", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_control_passes(tmp_path: Path) -> None:
    """The same server, honest: the verdict passes (a refusal below is caused by its attack)."""
    with hostile_hub(Behaviour(files=release_files())) as endpoint:
        result = audit(endpoint, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"at commit {'a' * 40}" in result.stdout


@pytest.mark.parametrize("sha", ["main", "a" * 40 + "\n", "A" * 40, "a" * 39, None, 12345])
def test_a_commit_that_is_not_40_hex_is_never_pinned(tmp_path: Path, sha: object) -> None:
    with hostile_hub(Behaviour(sha=sha, files=release_files())) as endpoint:
        result = audit(endpoint, tmp_path)
    assert result.returncode == 1
    assert "not a 40-hex sha; cannot pin a verdict" in one_line_error(result)


@pytest.mark.parametrize("path", ["../config.json", "a/../../x.py", "/etc/passwd", "a\\b.py", "a//b.py", "x\ny.py"])
def test_a_listed_path_no_repo_can_hold_is_refused(tmp_path: Path, path: str) -> None:
    files = release_files()
    with hostile_hub(Behaviour(files=files, listed=[*files, path])) as endpoint:
        result = audit(endpoint, tmp_path)
    assert result.returncode == 1
    assert "lists a file path that no repo can hold" in one_line_error(result)


def test_an_endless_download_is_cut_off_while_streaming(tmp_path: Path) -> None:
    """config.json listed small but streamed forever: read up to its cap, judged unreadable, memory bounded."""
    with hostile_hub(Behaviour(files=release_files(), endless={"config.json"})) as endpoint:
        result = audit(endpoint, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "config.json: JSON that cannot be judged" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_trickling_server_ends_within_the_time_budget(tmp_path: Path) -> None:
    with hostile_hub(Behaviour(files=release_files(), trickle={"config.json"})) as endpoint:
        result = audit(endpoint, tmp_path, "--timeout", "4")
    assert result.returncode == 1
    assert "did not finish within 4 s" in one_line_error(result)
