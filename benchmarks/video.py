"""Codec-style token budgets: tokens kept vs encode time for one video clip, through LlavaViTProcessor.

Run from a checkout (needs PyAV, `pip install av`, to write and read the clip):

    python benchmarks/video.py                      # small preset, 64 frames, budgets 100%, 50%, 25%
    python benchmarks/video.py --preset base --video my_clip.mp4

The clip (unless --video names one) is written with PyAV: a square moving over a static textured background,
`--frames` frames of 256x256, H.264. The processor (the shipped `processing_llava_vit.py`, at video_size 224 and
a `--frames`-frame timeline) decodes it once per budget (timed as "prepare": decode, resize, normalise, and the
residual top-k when a budget is set); the model (random init, fp32, eval, `torch.inference_mode()`, sdpa) then
encodes `visible_indices` only: one warm-up forward per budget, then `--repeats` timed forwards, budgets
alternating round by round so that a shared machine's changing load spreads over all of them. Reported: kept
tokens, best and median encode time, speedup over the full clip, and the prepare time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_clip(path: Path, frames: int, size: int = 256) -> Path:
    """A white square crossing a static textured background, as H.264 .mp4."""
    import av
    import numpy as np

    tiles = np.random.default_rng(0).integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    background = tiles.repeat(16, axis=0).repeat(16, axis=1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=16)
        stream.height = stream.width = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            frame = background.copy()
            x = t * (size - 64) // max(1, frames - 1)
            frame[96:160, x : x + 64] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--budgets", type=float, nargs="+", default=[1.0, 0.5, 0.25], help="fractions of the tokens")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--video", type=Path, help="a video file (default: a generated clip)")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    args = parser.parse_args()

    import torch
    from transformers import CLIPImageProcessor
    from transformers import __version__ as transformers_version

    from llava_vit import LlavaViTModel, preset_config
    from llava_vit.model.processing_llava_vit import LlavaViTProcessor
    from llava_vit.repo_contract import VIDEO_SIZE, preprocessor_config

    config = preset_config(args.preset)
    image_config = {k: v for k, v in preprocessor_config(config.image_size).items() if k != "image_processor_type"}
    processor = LlavaViTProcessor(
        CLIPImageProcessor(**image_config),
        video_size=VIDEO_SIZE,
        num_frames=args.frames,
        target_frames=args.frames,
        patch_size=config.patch_size,
    )
    model = LlavaViTModel._from_config(config, attn_implementation="sdpa").to(args.device).eval()
    total = args.frames * (VIDEO_SIZE // config.patch_size) ** 2

    with tempfile.TemporaryDirectory() as folder:
        video = args.video or write_clip(Path(folder) / "clip.mp4", args.frames)
        inputs, prepare = {}, {}
        for fraction in args.budgets:
            kept = max(1, round(total * fraction))
            start = time.perf_counter()
            batch = processor(videos=str(video), max_tokens=None if kept == total else kept)
            prepare[fraction] = time.perf_counter() - start
            inputs[fraction] = (kept, batch.to(args.device))
    timings: dict[float, list[float]] = {fraction: [] for fraction in args.budgets}
    with torch.inference_mode():
        for round_index in range(1 + args.repeats):
            for fraction, (kept, batch) in inputs.items():
                _sync(args.device)
                start = time.perf_counter()
                output = model(**batch)
                _sync(args.device)
                if round_index:
                    timings[fraction].append(time.perf_counter() - start)
                assert output.last_hidden_state.shape[1] == kept

    threads = torch.get_num_threads()
    print(
        f"{args.preset} preset, {args.frames} frames at {VIDEO_SIZE}x{VIDEO_SIZE} ({total} tokens), sdpa fp32, "
        f"{args.device}: {cpu_name() if args.device == 'cpu' else torch.cuda.get_device_name()}, {threads} threads; "
        f"torch {torch.__version__}, transformers {transformers_version}; best of {args.repeats}"
    )
    print()
    print("| budget | tokens kept | encode best s | encode median s | speedup vs 100% | prepare s |")
    print("|---:|---:|---:|---:|---:|---:|")
    full = min(timings[args.budgets[0]])
    for fraction in args.budgets:
        best, median = min(timings[fraction]), statistics.median(timings[fraction])
        print(
            f"| {fraction:.0%} | {inputs[fraction][0]} | {best:.3f} | {median:.3f} | {full / best:.2f}x | "
            f"{prepare[fraction]:.2f} |"
        )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
