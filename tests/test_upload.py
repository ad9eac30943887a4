"""`llava-vit upload` (one shot, no git): the failures a user meets before anything reaches the Hub.

Its success path needs a Hub that accepts uploads; the local hub (olah) serves reads only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llava_vit.errors import UsageError
from llava_vit.hub.local_hub import free_port
from llava_vit.hub.upload import upload as upload_repo

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it


def upload(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")}
    run_env = {**base, "HF_HOME": str(tmp_path / "hf"), "TMPDIR": str(scratch), **env}
    return subprocess.run(
        [sys.executable, "-m", "llava_vit", "upload", *args], capture_output=True, text=True, env=run_env, timeout=300
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("llava-vit upload: error: "), result.stderr
    return lines[-1]


def test_unreachable_hub_fails_in_one_line_and_leaves_no_temp_folder(tmp_path: Path) -> None:
    port = free_port()
    env = {"HF_ENDPOINT": f"https://127.0.0.1:{port}", "HF_TOKEN": "hf_dummy_token"}
    result = upload(tmp_path, "--preset", "small", "--repo-id", "org/my-vit", env=env)
    error = one_line_error(result, 1)
    assert f"cannot reach https://127.0.0.1:{port}" in error
    assert "hf_dummy_token" not in result.stdout + result.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_no_token_is_refused_before_any_work(tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": f"https://127.0.0.1:{free_port()}"}
    no_token = one_line_error(upload(tmp_path, "--preset", "small", "--repo-id", "org/my-vit", env=env), 1)
    assert "no Hugging Face token" in no_token and "hf auth login" in no_token
    assert list((tmp_path / "tmp").iterdir()) == []


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown preset 'enormous'"):
        upload_repo("enormous", None, "org/my-vit")
    with pytest.raises(UsageError, match="nope.pth does not exist"):
        upload_repo("small", Path("nope.pth"), "org/my-vit")
    with pytest.raises(UsageError, match="is not a repo id"):
        upload_repo("small", None, "no-slash")
