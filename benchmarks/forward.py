"""Forward latency and peak memory of the `large` preset on CPU: eager vs sdpa, image and video.

Run from a checkout (llava_vit need not be installed):

    python benchmarks/forward.py            # about 3-5 minutes on 2 cores

Each input runs in its own fresh subprocess with one random-init fp32 model in eval mode under
`torch.inference_mode()`, built with `_from_config(config, attn_implementation="eager")`; eager and sdpa then
alternate forward by forward by setting `config._attn_implementation` (every layer reads it at call time, which
works on transformers 4.57 and 5.x alike): one warm-up round, then `--repeats` timed rounds. Alternating matters
on a shared machine: other processes' load comes and goes over minutes, and timing the two implementations in
separate processes minutes apart compared the load, not the code. Latency is reported as the best (min) and the
median of the timed forwards; throughput and ratios use the best. "other load" is the share of all CPUs that
other processes used during that best forward (from /proc/stat, minus this process's own CPU time): numbers
taken under load understate the machine.

Peak memory is what the operating system sees, so it counts every allocator (torch's, oneDNN's, OpenMP's):
before each forward the child returns freed heap pages to the kernel (glibc `malloc_trim`), reads its resident
set size (VmRSS), and resets the kernel's high-water mark (`/proc/self/clear_refs` with "5", Linux >= 4.0);
after the forward, VmHWM - VmRSS(before) is the peak increase during that forward. The reported value is the
largest over all forwards of that implementation. Eager's first forward runs in the fresh process; thanks to
`malloc_trim` the sdpa forwards that follow measure the same as in a process of their own (checked: image
117 MiB here vs 116 MiB alone, video 369 vs 373 MiB). tracemalloc would miss torch's native allocations,
and the lifetime `ru_maxrss` cannot be reset, so it would also count model construction.

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
matmul throughput (4096x4096 @ 4096x4096), measured in every child before the first round (best of 5) and after
each round (best of 3), and summarised as the best seen in the whole run.
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


def measured_forward(model, pixel_values, libc) -> tuple[float, float, float]:
    """(seconds, peak RSS increase in KiB, other processes' share of all CPUs) of one forward."""
    libc.malloc_trim(0)
    rss_before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    (busy_before, total_before), own_before = _busy_ticks(), _own_ticks()
    elapsed = _timed(lambda: model(pixel_values))
    peak = _status_kib("VmHWM") - rss_before
    (busy, total), own = _busy_ticks(), _own_ticks()
    other = (busy - busy_before - (own - own_before)) / max(1, total - total_before)
    return elapsed, peak, max(0.0, other)


def run_input(input_name: str, repeats: int, preset: str) -> list[dict]:
    """Measure both implementations on one input in this fresh process, alternating them forward by forward."""
    import torch

    sys.path.insert(0, str(REPO))
    from llava_vit import LlavaViTModel, preset_config

    libc = ctypes.CDLL("libc.so.6")
    torch.manual_seed(0)
    config = preset_config(preset)
    # Built through the public path; switching config._attn_implementation then re-routes every layer.
    model = LlavaViTModel._from_config(config, attn_implementation=IMPLEMENTATIONS[0]).eval()
    shape, _ = INPUTS[input_name]
    pixel_values = torch.randn(shape)
    runs = {implementation: {"times": [], "peaks": [], "loads": []} for implementation in IMPLEMENTATIONS}
    with torch.inference_mode():
        kernel_calls = {}
        for implementation in IMPLEMENTATIONS:
            model.config._attn_implementation = implementation
            kernel_calls[implementation] = _attention_kernel_calls(model, torch)
        matmul = [matmul_gflops()]
        for round_index in range(1 + repeats):
            for implementation in IMPLEMENTATIONS:
                model.config._attn_implementation = implementation
                elapsed, peak, other = measured_forward(model, pixel_values, libc)
                runs[implementation]["peaks"].append(peak)
                if round_index:
                    runs[implementation]["times"].append(elapsed)
                    runs[implementation]["loads"].append(other)
            matmul.append(matmul_gflops(repeats=3))
    results = []
    for implementation, run in runs.items():
        best = min(range(repeats), key=run["times"].__getitem__)
        results.append(
            {
                "implementation": implementation,
                "input": input_name,
                "tokens": token_count(config, shape),
                "gflop": model_flops(config, shape) / 1e9,
                "kernel_calls": kernel_calls[implementation],
                "matmul_gflops": max(matmul),
                "times": run["times"],
                "best_s": run["times"][best],
                "median_s": statistics.median(run["times"]),
                "other_load": run["loads"][best],
                "peak_mib": max(run["peaks"]) / 1024,
            }
        )
    return results


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


def _spawn(input_name: str, repeats: int, preset: str) -> list[dict]:
    command = [sys.executable, __file__, "--child", input_name, "--repeats", str(repeats), "--preset", preset]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"benchmark child for {input_name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: list[dict]) -> str:
    """The markdown tables: one row per configuration, then the sdpa/eager ratios and the targets."""
    peak_matmul = max(r["matmul_gflops"] for r in results)
    per_input = ", ".join(f"{r['input']} {r['matmul_gflops']:.0f}" for r in results[::2])
    lines = [
        f"fp32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: best {peak_matmul:.0f} GFLOP/s in this run ({per_input})",
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
    parser.add_argument("--child", metavar="INPUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_input(args.child, args.repeats, args.preset)))
        return 0
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("this benchmark reads peak memory from Linux /proc (VmHWM, clear_refs); run it on Linux")
    machine = _machine()
    print(f"machine: {machine['cpu']}\nsoftware: {machine['software']}\npreset: {args.preset}", flush=True)
    started = time.perf_counter()
    results = []
    for input_name in args.input or INPUTS:
        for result in _spawn(input_name, args.repeats or INPUTS[input_name][1], args.preset):
            times = ", ".join(f"{t:.2f}" for t in result["times"])
            print(
                f"  {input_name} {result['implementation']}: {times} s, peak +{result['peak_mib']:.0f} MiB", flush=True
            )
            results.append(result)
    print(f"\n{report(results)}\n\ntotal benchmark time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
