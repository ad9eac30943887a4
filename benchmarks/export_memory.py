"""Peak resident memory of `llava-vit export` relative to the size of the weights it converts.

Writes a random checkpoint of a preset's shapes (float32, as .pth and .safetensors) into a temporary
folder, then runs `python -m llava_vit export` on it in child processes and reads each child's peak RSS
from wait4(). The target is a peak of at most 1.25x the checkpoint's size.

usage: python benchmarks/export_memory.py [--preset huge] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE_CHECKPOINT = """
import sys, torch
from safetensors.torch import save_file
from llava_vit import LlavaViTConfig
from llava_vit.model.presets import preset_config
from llava_vit.weights.checkpoint import expected_shapes
shapes = expected_shapes(preset_config(sys.argv[1]))
generator = torch.Generator().manual_seed(0)
state = {name: torch.randn(shape, generator=generator) * 0.02 for name, shape in shapes.items()}
torch.save({"model": {"module." + name: tensor for name, tensor in state.items()}}, sys.argv[2])
save_file(state, sys.argv[3], metadata={"format": "pt"})
print(sum(t.numel() * t.element_size() for t in state.values()))
"""


def peak_rss(command: list[str], cwd: Path) -> tuple[int, float]:
    """Run `command`; return its peak RSS in bytes (Linux ru_maxrss is in KiB) and its wall time."""
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return usage.ru_maxrss * 1024, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="huge", help="preset whose shapes the random checkpoint has")
    parser.add_argument("--workdir", type=Path, help="where to put the checkpoint (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-memory-", dir=args.workdir) as work:
        work = Path(work)
        pth, safetensors = work / "checkpoint.pth", work / "checkpoint.safetensors"
        made = subprocess.run(
            [sys.executable, "-c", MAKE_CHECKPOINT, args.preset, str(pth), str(safetensors)],
            check=True,
            capture_output=True,
            text=True,
        )
        weight_bytes = int(made.stdout.split()[-1])
        baseline, _ = peak_rss([sys.executable, "-c", "import llava_vit.export"], work)
        scenarios = [
            ("import llava_vit.export only", None, []),
            (".pth (mmap) -> float32, 1 file", pth, ["--dtype", "float32"]),
            (".pth (mmap) -> bfloat16, 1 file", pth, ["--dtype", "bfloat16"]),
            (".pth (mmap) -> float32, 1GB shards", pth, ["--dtype", "float32", "--max-shard-size", "1GB"]),
            (".safetensors -> float32, 1 file", safetensors, ["--dtype", "float32"]),
            (".safetensors -> float16, 1 file", safetensors, ["--dtype", "float16"]),
        ]
        print(f"preset {args.preset}: {weight_bytes / 2**30:.2f} GiB of float32 weights")
        print("| export | peak RSS | peak / weights | wall |")
        print("|---|---|---|---|")
        for label, weights, extra in scenarios:
            if weights is None:
                rss, elapsed = baseline, 0.0
            else:
                out = work / "out"
                command = [sys.executable, "-m", "llava_vit", "export", str(out), "--preset", args.preset]
                rss, elapsed = peak_rss([*command, "--weights", str(weights), *extra], work)
                shutil.rmtree(out)
            wall = f"{elapsed:.1f} s" if elapsed else "-"
            print(f"| {label} | {rss / 2**30:.2f} GiB | {rss / weight_bytes:.2f}x | {wall} |")


if __name__ == "__main__":
    main()
