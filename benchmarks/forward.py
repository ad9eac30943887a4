"""Forward latency and peak memory of the `large` preset on CPU: eager vs sdpa, image and video.

Run from a checkout (llava_vit need not be installed):

    python benchmarks/forward.py            # about 3-5 minutes on 2 cores

Each (attention implementation, input) pair runs in its own fresh subprocess: random-init fp32 `large` model
in eval mode under `torch.inference_mode()`, one warm-up forward, then `--repeats` timed forwards. Latency is
reported as the best (min) and the median of the timed forwards; throughput uses the best, which is the run least
disturbed by other processes on a shared machine (the "other load" column says how busy the rest of the machine
was while timing).

Peak memory is what the operating system sees, so it counts every allocator (torch's, oneDNN's, OpenMP's):
before each forward the child returns freed heap pages to the kernel (glibc `malloc_trim`), reads its resident
set size (VmRSS), and resets the kernel's high-water mark (`/proc/self/clear_refs` with "5", Linux >= 4.0);
after the forward, VmHWM - VmRSS(before) is the peak increase during that forward. The reported value is the
largest over all forwards of the child. tracemalloc would miss torch's native allocations, and the lifetime
`ru_maxrss` cannot be reset, so it would also count model construction.

FLOPs are counted analytically, a multiply-add as 2 FLOPs, for batch 1, N tokens, hidden h, intermediate i,
L layers, patch p, C channels:

    patch embedding   2 * N * (C * p * p) * h
    per layer         q/k/v/out projections 4 * (2 * N * h * h)
                      attention scores QK^T 2 * N * N * h        (all heads together: heads * head_dim = h)
                      attention values AV   2 * N * N * h
                      MLP fc1 + fc2         2 * (2 * N * h * i)
    pooling head      probe query projection 2 * h * h, key and value projections 2 * (2 * N * h * h),
                      scores and values 2 * (2 * N * h), output projection 2 * h * h, MLP 2 * (2 * h * i)

Norms, softmax, GELU, RoPE and bias additions (O(N * h) or O(N * N) element-wise work) are not counted.
Achieved GFLOP/s is that count over the best latency, and is also given as a fraction of this machine's fp32
matmul throughput, measured in every child right before its model runs (4096x4096 @ 4096x4096, best of 5) and
summarised as the best seen in the whole run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ("eager", "sdpa")
# name -> (pixel_values shape, default timed repeats)
INPUTS: dict[str, tuple[tuple[int, ...], int]] = {
    "image 448x448": ((1, 3, 448, 448), 3),
    "video 16x224x224": ((1, 3, 16, 224, 224), 2),
}
MATMUL_SIZE = 4096
TARGET_SPEEDUP = 2.5
TARGET_MEMORY_RATIO = 0.5
TARGET_MATMUL_FRACTION = 0.85


def token_count(config, shape: tuple[int, ...]) -> int:
    """Tokens of a (1, C, H, W) image or (1, C, T, H, W) video."""
    frames = shape[2] if len(shape) == 5 else 1
    return frames * (shape[-2] // config.patch_size) * (shape[-1] // config.patch_size)


def model_flops(config, shape: tuple[int, ...]) -> float:
    """Analytic forward FLOPs of one sample (see the module docstring for the formula)."""
    p, h, i, c = config.patch_size, config.hidden_size, config.intermediate_size, config.num_channels
    n = token_count(config, shape)
    flops = 2 * n * c * p * p * h
    flops += config.num_hidden_layers * (4 * 2 * n * h * h + 2 * 2 * n * n * h + 2 * 2 * n * h * i)
    if config.use_head:
        flops += 2 * h * h + 2 * 2 * n * h * h + 2 * 2 * n * h + 2 * h * h + 2 * 2 * h * i
    return float(flops)


def matmul_gflops(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """Best-of-`repeats` fp32 throughput of one large square matmul, the machine's practical GEMM peak."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _own_ticks() -> float:
    times = os.times()
    return (times.user + times.system) * os.sysconf("SC_CLK_TCK")


def _attention_kernel_calls(model, torch) -> dict[str, int]:
    """How often a tiny forward runs the fused CPU attention kernel and a plain softmax: shows which path runs."""
    tiny = torch.zeros(1, model.config.num_channels, 2 * model.config.patch_size, 2 * model.config.patch_size)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(tiny)
    counts = {e.key: e.count for e in profile.key_averages()}
    return {
        "fused": counts.get("aten::_scaled_dot_product_flash_attention_for_cpu", 0),
        "softmax": counts.get("aten::_softmax", 0),
    }


def run_child(implementation: str, input_name: str, repeats: int, preset: str) -> dict:
    """Measure one configuration in this (fresh) process and return the numbers."""
    import torch

    sys.path.insert(0, str(REPO))
    from llava_vit import LlavaViTConfig, LlavaViTModel

    libc = ctypes.CDLL("libc.so.6")
    torch.manual_seed(0)
    config = LlavaViTConfig.from_preset(preset)
    model = LlavaViTModel._from_config(config, attn_implementation=implementation).eval()
    shape, _ = INPUTS[input_name]
    pixel_values = torch.randn(shape)
    result = {
        "implementation": implementation,
        "input": input_name,
        "config_attn_implementation": model.config._attn_implementation,
        "tokens": token_count(config, shape),
        "gflop": model_flops(config, shape) / 1e9,
    }
    with torch.inference_mode():
        result["kernel_calls"] = _attention_kernel_calls(model, torch)
        result["matmul_gflops"] = matmul_gflops()
        times, peaks = [], []
        busy_before, total_before, own_before = None, None, None
        for index in range(1 + repeats):
            libc.malloc_trim(0)
            rss_before = _status_kib("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
            if index == 1:
                (busy_before, total_before), own_before = _busy_ticks(), _own_ticks()
            elapsed = _timed(lambda: model(pixel_values))
            peaks.append(_status_kib("VmHWM") - rss_before)
            if index:
                times.append(elapsed)
        busy, total = _busy_ticks()
        other = (busy - busy_before - (_own_ticks() - own_before)) / max(1, total - total_before)
    result.update(
        times=times,
        best_s=min(times),
        median_s=statistics.median(times),
        peak_mib=max(peaks) / 1024,
        other_load=max(0.0, other),
    )
    return result


def _machine() -> dict[str, str]:
    import torch
    import transformers

    model_name = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model_name = match.group(1).strip() if match else model_name
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(re.search(r"^MemTotal:\s+(\d+)", meminfo.read_text(), re.MULTILINE).group(1))
        memory = f", {kib / 2**20:.0f} GiB RAM"
    return {
        "cpu": f"{model_name}, {os.cpu_count()} logical CPUs{memory}",
        "software": f"python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}",
    }


def _spawn(implementation: str, input_name: str, repeats: int, preset: str) -> dict:
    command = [sys.executable, __file__, "--child", implementation, input_name]
    command += ["--repeats", str(repeats), "--preset", preset]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"benchmark child {implementation} / {input_name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: list[dict]) -> str:
    """The markdown tables: one row per configuration, then the sdpa/eager ratios and the targets."""
    peak_matmul = max(r["matmul_gflops"] for r in results)
    per_child = ", ".join(f"{r['matmul_gflops']:.0f}" for r in results)
    lines = [
        f"fp32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: best {peak_matmul:.0f} GFLOP/s in this run (per child: {per_child})",
        "",
        "| input | attention | tokens | GFLOP | best s | median s | GFLOP/s | % of matmul | peak MiB "
        "| attn kernel calls (fused/softmax) | other load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        gflops = r["gflop"] / r["best_s"]
        lines.append(
            f"| {r['input']} | {r['implementation']} | {r['tokens']:.0f} | {r['gflop']:.0f} | {r['best_s']:.2f} "
            f"| {r['median_s']:.2f} | {gflops:.0f} | {100 * gflops / peak_matmul:.0f}% | {r['peak_mib']:.0f} "
            f"| {r['kernel_calls']['fused']}/{r['kernel_calls']['softmax']} | {100 * r['other_load']:.0f}% |"
        )
    lines += [
        "",
        "| input | sdpa speedup (eager best / sdpa best) | memory ratio (sdpa / eager peak) | sdpa % of matmul |",
        "|---|---:|---:|---:|",
    ]
    verdicts = []
    for input_name in INPUTS:
        by_impl = {r["implementation"]: r for r in results if r["input"] == input_name}
        if set(by_impl) != set(IMPLEMENTATIONS):
            continue
        eager, sdpa = by_impl["eager"], by_impl["sdpa"]
        speedup = eager["best_s"] / sdpa["best_s"]
        memory = sdpa["peak_mib"] / eager["peak_mib"]
        fraction = sdpa["gflop"] / sdpa["best_s"] / peak_matmul
        lines.append(f"| {input_name} | {speedup:.2f}x | {memory:.2f}x | {100 * fraction:.0f}% |")
        if input_name.startswith("video"):
            verdicts += [
                f"- sdpa >= {TARGET_SPEEDUP}x faster than eager on the video: {speedup:.2f}x, "
                f"{_verdict(speedup >= TARGET_SPEEDUP)}",
                f"- sdpa peak memory <= {TARGET_MEMORY_RATIO}x eager's on the video: {memory:.2f}x, "
                f"{_verdict(memory <= TARGET_MEMORY_RATIO)}",
            ]
        verdicts.append(
            f"- sdpa >= {100 * TARGET_MATMUL_FRACTION:.0f}% of matmul throughput on the {input_name}: "
            f"{100 * fraction:.0f}%, {_verdict(fraction >= TARGET_MATMUL_FRACTION)}"
        )
    return "\n".join([*lines, "", "Targets:", *verdicts])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, help="timed forwards per configuration (default: 3 image, 2 video)")
    parser.add_argument("--input", action="append", choices=list(INPUTS), help="only this input (repeatable)")
    parser.add_argument("--preset", default="large", help="model preset (default: large, the one the targets are for)")
    parser.add_argument("--child", nargs=2, metavar=("IMPLEMENTATION", "INPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(*args.child, args.repeats, args.preset)))
        return 0
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("this benchmark reads peak memory from Linux /proc (VmHWM, clear_refs); run it on Linux")
    machine = _machine()
    print(f"machine: {machine['cpu']}\nsoftware: {machine['software']}\npreset: {args.preset}", flush=True)
    started = time.perf_counter()
    results = []
    for input_name in args.input or INPUTS:
        default_repeats = INPUTS[input_name][1]
        for implementation in IMPLEMENTATIONS:
            result = _spawn(implementation, input_name, args.repeats or default_repeats, args.preset)
            print(
                f"  {input_name} {implementation}: best {result['best_s']:.2f} s, peak +{result['peak_mib']:.0f} MiB",
                flush=True,
            )
            results.append(result)
    print(f"\n{report(results)}\n\ntotal benchmark time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
