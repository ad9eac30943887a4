"""One half of `llava-vit adopt`'s proof, run by file path in a fresh, offline interpreter: load a model folder
with AutoModel (its own remote code) and AutoImageProcessor (its own preprocessor config), in float32, and write
its outputs on fixed inputs. adopt runs it once on the source repo (with the interpreter `--python` names, since
upstream's code is correct on transformers 4.57 only) and once on the adopted folder, then compares.

It imports only the standard library, numpy, torch, transformers, safetensors and PIL, never llava_vit (the
interpreter may have none): the inputs are made here from fixed seeds, so both runs see the same ones.

usage: python -I _proof_worker.py FOLDER OUTPUT.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run by path: never import the package this file sits in
    _here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if entry and Path(entry).resolve() != _here]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoImageProcessor, AutoModel  # noqa: E402

FRAMES = 4
TARGET_FRAMES = 64  # where LlavaViTProcessor (and upstream's recipe) puts sampled frames on the timeline
IMAGE_SIZES = {"image_square": (320, 320), "image_nonsquare": (480, 640)}  # (height, width)


def picture(height: int, width: int, seed: int) -> Image.Image:
    """A fixed picture with structure at every scale: gradients, a few discs, and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [
        128 + 100 * np.sin(x / 23.0 + seed),
        128 + 100 * np.cos(y / 17.0),
        255 * (x + y) / (height + width),
    ]
    image = np.stack(channels, axis=-1)
    for _ in range(5):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(10, min(height, width) // 3)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    image += rng.normal(0, 12, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def video_inputs(config) -> dict[str, torch.Tensor]:
    """A 5D clip at the video resolution, a fixed subset of its tokens, and explicit positions on the timeline."""
    patch = config.patch_size
    side = max(patch, (min(224, config.image_size) // patch) * patch)
    rng = np.random.default_rng(1)
    video = torch.from_numpy(rng.normal(0, 1, (1, config.num_channels, FRAMES, side, side)).astype(np.float32))
    grid = side // patch
    tokens = FRAMES * grid * grid
    keep = np.sort(rng.choice(tokens, size=max(1, tokens // 3), replace=False))
    visible = torch.from_numpy(keep.astype(np.int64)).unsqueeze(0)
    times = np.linspace(0, TARGET_FRAMES - 1, FRAMES).astype(np.int64)
    t, h, w = np.meshgrid(times, np.arange(grid), np.arange(grid), indexing="ij")
    positions = torch.from_numpy(np.stack([t.ravel(), h.ravel(), w.ravel()], axis=-1)).unsqueeze(0)
    return {"video": video, "visible_indices": visible, "patch_positions": positions}


def main(folder: str, output: str) -> int:
    major = int(transformers.__version__.split(".")[0])
    dtype_key = "dtype" if major >= 5 else "torch_dtype"
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, **{dtype_key: torch.float32}).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    cases: dict[str, dict] = {}
    for index, (name, (height, width)) in enumerate(IMAGE_SIZES.items()):
        pixels = processor(images=picture(height, width, index), return_tensors="pt")["pixel_values"]
        cases[name] = {"pixel_values": pixels.float()}
    video = video_inputs(model.config)
    cases["video"] = {"pixel_values": video["video"]}
    cases["video_visible_indices"] = {"pixel_values": video["video"], "visible_indices": video["visible_indices"]}
    cases["video_patch_positions"] = {"pixel_values": video["video"], "patch_positions": video["patch_positions"]}
    tensors: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, inputs in cases.items():
            out = model(**inputs)
            tensors[f"{name}.last_hidden_state"] = out.last_hidden_state.float().contiguous()
            if out.pooler_output is not None:
                tensors[f"{name}.pooler_output"] = out.pooler_output.float().contiguous()
            if name.startswith("image"):
                tensors[f"{name}.pixel_values"] = inputs["pixel_values"].contiguous()
    save_file(tensors, output, metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
