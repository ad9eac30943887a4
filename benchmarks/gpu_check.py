"""GPU check: flash_attention_2 vs sdpa vs eager on the `large` preset in bf16: parity, speed, peak memory.

Run from a checkout on a CUDA machine (llava_vit need not be installed; flash-attn is optional):

    python benchmarks/gpu_check.py                # large preset, image 448x448 and video 8x224x224, batch 1
    python benchmarks/gpu_check.py --dry-run      # CPU smoke test of this script: tiny config, sdpa and eager

One random-init model (seed 0) is made in fp32 with eager attention: the reference. Each implementation then
gets a bf16 copy of the same weights, built through `_from_config(attn_implementation=...)`, the path a user's
`from_pretrained(..., attn_implementation=...)` takes, so a missing flash-attn gives transformers' own error,
which is printed and the implementation skipped (`--require-flash` makes that a failure).

Parity: for last_hidden_state and pooler_output, the max abs difference to eager in bf16 and to eager in fp32,
and the relative error ||x - ref|| / ||ref|| (Frobenius norms), which decides. bf16 keeps 8 significant bits
(2**-8 = 0.4% per rounding) and 24 layers accumulate them: on CPU, the large preset in bf16 gave relative errors
of 1.3e-2 (last_hidden_state) and 7e-3 (pooler_output), eager and sdpa alike, against fp32 eager and against each
other; a real bug (a causal mask, a wrong RoPE pairing) is off by tens of percent. An implementation passes at a
relative error of at most 3e-2 against both bf16 and fp32 eager (`--tolerance`).
The max abs difference is reported, not judged: after LayerNorm the outputs reach about 5, where one bf16 step
is 0.03, so two correct bf16 kernels differ there by a few such steps.
Speed: median of `--repeats` forwards after 2 warm-ups, timed with CUDA events. Memory: peak
`torch.cuda.max_memory_allocated` during one forward, total and above the weights and input already allocated.

Exit status: 0 when every implementation that ran is within tolerance, 1 when one is not, 2 when the check
cannot run as asked (no CUDA without --dry-run, or --require-flash without a working flash_attention_2).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llava_vit import LlavaViTConfig, LlavaViTModel  # noqa: E402
from llava_vit.model.presets import preset_config

IMPLEMENTATIONS = ("flash_attention_2", "sdpa", "eager")
INPUTS = {"image 448x448": (1, 3, 448, 448), "video 8x224x224": (1, 3, 8, 224, 224)}
DRY_RUN_CONFIG = dict(hidden_size=128, num_attention_heads=2, num_hidden_layers=2, intermediate_size=256)
DRY_RUN_INPUTS = {"image 56x56": (1, 3, 56, 56), "video 2x28x42": (1, 3, 2, 28, 42)}
OUTPUTS = ("last_hidden_state", "pooler_output")


def build(config: LlavaViTConfig, implementation: str, dtype: torch.dtype, device: torch.device, weights: dict):
    """A model with `implementation` and the given weights, or transformers' error as a string."""
    try:
        with torch.device(device):
            # _from_config writes the implementation into the config it gets: give it a copy.
            model = LlavaViTModel._from_config(copy.deepcopy(config), attn_implementation=implementation, dtype=dtype)
    except (ImportError, ValueError) as error:
        return str(error).strip().splitlines()[0]
    model.load_state_dict(weights, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def forward_outputs(model, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        output = model(pixel_values.to(model.dtype))
    return {name: getattr(output, name).float() for name in OUTPUTS}


def errors(value: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(max abs difference, relative error ||value - reference|| / ||reference||)."""
    difference = value - reference
    return difference.abs().max().item(), (difference.norm() / reference.norm().clamp_min(1e-12)).item()


def time_forward(model, pixel_values: torch.Tensor, repeats: int) -> float:
    """Median forward time in ms (CUDA events on GPU, perf_counter on CPU), after 2 warm-ups."""
    pixel_values = pixel_values.to(model.dtype)
    times = []
    with torch.inference_mode():
        for index in range(2 + repeats):
            if pixel_values.is_cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(pixel_values)
                end.record()
                torch.cuda.synchronize()
                elapsed = start.elapsed_time(end)
            else:
                began = time.perf_counter()
                model(pixel_values)
                elapsed = 1000 * (time.perf_counter() - began)
            if index >= 2:
                times.append(elapsed)
    return statistics.median(times)


def peak_memory_mib(model, pixel_values: torch.Tensor) -> tuple[float, float] | None:
    """(peak allocated during one forward, the part above what was allocated before it) in MiB; None on CPU."""
    if not pixel_values.is_cuda:
        return None
    pixel_values = pixel_values.to(model.dtype)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model(pixel_values)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return peak / 2**20, (peak - before) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny config on CPU, sdpa and eager only")
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per implementation and input")
    parser.add_argument("--tolerance", type=float, default=3e-2, help="max relative error vs bf16 and fp32 eager")
    parser.add_argument("--require-flash", action="store_true", help="exit 2 when flash_attention_2 cannot run")
    args = parser.parse_args()

    if args.dry_run:
        device, config, inputs = torch.device("cpu"), LlavaViTConfig(**DRY_RUN_CONFIG), DRY_RUN_INPUTS
        implementations = ("sdpa", "eager")
        print("dry run on CPU: tiny config; flash_attention_2 needs CUDA and is not tried")
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: run this on a GPU machine, or pass --dry-run to smoke-test it on CPU")
            return 2
        device, config, inputs = torch.device("cuda"), preset_config("large"), INPUTS
        implementations = IMPLEMENTATIONS
        print(f"device: {torch.cuda.get_device_name(device)}")
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")

    torch.manual_seed(0)
    reference = build(config, "eager", torch.float32, device, LlavaViTModel(copy.deepcopy(config)).state_dict())
    weights = reference.state_dict()
    models = {}
    for implementation in implementations:
        model = build(config, implementation, torch.bfloat16, device, weights)
        if isinstance(model, str):
            print(f"SKIPPED {implementation}: {model}")
            if args.require_flash and implementation == "flash_attention_2":
                return 2
        else:
            models[implementation] = model

    failures = []
    print(
        "\n| input | attention | output | max abs diff vs bf16 eager | rel. error "
        "| max abs diff vs fp32 eager | rel. error | median ms | peak MiB (above weights+input) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for input_name, shape in inputs.items():
        generator = torch.Generator().manual_seed(1)
        pixel_values = torch.randn(shape, generator=generator).to(device)
        expected_fp32 = forward_outputs(reference, pixel_values)
        expected_bf16 = forward_outputs(models["eager"], pixel_values)
        for implementation, model in models.items():
            got = forward_outputs(model, pixel_values)
            milliseconds = time_forward(model, pixel_values, args.repeats)
            memory = peak_memory_mib(model, pixel_values)
            memory_text = f"{memory[0]:.0f} ({memory[1]:.0f})" if memory else "-"
            for name in OUTPUTS:
                diff_bf16, rel_bf16 = errors(got[name], expected_bf16[name])
                diff_fp32, rel_fp32 = errors(got[name], expected_fp32[name])
                if max(rel_bf16, rel_fp32) > args.tolerance:
                    failures.append(f"{input_name} / {implementation} / {name}")
                print(
                    f"| {input_name} | {implementation} | {name} | {diff_bf16:.3g} | {rel_bf16:.2e} | {diff_fp32:.3g} "
                    f"| {rel_fp32:.2e} | {milliseconds:.1f} | {memory_text} |"
                )
    if failures:
        print(f"\nPARITY FAILED (relative tolerance {args.tolerance:g}): {', '.join(failures)}")
        return 1
    print(f"\nparity OK for {', '.join(models)} (relative tolerance {args.tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
