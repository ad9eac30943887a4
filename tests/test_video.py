"""From a video file to embeddings: LlavaViTProcessor, loaded by repo id through the local Hub in a clean
environment (torch, transformers and av; no llava_vit), on real .mp4 clips written with PyAV; and every bad
input, refused with one clear ValueError."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from published_repos import ARCH, export_repo, git, new_repo
from reference import architecture
from video_clips import SIZE, SQUARE, TOP, clip_frames, decode_all, write_clip

from llava_vit import select_patches_by_residual
from llava_vit.checks.check import processor_config_problems
from llava_vit.checks.sync import sync_repo
from llava_vit.model.processing_llava_vit import LlavaViTProcessor
from llava_vit.repo_contract import PROCESSOR_AUTO_MAP, PROCESSOR_CONFIG_FILE, VIDEO_SIZE, processor_config

EXPORTED = "video-org/exported-vit"
CARD_REPO = "video-org/card-vit"
PATCH = architecture(ARCH)["patch_size"]  # 14: 224 / 14 = 16x16 patches per frame, 4x4 pixels of a 64x64 clip
SIDE = VIDEO_SIZE // PATCH
SCALE = SIZE // SIDE  # clip pixels per patch side
MOVING_FRAMES = 6  # sampled from a 12-frame clip whose square moves 4 pixels (one patch) a frame


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(b"this is not a video\n" * 50)
    empty = folder / "empty.mp4"
    empty.touch()
    return {
        "long": write_clip(folder / "long.mp4", clip_frames(24, step=2)),
        "moving": write_clip(folder / "moving.mp4", clip_frames(12, step=4)),
        "short": write_clip(folder / "short.mp4", clip_frames(3, step=4)),
        "garbage": garbage,
        "empty": empty,
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exported") / "vit"
    export_repo(folder, EXPORTED)
    return folder


@pytest.fixture(scope="module")
def processor(exported: Path) -> LlavaViTProcessor:
    return LlavaViTProcessor.from_pretrained(exported)


@pytest.fixture(scope="module")
def published(local_hub, exported: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The exported repo and a `llava-vit new` repo (with its model card) on the local Hub."""
    card_repo = tmp_path_factory.mktemp("card") / "vit"
    new_repo(card_repo, CARD_REPO)
    for folder, repo_id in ((exported, EXPORTED), (card_repo, CARD_REPO)):
        local_hub.create_repo(repo_id)
        git(folder, "remote", "add", "hub", local_hub.remote_url(repo_id))
        git(folder, "lfs", "push", "hub", "main")  # what git-lfs's pre-push hook does; the full check is skipped
        git(folder, "push", "-q", "--no-verify", "hub", "main")
    return {"endpoint": local_hub.endpoint, "card": str(card_repo / "README.md")}


def run_clean(clean_python: Path, script: str, args: list[str], endpoint: str, home: Path) -> dict:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(home)}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    result = subprocess.run(
        [str(clean_python), "-I", "-c", script, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- by repo id, in a clean environment -------------------------------------------------------------------
BY_REPO_ID = """
import json, sys
import av, numpy as np, torch
from transformers import AutoModel, AutoProcessor

repo, long_clip, moving_clip, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()

inputs = processor(videos=long_clip, num_frames=8)
with av.open(long_clip) as container:
    frames = [frame.to_image() for frame in container.decode(video=0)]
manual = processor(videos=frames, num_frames=8)  # every decoded frame as PIL; the processor samples the same 8
batch = processor(videos=[long_clip, np.stack([np.asarray(f) for f in frames])], num_frames=8)
kept = processor(videos=moving_clip, num_frames=6, max_tokens=budget)
with torch.no_grad():
    out = model(**inputs).last_hidden_state
    out_manual = model(pixel_values=manual["pixel_values"], patch_positions=manual["patch_positions"]).last_hidden_state
    out_kept = model(**kept).last_hidden_state
    dropped = torch.ones(kept["patch_positions"].shape[1], dtype=torch.bool)
    dropped[kept["visible_indices"][0]] = False
    scrambled = kept["pixel_values"].clone()
    side = scrambled.shape[-1] // model.config.patch_size
    p = model.config.patch_size
    mask = dropped.reshape(1, 1, -1, side, 1, side, 1).expand(-1, -1, -1, -1, p, -1, p)
    mask = mask.reshape(1, 1, *scrambled.shape[2:])
    out_scrambled = model(pixel_values=scrambled.masked_fill(mask, 5.0), visible_indices=kept["visible_indices"],
                          patch_positions=kept["patch_positions"]).last_hidden_state
print(json.dumps({
    "processor": type(processor).__module__,
    "image_processor": type(processor.image_processor).__name__,
    "shapes": {k: list(v.shape) for k, v in inputs.items()},
    "batch_shapes": {k: list(v.shape) for k, v in batch.items()},
    "batch_same": bool(torch.equal(batch["pixel_values"][0], batch["pixel_values"][1])),
    "times": inputs["patch_positions"][0, :, 0].tolist(),
    "hw": inputs["patch_positions"][0, :256, 1:].tolist(),
    "manual_pixels": (inputs["pixel_values"] - manual["pixel_values"]).abs().max().item(),
    "manual_positions": bool(torch.equal(inputs["patch_positions"], manual["patch_positions"])),
    "manual_output": (out - out_manual).abs().max().item(),
    "output": list(out.shape),
    "finite": bool(torch.isfinite(out).all() and torch.isfinite(out_kept).all()),
    "kept_shapes": {k: list(v.shape) for k, v in kept.items()},
    "kept": kept["visible_indices"][0].tolist(),
    "kept_output": list(out_kept.shape),
    "scrambled": (out_kept - out_scrambled).abs().max().item(),
}))
"""


def moving_patches(frames: list[int], step: int = 4) -> set[int]:
    """Patch indices (frame-major) whose pixels differ from the previous sampled frame: where the square was
    and where it is (whole patches, as the square moves a whole patch per frame)."""
    changed = set()
    for i in range(1, len(frames)):
        before, after = step * frames[i - 1], step * frames[i]
        columns = set(range(before // SCALE, (before + SQUARE) // SCALE))
        columns ^= set(range(after // SCALE, (after + SQUARE) // SCALE))
        rows = range(TOP // SCALE, (TOP + SQUARE) // SCALE)
        changed |= {i * SIDE * SIDE + r * SIDE + c for r in rows for c in columns}
    return changed


@pytest.mark.slow  # through the local Hub and a clean interpreter
def test_video_file_to_embeddings_by_repo_id(published, clips, clean_python: Path, tmp_path: Path) -> None:
    sampled = np.linspace(0, 11, MOVING_FRAMES).round().astype(int).tolist()
    truth = moving_patches(sampled)
    budget = SIDE * SIDE + 2 * len(truth)
    args = [EXPORTED, str(clips["long"]), str(clips["moving"]), str(budget)]
    result = run_clean(clean_python, BY_REPO_ID, args, published["endpoint"], tmp_path / "hf")

    assert result["processor"].startswith("transformers_modules.")
    assert result["shapes"] == {"pixel_values": [1, 3, 8, 224, 224], "patch_positions": [1, 8 * 256, 3]}
    assert result["batch_shapes"] == {"pixel_values": [2, 3, 8, 224, 224], "patch_positions": [2, 8 * 256, 3]}
    assert result["batch_same"]
    # 8 frames on the 64-frame timeline: linspace(0, 63, 8) truncated, 256 patches each, row-major h, w.
    assert result["times"] == [t for t in (0, 9, 18, 27, 36, 45, 54, 63) for _ in range(256)]
    assert result["hw"] == [[h, w] for h in range(SIDE) for w in range(SIDE)]
    assert result["manual_pixels"] == 0 and result["manual_positions"] and result["manual_output"] == 0
    assert result["output"] == [1, 8 * 256, architecture(ARCH)["hidden_size"]] and result["finite"]

    kept = set(result["kept"])
    assert result["kept_shapes"]["visible_indices"] == [1, budget]
    assert result["kept_output"] == [1, budget, architecture(ARCH)["hidden_size"]]
    assert truth <= kept, f"moving patches not kept: {sorted(truth - kept)}"
    for index in kept - truth:  # beyond the key frame, only patches next to the square (resampling blur)
        frame, rest = divmod(index, SIDE * SIDE)
        if frame:
            near = [t for t in truth if t // (SIDE * SIDE) == frame and _chebyshev(t % (SIDE * SIDE), rest) <= 1]
            assert near, f"kept static patch {index} (frame {frame}, row {rest // SIDE}, column {rest % SIDE})"
    assert result["scrambled"] == 0, "patches outside visible_indices changed the output"


def _chebyshev(a: int, b: int) -> int:
    return max(abs(a // SIDE - b // SIDE), abs(a % SIDE - b % SIDE))


# --- the model card's example against the upstream README's recipe ------------------------------------------
CARD_VS_UPSTREAM = """
import json, os, re, sys
import av, numpy as np, torch
from transformers import AutoImageProcessor

card, folder = sys.argv[1], sys.argv[2]
text = open(card, encoding="utf-8").read()
blocks = re.findall(r"```python\\n(.*?)```", text, re.S)
usage = blocks[0]
video = next(block for block in blocks if 'processor(videos="clip.mp4")' in block)
os.chdir(folder)
scope = {}
budget = next(block for block in blocks if "max_tokens=" in block)
exec(usage, scope)
exec(budget, scope)
kept = {"visible_indices": list(scope["inputs"]["visible_indices"].shape),
        "output": list(scope["outputs"].last_hidden_state.shape)}
exec(video, scope)
inputs = scope["inputs"]

# The upstream README: each sampled frame through the image processor, stacked (B, C, T, H, W), and frame i's
# 256 tokens placed at linspace(0, target_frames - 1, num_frames)[i] * frame_tokens (as visible_indices).
repo = re.search(r'AutoModel.from_pretrained\\("([^"]+)"', usage)[1]
preprocessor = AutoImageProcessor.from_pretrained(repo)
with av.open("clip.mp4") as container:
    decoded = [frame.to_image() for frame in container.decode(video=0)]
num_frames, target_frames, size, patch = 16, 64, 224, scope["model"].config.patch_size
frames = [decoded[i] for i in np.linspace(0, len(decoded) - 1, num_frames).round().astype(int)]
square = {"height": size, "width": size}
video_pixel_values = preprocessor(images=frames, size=square, crop_size=square, return_tensors="pt")["pixel_values"]
video = video_pixel_values.unsqueeze(0).permute(0, 2, 1, 3, 4)
frame_tokens = (size // patch) ** 2
frame_pos = torch.linspace(0, target_frames - 1, num_frames).long()
visible_indices = (frame_pos.unsqueeze(-1) * frame_tokens + torch.arange(frame_tokens)).reshape(1, -1)
side = size // patch
positions = torch.stack(
    [visible_indices // frame_tokens, visible_indices % frame_tokens // side, visible_indices % side], dim=-1
)
print(json.dumps({
    "pixels": (inputs["pixel_values"].float() - video.float()).abs().max().item(),
    "shapes": [list(inputs["pixel_values"].shape), list(video.shape)],
    "positions": (inputs["patch_positions"] - positions).abs().max().item(),
    "output": list(scope["outputs"].last_hidden_state.shape),
    "kept": kept,
}))
"""


def test_model_card_video_example_matches_the_upstream_recipe(
    published, clips, clean_python: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(clips["long"].read_bytes())
    args = [published["card"], str(folder)]
    result = run_clean(clean_python, CARD_VS_UPSTREAM, args, published["endpoint"], tmp_path / "hf")
    assert result["shapes"] == [[1, 3, 16, 224, 224]] * 2
    assert result["pixels"] <= 1e-6 and result["positions"] == 0
    assert result["output"] == [1, 16 * 256, architecture(ARCH)["hidden_size"]]
    # The card's budget example: a quarter of the 16 x 256 patches.
    assert result["kept"] == {"visible_indices": [1, 1024], "output": [1, 1024, architecture(ARCH)["hidden_size"]]}


# --- in process: the sampling rule, the selection, the batch rule ---------------------------------------------
def test_processor_config_holds_the_auto_map_and_video_settings(exported: Path, processor) -> None:
    data = json.loads((exported / "processor_config.json").read_text())
    assert data["auto_map"] == PROCESSOR_AUTO_MAP
    assert (processor.video_size, processor.num_frames, processor.target_frames, processor.patch_size) == (
        224,
        16,
        64,
        PATCH,
    )


def test_moving_patches_is_select_patches_by_residual(processor, clips) -> None:
    inputs = processor(videos=clips["moving"], num_frames=MOVING_FRAMES)
    pixels = inputs["pixel_values"]
    residual = torch.cat([pixels[:, :, :1], pixels[:, :, 1:] - pixels[:, :, :-1]], dim=2)
    for budget in (1, 300, MOVING_FRAMES * 256):
        expected, _, _ = select_patches_by_residual(residual, budget, PATCH)
        assert torch.equal(
            processor(videos=clips["moving"], num_frames=MOVING_FRAMES, max_tokens=budget)["visible_indices"], expected
        )


def test_frames_arrays_and_tensors_agree(processor, clips) -> None:
    frames = decode_all(clips["long"])
    sampled = frames[np.linspace(0, len(frames) - 1, 4).round().astype(int)]
    by_file = processor(videos=clips["long"], num_frames=4)
    for same in (
        frames,  # (T, H, W, 3) array, sampled by the processor
        torch.from_numpy(frames),
        [Image.fromarray(frame) for frame in sampled],
        list(torch.from_numpy(sampled)),
        frames[None],  # a batch of one
    ):
        out = processor(videos=same, num_frames=4)
        assert torch.equal(out["pixel_values"], by_file["pixel_values"])
        assert torch.equal(out["patch_positions"], by_file["patch_positions"])
    images = processor(images=Image.fromarray(frames[0]))
    assert list(images["pixel_values"].shape) == [1, 3, 56, 56]  # the image path: image_size, unchanged
    by_fps = processor(videos=clips["long"], fps=2)  # 24 frames at 8 fps: 3 s, 6 frames
    assert by_fps["pixel_values"].shape[2] == 6


def test_a_container_without_a_frame_count_is_read(processor, tmp_path: Path) -> None:
    """WebM (like Matroska) stores no frame count; the processor counts the packets and samples as usual."""
    import av

    path = tmp_path / "clip.webm"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=8)
        stream.height = stream.width = SIZE
        stream.pix_fmt = "yuv420p"
        for frame in clip_frames(10):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    by_file = processor(videos=path, num_frames=4)
    by_frames = processor(videos=decode_all(path), num_frames=4)
    assert by_file["pixel_values"].shape[2] == 4
    assert torch.equal(by_file["pixel_values"], by_frames["pixel_values"])


BAD_INPUTS = [
    ({"videos": "garbage"}, "cannot read video .*garbage.mp4"),
    ({"videos": "empty"}, "cannot read video .*empty.mp4|empty.mp4: no video frames"),
    ({"videos": "missing"}, "cannot open video file .*missing.mp4: No such file or directory"),
    ({"videos": "short"}, "the video has 3 frames, fewer than the 16 asked; pass num_frames<=3"),
    ({"videos": "short", "num_frames": 4}, "the video has 3 frames, fewer than the 4 asked"),
    ({"videos": "sizes", "num_frames": 3}, "the frames of a video must all have one size, got 32x32, 64x64"),
    (
        {"videos": "moving", "num_frames": 2, "max_tokens": 513},
        "max_tokens must be an integer between 1 and the clip's 512 patches",
    ),
    ({"videos": "moving", "num_frames": 2, "max_tokens": 0}, "max_tokens must be an integer between 1 and"),
    ({"videos": ["long", "moving"], "fps": 4}, r"sampled to different frame counts \(6, 12\); pass num_frames=N"),
    ({"videos": "floats", "num_frames": 4}, "frames must be uint8 RGB \\(0-255\\), got float32"),
    (
        {"videos": "channels_first", "num_frames": 4},
        r"a frame must be \(H, W, 3\) RGB, channels last; got shape \(3, 64, 64\)",
    ),
    ({"videos": "frames", "fps": 2}, "fps sampling needs the video's frame rate"),
    ({"videos": []}, "videos is empty"),
    ({"videos": "many", "num_frames": 65}, "do not fit on the target_frames=64 timeline"),
    ({"videos": "long", "images": "image"}, "pass exactly one of images=... or videos=..."),
    ({"videos": "long", "num_frames": 4, "fps": 2}, "pass num_frames or fps, not both"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), BAD_INPUTS, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD_INPUTS)]
)
def test_bad_input_is_one_clear_value_error(processor, clips, tmp_path: Path, kwargs: dict, message: str) -> None:
    frames = clip_frames(4)
    named = {
        **{name: str(path) for name, path in clips.items()},
        "missing": str(tmp_path / "missing.mp4"),
        "sizes": [frames[0], np.zeros((32, 32, 3), np.uint8), frames[1]],
        "floats": frames.astype(np.float32) / 255,
        "channels_first": [frame.transpose(2, 0, 1) for frame in frames],
        "frames": list(frames),
        "many": np.zeros((65, 8, 8, 3), np.uint8),
        "image": Image.fromarray(frames[0]),
    }

    def resolve(value):
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return named.get(value, value) if isinstance(value, str) else value

    with pytest.raises(ValueError, match=message) as caught:
        processor(**{key: resolve(value) for key, value in kwargs.items()})
    assert "\n" not in str(caught.value)


def test_processor_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("video_size (100) must be a multiple of patch_size (14)")):
        LlavaViTProcessor(None, video_size=100, patch_size=14)
    with pytest.raises(ValueError, match="num_frames must be a positive integer, got 0"):
        LlavaViTProcessor(None, num_frames=0)


# --- the repo side: sync and check know the processor files ----------------------------------------------------
def test_sync_adds_the_processor_to_a_repo_made_before_video_and_check_reads_it(exported: Path, tmp_path) -> None:
    repo = tmp_path / "old-vit"
    shutil.copytree(exported, repo, ignore=shutil.ignore_patterns(".git"))
    (repo / "processing_llava_vit.py").unlink()
    (repo / "processor_config.json").unlink()
    assert f"{PROCESSOR_CONFIG_FILE}: missing (AutoProcessor and video need it); run `llava-vit sync`" in (
        processor_config_problems(repo, PATCH)
    )
    assert sync_repo(repo) == ["processing_llava_vit.py", PROCESSOR_CONFIG_FILE]
    assert json.loads((repo / PROCESSOR_CONFIG_FILE).read_text()) == processor_config(PATCH)
    assert processor_config_problems(repo, PATCH) == [] and sync_repo(repo) == []

    edited = {**processor_config(PATCH), "auto_map": {"AutoProcessor": "evil.P"}, "video_size": 100}
    (repo / PROCESSOR_CONFIG_FILE).write_text(json.dumps(edited))
    assert processor_config_problems(repo, 16) == [
        f"{PROCESSOR_CONFIG_FILE}: auto_map must be exactly {json.dumps(PROCESSOR_AUTO_MAP)}; run `llava-vit sync`",
        f"{PROCESSOR_CONFIG_FILE}: patch_size is {PATCH}, the model's is 16; fix it",
        f"{PROCESSOR_CONFIG_FILE}: video_size 100 is not a multiple of patch_size {PATCH}; fix it",
    ]
    assert sync_repo(repo) == [PROCESSOR_CONFIG_FILE]  # the auto_map, and only it: settings are the author's
    assert json.loads((repo / PROCESSOR_CONFIG_FILE).read_text()) == {**edited, "auto_map": PROCESSOR_AUTO_MAP}
