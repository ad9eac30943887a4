"""`llava-vit demo`, the README's first command: the whole loop, run exactly as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it


def test_demo_runs_the_whole_loop(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "llava_vit", "demo"], capture_output=True, text=True, env=env, timeout=900
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    for step in ("Scaffold a model repo with copier", "git push: the pre-push hook", "Verify by repo id", "Stop the"):
        assert step in out
    assert "12/12 checks passed" in out
    assert "-> pooled (1, 384)" in out and "video (1, 3, 4, 224, 224)" in out
    assert "video, max_tokens=196 (the patches that move most) -> last_hidden_state (1, 196, 384)" in out
    assert "demo passed: demo/llava-vit-small@" in out
    assert not list(tmp_path.glob("llava-vit-demo-*")), "the demo must clean up its working folder"
