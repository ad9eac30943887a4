"""The benchmark scripts: their FLOP formula against torch's counter, and that they run end to end (small sizes)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llava_vit import LlavaViTConfig, LlavaViTModel

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _forward_benchmark():
    spec = importlib.util.spec_from_file_location("forward_benchmark", BENCHMARKS / "forward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shape", [(1, 3, 56, 56), (1, 3, 3, 28, 42)])
@pytest.mark.parametrize("use_head", [False, True])
def test_flop_formula_matches_torch_flop_counter(shape, use_head):
    benchmark = _forward_benchmark()
    config = LlavaViTConfig(
        hidden_size=128, num_attention_heads=2, num_hidden_layers=2, intermediate_size=256, use_head=use_head
    )
    model = LlavaViTModel._from_config(config, attn_implementation="eager").eval()
    # Grad mode on: the counter's module tracker needs autograd nodes; nothing is backpropagated.
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(shape))
    # Eager everywhere, the pooling head's attention included: every FLOP is a matmul the counter sees.
    assert benchmark.model_flops(config, shape) == counter.get_total_flops()


@pytest.mark.slow  # runs the benchmark script end to end
def test_forward_benchmark_runs_and_reports():
    command = [sys.executable, str(BENCHMARKS / "forward.py"), "--preset", "small", "--repeats", "1"]
    done = subprocess.run([*command, "--input", "image 448x448"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ")[1:3] for line in done.stdout.splitlines() if line.startswith("| image")]
    # fp32: eager and the default; bf16: those and the two kernels the default chooses between; a ratio row per dtype.
    assert rows == [
        ["fp32", "eager"],
        ["fp32", "default"],
        ["bf16", "eager"],
        ["bf16", "default"],
        ["bf16", "sdpa fused"],
        ["bf16", "blocked"],
        ["fp32", rows[6][1]],
        ["bf16", rows[7][1]],
    ], done.stdout
    # The small preset has 6 layers and the pooling head, whose attention takes the same implementation: the fused
    # kernel runs in all 7 for the default and for sdpa fused (784 tokens: below BLOCKED_MIN_TOKENS, so bf16's
    # default keeps it on any CPU); eager and the blocked attention run a softmax in all 7.
    lines = [line for line in done.stdout.splitlines() if line.startswith("| image")]
    calls = [line.split(" | ")[10] for line in lines[:6]]
    assert calls == ["0/7", "7/0", "0/7", "7/0", "7/0", "0/7"], done.stdout
    # The ceiling columns are percentages, the ceiling (GEMMs at the matmul rate) at most 100% of the matmul rate.
    for ratio_row in lines[6:]:
        ceiling = float(ratio_row.split(" | ")[3].rstrip("%"))
        assert 0 < ceiling <= 100, ratio_row
    assert "- bf16 relative error vs fp32 <= 0.02 on the image 448x448: " in done.stdout
    assert "- bf16 default runs the faster of sdpa fused and blocked on the image 448x448: it runs sdpa fused" in (
        done.stdout
    )
    assert re.search(r"image 448x448 \(784 tokens\) bf16: \d+ / \d+", done.stdout), done.stdout


def _gpu_check(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--dry-run", "--repeats", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # runs the benchmark script end to end
def test_gpu_check_dry_run_passes_parity():
    done = _gpu_check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "parity OK for sdpa, eager" in done.stdout
    assert sum(line.startswith("| video") for line in done.stdout.splitlines()) == 4


@pytest.mark.slow  # runs the benchmark script end to end
def test_gpu_check_fails_when_parity_does_not_hold():
    done = _gpu_check("--tolerance", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PARITY FAILED" in done.stdout


@pytest.mark.slow  # runs the benchmark script end to end
def test_video_benchmark_runs_and_reports():
    command = [sys.executable, str(BENCHMARKS / "video.py"), "--frames", "4", "--repeats", "1", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "%" in line.split("|")[1]]
    assert [row.split("|")[2].strip() for row in rows] == ["784", "392", "196"], done.stdout
