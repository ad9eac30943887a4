"""Forward latency and peak memory of the `large` preset on CPU, fp32 and bf16: eager vs the default attention.

Run from a checkout (llava_vit need not be installed):

    python benchmarks/forward.py            # image 448x448 and video 16x224x224: 10-15 minutes on 2 cores
    python benchmarks/forward.py --input "video 64x224x224"   # 16384 tokens, bf16 only: a few more minutes

Each input runs in its own fresh subprocess with one random-init fp32 model in eval mode under
`torch.inference_mode()`, built with `_from_config(config, attn_implementation="eager")`, and a bf16 copy of it (the
same weights, rounded). The configurations then alternate forward by forward, by setting
`config._attn_implementation` (every layer reads it at call time, which works on transformers 4.57 and 5.x alike):
fp32 eager, fp32 default, bf16 eager, bf16 default, bf16 "sdpa fused", bf16 "blocked". "default" is what the model
runs unless told otherwise (`sdpa`): torch's fused CPU flash kernel in fp32; in bf16 the same kernel on a CPU with
AMX, else the blocked attention (`llava_vit_blocked`) from 2048 tokens on (the image's 1024 tokens keep the fused
kernel). "sdpa fused" is transformers' sdpa function registered under another name, so that bf16 runs torch's fused
kernel whatever the CPU; "blocked" is `llava_vit_blocked`: the two bf16 kernels the default chooses between, so the
run shows whether it chose the faster one on this machine. One warm-up round, then `--repeats` timed rounds. Alternating
matters on a shared machine: other processes' load comes and goes over minutes, and timing the implementations in
separate processes minutes apart compared the load, not the code. Latency is reported as the best (min) and the
median of the timed forwards; throughput and ratios use the best. "other load" is the share of all CPUs that
other processes used during that best forward (from /proc/stat, minus this process's own CPU time): numbers
taken under load understate the machine. The 64-frame video (16384 tokens) runs bf16 default only, once and
without warm-up (its GEMM shapes repeat in all 24 layers): eager would need 32 GiB for one layer's fp32 scores and
softmax, and one forward takes minutes.

Peak memory is what the operating system sees, so it counts every allocator (torch's, oneDNN's, OpenMP's):
before each forward the child returns freed heap pages to the kernel (glibc `malloc_trim`), reads its resident
set size (VmRSS), and resets the kernel's high-water mark (`/proc/self/clear_refs` with "5", Linux >= 4.0);
after the forward, VmHWM - VmRSS(before) is the peak increase during that forward. The reported value is the
largest over all forwards of that configuration. Eager's first forward runs in the fresh process; thanks to
`malloc_trim` the forwards that follow measure the same as in a process of their own (checked: image
117 MiB here vs 116 MiB alone, video 369 vs 373 MiB). tracemalloc would miss torch's native allocations,
and the lifetime `ru_maxrss` cannot be reset, so it would also count model construction.

bf16 accuracy: the first (warm-up) forward's `last_hidden_state` and `pooler_output` of bf16 default are compared
with fp32 default's (which matches eager to 1e-5), as relative errors ||bf16 - fp32|| / ||fp32||.

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
Achieved GFLOP/s is that count over the best latency, and is also given as a fraction of this machine's matmul
throughput in the same dtype (4096x4096 @ 4096x4096, fp32 and bf16), measured in every child before the first
round (best of 5) and after each round (best of 3), and summarised as the best seen in the whole run.

The ceiling says how much of the gap to that matmul rate the model code could still close. Exact attention cannot
run at the GEMM rate: every score needs an exp (float32) on top of its 4 * head_dim GEMM FLOPs. So each child also
times one layer's attention alone at the input's token count (random (1, N, H, D) queries, keys and values, best of
2) with both CPU kernels, torch's fused one and the blocked one, and the ceiling is the time the forward would take
if its attention FLOPs ran at the faster kernel's rate and all its other FLOPs at the matmul rate, with no time at
all for norms, GELU, RoPE and residuals. "default % of ceiling" is that time over the measured best.
"""

from __future__ import annotations

import argparse
import copy
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
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
DTYPES = ("fp32", "bf16")
# What the model runs with `attn_implementation="sdpa"` (its default): torch's fused CPU kernel in fp32, and in bf16
# too with AMX, else the blocked attention from 2048 tokens on. "sdpa fused" and "blocked" force one of the two bf16
# kernels, "eager" is the full-matrix softmax attention every speedup and memory ratio is taken against.
DEFAULT, FUSED, BLOCKED, EAGER = "default", "sdpa fused", "blocked", "eager"
IMPLEMENTATION_NAMES = {DEFAULT: "sdpa", FUSED: "sdpa_fused_cpu", BLOCKED: "llava_vit_blocked", EAGER: "eager"}
BF16_KERNELS = (FUSED, BLOCKED)  # what the bf16 default chooses between (by CPU and token count)
# The CPU features that decide the bf16 rates: avx512_bf16 for bf16 GEMMs at about 4x fp32, AMX for the fused kernel.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


class Input(NamedTuple):
    shape: tuple[int, ...]  # pixel_values
    repeats: int  # default timed rounds
    dtypes: tuple[str, ...]
    implementations: tuple[str, ...]  # in the order they alternate
    warmup: int = 1


INPUTS: dict[str, Input] = {
    "image 448x448": Input((1, 3, 448, 448), 3, DTYPES, (EAGER, DEFAULT, FUSED, BLOCKED)),
    "video 16x224x224": Input((1, 3, 16, 224, 224), 2, DTYPES, (EAGER, DEFAULT, FUSED, BLOCKED)),
    # 16384 tokens: eager would need (16, N, N) fp32 scores and their softmax, 32 GiB; one bf16 forward takes a minute
    # or more on 2 cores, so it runs once, without warm-up (its GEMM shapes repeat in all 24 layers). Which bf16 kernel
    # is faster at this length shows in the attention-alone rates.
    "video 64x224x224": Input((1, 3, 64, 224, 224), 1, ("bf16",), (DEFAULT,), warmup=0),
}
DEFAULT_INPUTS = ("image 448x448", "video 16x224x224")
MATMUL_SIZE = 4096
TARGET_FRACTION = {"fp32": 0.90, "bf16": 0.70}  # of the same dtype's matmul throughput, on the videos
TARGET_MEMORY_RATIO = 0.25  # default / eager peak at 4096 tokens
BF16_TOLERANCE = 2e-2
OUTPUT_NAMES = (
    "last_hidden_state",
    "pooler_output",
)  # relative error of bf16 outputs against fp32 (see tests/test_cpu_attention.py)


def token_count(config, shape: tuple[int, ...]) -> int:
    """Tokens of a (1, C, H, W) image or (1, C, T, H, W) video."""
    frames = shape[2] if len(shape) == 5 else 1
    return frames * (shape[-2] // config.patch_size) * (shape[-1] // config.patch_size)


def attention_flops(config, shape: tuple[int, ...]) -> float:
    """The encoder's attention FLOPs (scores and values, all layers): the part that runs in the attention kernel."""
    n = token_count(config, shape)
    return float(config.num_hidden_layers * 2 * 2 * n * n * config.hidden_size)


def model_flops(config, shape: tuple[int, ...]) -> float:
    """Analytic forward FLOPs of one sample (see the module docstring for the formula)."""
    p, h, i, c = config.patch_size, config.hidden_size, config.intermediate_size, config.num_channels
    n = token_count(config, shape)
    flops = 2 * n * c * p * p * h + attention_flops(config, shape)
    flops += config.num_hidden_layers * (4 * 2 * n * h * h + 2 * 2 * n * h * i)
    if config.use_head:
        flops += 2 * h * h + 2 * 2 * n * h * h + 2 * 2 * n * h + 2 * h * h + 2 * 2 * h * i
    return float(flops)


def matmul_gflops(dtype: str = "fp32", size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """Best-of-`repeats` throughput of one large square matmul in `dtype`, the machine's practical GEMM peak."""
    import torch

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(size, size, dtype=torch_dtype), torch.randn(size, size, dtype=torch_dtype)
    torch.matmul(a, b)
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def attention_gflops(model, tokens: int, repeats: int = 2) -> dict[str, float]:
    """GFLOP/s of one layer's attention alone at `tokens` tokens in the model's dtype, per CPU kernel (fused, blocked).

    The inputs are laid out as the model hands them over: (1, H, N, D) views of (1, N, H, D) tensors.
    """
    import torch

    modeling = sys.modules[type(model).__module__]
    attention = model.encoder.layers[0].self_attn
    shape = (1, tokens, attention.num_heads, attention.head_dim)
    dtype = next(model.parameters()).dtype
    query, key, value = (torch.randn(shape, dtype=dtype).transpose(1, 2) for _ in range(3))
    kernels = {
        FUSED: lambda: torch.nn.functional.scaled_dot_product_attention(query, key, value),
        BLOCKED: lambda: modeling.blocked_attention_forward(attention, query, key, value, None, attention.scaling),
    }
    flops = 2 * 2 * tokens * tokens * attention.num_heads * attention.head_dim
    rates = {}
    for name, kernel in kernels.items():
        kernel()
        rates[name] = flops / min(_timed(kernel) for _ in range(repeats)) / 1e9
    return rates


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


def _attention_kernel_calls(model, torch, tokens: int) -> dict[str, int]:
    """How often a tiny forward runs the fused CPU attention kernel and a softmax: shows which path runs.

    The default picks its kernel by token count too, so the probe is made to pick what `tokens` tokens would.
    """
    modeling = sys.modules[type(model).__module__]
    threshold = modeling.BLOCKED_MIN_TOKENS
    parameter = next(model.parameters())
    tiny = torch.zeros(1, model.config.num_channels, 2 * model.config.patch_size, 2 * model.config.patch_size)
    modeling.BLOCKED_MIN_TOKENS = 0 if tokens >= threshold else threshold
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            model(tiny.to(parameter.dtype))
    finally:
        modeling.BLOCKED_MIN_TOKENS = threshold
    counts = {e.key: e.count for e in profile.key_averages()}
    return {
        "fused": counts.get("aten::_scaled_dot_product_flash_attention_for_cpu", 0),
        "softmax": counts.get("aten::_softmax", 0),
    }


def relative_error(got, want) -> float:
    return ((got.float() - want.float()).norm() / want.float().norm()).item()


def measured_forward(model, pixel_values, libc) -> tuple[float, float, float, object]:
    """(seconds, peak RSS increase in KiB, other processes' share of all CPUs, output) of one forward."""
    libc.malloc_trim(0)
    rss_before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    (busy_before, total_before), own_before = _busy_ticks(), _own_ticks()
    start = time.perf_counter()
    output = model(pixel_values)
    elapsed = time.perf_counter() - start
    peak = _status_kib("VmHWM") - rss_before
    (busy, total), own = _busy_ticks(), _own_ticks()
    other = (busy - busy_before - (own - own_before)) / max(1, total - total_before)
    return elapsed, peak, max(0.0, other), output


def run_input(input_name: str, repeats: int, preset: str, dtypes: tuple[str, ...]) -> list[dict]:
    """Measure every (dtype, implementation) of one input in this fresh process, alternating forward by forward."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    sys.path.insert(0, str(REPO))
    from llava_vit import LlavaViTModel, preset_config

    ALL_ATTENTION_FUNCTIONS.register(IMPLEMENTATION_NAMES[FUSED], sdpa_attention_forward)
    libc = ctypes.CDLL("libc.so.6")
    torch.manual_seed(0)
    spec = INPUTS[input_name]
    config = preset_config(preset)
    # Built through the public path; switching config._attn_implementation then re-routes every layer.
    model = LlavaViTModel._from_config(config, attn_implementation="eager").eval()
    models = {"fp32": model, "bf16": copy.deepcopy(model).to(torch.bfloat16)}  # the same weights, rounded
    models = {dtype: models[dtype] for dtype in dtypes}

    def select(implementation: str) -> None:
        for each in models.values():
            each.config._attn_implementation = IMPLEMENTATION_NAMES[implementation]

    pixel_values = torch.randn(spec.shape)
    runs = {
        (dtype, implementation): {"times": [], "peaks": [], "loads": []}
        for dtype in models
        for implementation in spec.implementations
        if dtype == "bf16" or implementation not in BF16_KERNELS  # in fp32 the default is the fused kernel
    }
    outputs = {}
    with torch.inference_mode():
        kernel_calls = {}
        for dtype, implementation in runs:
            select(implementation)
            kernel_calls[dtype, implementation] = _attention_kernel_calls(
                models[dtype], torch, token_count(config, spec.shape)
            )
        matmul = {dtype: [matmul_gflops(dtype)] for dtype in DTYPES}
        attention = {dtype: attention_gflops(models[dtype], token_count(config, spec.shape)) for dtype in models}
        for round_index in range(spec.warmup + repeats):
            for (dtype, implementation), run in runs.items():
                select(implementation)
                inputs = pixel_values.to(next(models[dtype].parameters()).dtype)
                elapsed, peak, other, output = measured_forward(models[dtype], inputs, libc)
                if implementation == DEFAULT and round_index == 0:
                    outputs[dtype] = (output.last_hidden_state, output.pooler_output)
                del output
                run["peaks"].append(peak)
                if round_index >= spec.warmup:
                    run["times"].append(elapsed)
                    run["loads"].append(other)
            for dtype in DTYPES:
                matmul[dtype].append(matmul_gflops(dtype, repeats=3))
    errors = {}
    if {"fp32", "bf16"} <= set(outputs):
        errors = {
            name: relative_error(got, want)
            for name, got, want in zip(OUTPUT_NAMES, outputs["bf16"], outputs["fp32"], strict=True)
        }
    results = []
    for (dtype, implementation), run in runs.items():
        best = min(range(repeats), key=run["times"].__getitem__)
        results.append(
            {
                "implementation": implementation,
                "dtype": dtype,
                "input": input_name,
                "tokens": token_count(config, spec.shape),
                "gflop": model_flops(config, spec.shape) / 1e9,
                "attention_gflop": attention_flops(config, spec.shape) / 1e9,
                "attention_gflops": attention[dtype],
                "kernel_calls": kernel_calls[dtype, implementation],
                "matmul_gflops": {d: max(values) for d, values in matmul.items()},
                "times": run["times"],
                "best_s": run["times"][best],
                "median_s": statistics.median(run["times"]),
                "other_load": run["loads"][best],
                "peak_mib": max(run["peaks"]) / 1024,
                "bf16_errors": errors if dtype == "bf16" and implementation == DEFAULT else {},
            }
        )
    return results


def _machine() -> dict[str, str]:
    import torch
    import transformers

    sys.path.insert(0, str(REPO))
    from llava_vit.model import modeling_llava_vit

    model_name, flags = platform.processor() or "unknown", "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        text = cpuinfo.read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model_name = match.group(1).strip() if match else model_name
        match = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
        present = set(match.group(1).split()) if match else set()
        flags = " ".join(flag for flag in CPU_FLAGS if flag in present) or "none of " + " ".join(CPU_FLAGS)
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(re.search(r"^MemTotal:\s+(\d+)", meminfo.read_text(), re.MULTILINE).group(1))
        memory = f", {kib / 2**20:.0f} GiB RAM"
    blocked = modeling_llava_vit.BLOCKED_BY_DEFAULT_ON_CPU
    bf16_default = "blocked from 2048 tokens on (no AMX)" if blocked else "sdpa fused (AMX)"
    return {
        "cpu": f"{model_name}, {os.cpu_count()} logical CPUs{memory}; flags: {flags}",
        "attention": "bf16 default attention on this CPU: " + bf16_default,
        "software": f"python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}",
    }


def _spawn(input_name: str, repeats: int, preset: str, dtypes: tuple[str, ...]) -> list[dict]:
    command = [sys.executable, __file__, "--child", input_name, "--repeats", str(repeats), "--preset", preset]
    command += [argument for dtype in dtypes for argument in ("--dtype", dtype)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"benchmark child for {input_name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _kernel(result: dict) -> str:
    """Which attention kernel a configuration ran, from its profiled kernel calls."""
    return FUSED if result["kernel_calls"]["fused"] > 1 else BLOCKED  # 1: at most the pooling head's one query


def report(results: list[dict]) -> str:
    """The markdown tables: one row per configuration, then the ratios and the ceiling, then the targets."""
    peak = {dtype: max(r["matmul_gflops"][dtype] for r in results) for dtype in DTYPES}
    lines = [
        f"{dtype} matmul {MATMUL_SIZE}x{MATMUL_SIZE}: best {peak[dtype]:.0f} GFLOP/s in this run ("
        + ", ".join(
            f"{name} {value:.0f}" for name, value in {r["input"]: r["matmul_gflops"][dtype] for r in results}.items()
        )
        + ")"
        for dtype in DTYPES
    ]
    lines.append("one layer's attention alone, GFLOP/s (sdpa fused / blocked):")
    for (input_name, dtype), rates in {(r["input"], r["dtype"]): r["attention_gflops"] for r in results}.items():
        tokens = next(r["tokens"] for r in results if r["input"] == input_name)
        lines.append(f"  {input_name} ({tokens} tokens) {dtype}: {rates[FUSED]:.0f} / {rates[BLOCKED]:.0f}")
    lines += [
        "",
        "| input | dtype | attention | tokens | GFLOP | best s | median s | GFLOP/s | % of matmul (same dtype) "
        "| peak MiB | attn kernel calls (fused/softmax) | other load |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        gflops = r["gflop"] / r["best_s"]
        lines.append(
            f"| {r['input']} | {r['dtype']} | {r['implementation']} | {r['tokens']:.0f} | {r['gflop']:.0f} "
            f"| {r['best_s']:.2f} | {r['median_s']:.2f} | {gflops:.0f} | {100 * gflops / peak[r['dtype']]:.0f}% "
            f"| {r['peak_mib']:.0f} | {r['kernel_calls']['fused']}/{r['kernel_calls']['softmax']} "
            f"| {100 * r['other_load']:.0f}% |"
        )
    lines += [
        "",
        "| input | dtype | default % of matmul | ceiling % of matmul | default % of ceiling | speedup over eager "
        "| speedup over sdpa fused / blocked | memory (default / eager) "
        "| bf16 rel. error vs fp32 (last_hidden_state / pooler_output) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    verdicts = []
    for input_name in dict.fromkeys(r["input"] for r in results):
        for dtype in DTYPES:
            by_impl = {r["implementation"]: r for r in results if r["input"] == input_name and r["dtype"] == dtype}
            if DEFAULT not in by_impl:
                continue
            default = by_impl[DEFAULT]
            fraction = default["gflop"] / default["best_s"] / peak[dtype]
            attention_rate = max(default["attention_gflops"].values())
            other_gflop = default["gflop"] - default["attention_gflop"]
            ceiling_s = other_gflop / peak[dtype] + default["attention_gflop"] / attention_rate
            eager = by_impl.get(EAGER)
            speedup = f"{eager['best_s'] / default['best_s']:.2f}x" if eager else "n/a"
            over_kernels = " / ".join(
                f"{by_impl[kernel]['best_s'] / default['best_s']:.2f}x" for kernel in BF16_KERNELS if kernel in by_impl
            )
            memory = default["peak_mib"] / eager["peak_mib"] if eager else None
            errors = default["bf16_errors"]
            error_text = " / ".join(f"{errors[k]:.4f}" for k in OUTPUT_NAMES) if errors else ""
            ceiling_fraction = default["gflop"] / ceiling_s / peak[dtype]
            lines.append(
                f"| {input_name} | {dtype} | {100 * fraction:.0f}% "
                f"| {100 * ceiling_fraction:.0f}% | {100 * ceiling_s / default['best_s']:.0f}% "
                f"| {speedup} | {over_kernels or 'n/a'} | {f'{memory:.2f}x' if memory is not None else 'n/a'} "
                f"| {error_text or 'n/a'} |"
            )
            if input_name.startswith("video"):
                target = TARGET_FRACTION[dtype]
                verdicts.append(
                    f"- {dtype} default >= {100 * target:.0f}% of {dtype} matmul throughput on the {input_name}: "
                    f"{100 * fraction:.0f}%, {_verdict(fraction >= target)}"
                )
            if memory is not None and default["tokens"] == 4096:
                verdicts.append(
                    f"- {dtype} default peak memory <= {TARGET_MEMORY_RATIO}x eager's at 4096 tokens: {memory:.2f}x, "
                    f"{_verdict(memory <= TARGET_MEMORY_RATIO)}"
                )
            if all(kernel in by_impl for kernel in BF16_KERNELS):
                faster = min(BF16_KERNELS, key=lambda kernel: by_impl[kernel]["best_s"])
                verdicts.append(
                    f"- bf16 default runs the faster of sdpa fused and blocked on the {input_name}: it runs "
                    f"{_kernel(default)}, the faster measured {faster}, {_verdict(_kernel(default) == faster)}"
                )
            if errors:
                worst = max(errors.values())
                verdicts.append(
                    f"- bf16 relative error vs fp32 <= {BF16_TOLERANCE} on the {input_name}: {worst:.4f}, "
                    f"{_verdict(worst <= BF16_TOLERANCE)}"
                )
    return "\n".join([*lines, "", "Targets:", *verdicts])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, help="timed forwards per configuration (default: per input)")
    parser.add_argument(
        "--input",
        action="append",
        choices=list(INPUTS),
        help=f"only this input (repeatable; default {DEFAULT_INPUTS})",
    )
    parser.add_argument("--dtype", action="append", choices=DTYPES, help="only this dtype (repeatable; default: both)")
    parser.add_argument("--preset", default="large", help="model preset (default: large, the one the targets are for)")
    parser.add_argument("--child", metavar="INPUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    dtypes = tuple(args.dtype or DTYPES)
    if args.child:
        dtypes = tuple(d for d in dtypes if d in INPUTS[args.child].dtypes)
        print(json.dumps(run_input(args.child, args.repeats, args.preset, dtypes)))
        return 0
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("this benchmark reads peak memory from Linux /proc (VmHWM, clear_refs); run it on Linux")
    machine = _machine()
    print(f"machine: {machine['cpu']}\nsoftware: {machine['software']}\n{machine['attention']}", flush=True)
    print(f"preset: {args.preset}", flush=True)
    started = time.perf_counter()
    results = []
    for input_name in args.input or DEFAULT_INPUTS:
        if not set(dtypes) & set(INPUTS[input_name].dtypes):
            continue
        for result in _spawn(input_name, args.repeats or INPUTS[input_name].repeats, args.preset, dtypes):
            times = ", ".join(f"{t:.2f}" for t in result["times"])
            print(
                f"  {input_name} {result['dtype']} {result['implementation']}: {times} s, "
                f"peak +{result['peak_mib']:.0f} MiB",
                flush=True,
            )
            results.append(result)
    print(f"\n{report(results)}\n\ntotal benchmark time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
