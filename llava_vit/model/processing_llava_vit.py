"""LlavaViTProcessor: images through the repo's CLIP image processor; videos (a file, frames or arrays) into
`pixel_values` (B, C, T, H, W), `patch_positions` on the clip's timeline and, with a token budget, the
`visible_indices` of the patches that move (codec-style selection).

Standalone: imports only torch, transformers, numpy and PIL (which transformers needs). A video file is
decoded through transformers' `load_video` with the PyAV backend (`pip install av`), imported only then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

# Memory budgets of one call, checked before anything is decoded or converted: a frame of at most 8192 x 8192
# pixels (8K UHD is 7680 x 4320), and at most 2 GiB of sampled RGB frames over its clips (frames x height x
# width x 3 bytes; 16 frames of 4K take 398 MB). A file's frame size comes from its stream's metadata, read
# before decoding.
MAX_FRAME_PIXELS = 8192 * 8192
MAX_VIDEO_BYTES = 2 * 1024**3


class LlavaViTProcessor(ProcessorMixin):
    """Images as the CLIP image processor prepares them; videos sampled, resized and placed on a timeline.

    A video is `num_frames` frames sampled uniformly over the clip (first to last frame; or `fps` frames per
    second of a video file), each resized to `video_size` x `video_size` and normalised exactly as an image
    (the image processor does it, at the video resolution). `patch_positions` gives every patch its
    `[t, h, w]`, where t is the frame's place on a `target_frames` timeline: frame i of T sits at
    `linspace(0, target_frames - 1, T)[i]` (truncated), the positions the model was trained with.

    `max_tokens=K` keeps the K patches with the largest residual (frame t minus frame t-1 of the sampled
    clip; the first frame counts whole, like a codec's key frame) and returns their `visible_indices` (B, K),
    so that `model(**inputs)` encodes only those. Clips in one batch must come out with the same number of
    frames: with `fps` sampling, clips of different lengths are refused (process them one by one).

    `max_frame_pixels` (width x height of one frame) and `max_video_bytes` (sampled frames x height x width x 3,
    summed over the clips of one call) bound the memory a call may take; a clip over either is refused before it
    is decoded (a file, from its stream's metadata) or converted (frames and arrays). Raise them as keywords or in
    processor_config.json for larger videos.
    """

    attributes = ["image_processor"]
    if not hasattr(ProcessorMixin, "get_attributes"):  # transformers 4.x finds sub-processors by class name
        image_processor_class = "AutoImageProcessor"

    def __init__(
        self,
        image_processor: Any = None,
        video_size: int = 224,
        num_frames: int = 16,
        target_frames: int = 64,
        patch_size: int = 14,
        max_frame_pixels: int = MAX_FRAME_PIXELS,
        max_video_bytes: int = MAX_VIDEO_BYTES,
        **kwargs: Any,
    ) -> None:
        for name, value in (
            ("video_size", video_size),
            ("num_frames", num_frames),
            ("target_frames", target_frames),
            ("patch_size", patch_size),
            ("max_frame_pixels", max_frame_pixels),
            ("max_video_bytes", max_video_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if video_size % patch_size:
            raise ValueError(f"video_size ({video_size}) must be a multiple of patch_size ({patch_size})")
        self.video_size = video_size
        self.num_frames = num_frames
        self.target_frames = target_frames
        self.patch_size = patch_size
        self.max_frame_pixels = max_frame_pixels
        self.max_video_bytes = max_video_bytes
        super().__init__(image_processor, **kwargs)

    def __call__(
        self,
        images: Any = None,
        videos: Any = None,
        *,
        num_frames: int | None = None,
        fps: float | None = None,
        max_tokens: int | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """`images=` as the image processor takes them; or `videos=`: a video file path, a list of frames (PIL
        images, (H, W, 3) uint8 arrays or tensors), a (T, H, W, 3) uint8 array or tensor, or a list of those
        (a batch). `num_frames` or `fps` overrides the sampling, `max_tokens` keeps only that many patches."""
        if (images is None) == (videos is None):
            raise ValueError("pass exactly one of images=... or videos=...")
        if images is not None:
            return self.image_processor(images, return_tensors=return_tensors, **kwargs)
        if return_tensors not in ("pt", None):
            raise ValueError(f"videos come back as torch tensors (return_tensors='pt'), got {return_tensors!r}")
        if kwargs:
            raise ValueError(f"unknown argument(s) for videos: {', '.join(sorted(kwargs))}")
        if num_frames is not None and fps is not None:
            raise ValueError("pass num_frames or fps, not both")
        if fps is None:
            num_frames = self.num_frames if num_frames is None else num_frames
            if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames <= 0:
                raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        elif not isinstance(fps, int | float) or isinstance(fps, bool) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")

        budget = _Budget(self.max_frame_pixels, self.max_video_bytes)
        clips = [_sample_clip(clip, num_frames, fps, budget) for clip in _split_batch(videos)]
        lengths = sorted({len(clip) for clip in clips})
        if len(lengths) > 1:
            raise ValueError(
                f"the clips of this batch were sampled to different frame counts ({', '.join(map(str, lengths))}); "
                "pass num_frames=N for a fixed count, or process the clips one at a time"
            )
        frames = lengths[0]
        if frames > self.target_frames:
            raise ValueError(
                f"{frames} frames do not fit on the target_frames={self.target_frames} timeline; "
                "sample fewer frames or raise target_frames"
            )
        pixel_values = torch.stack([self._frames_to_pixels(clip) for clip in clips]).transpose(1, 2).contiguous()
        side = self.video_size // self.patch_size
        grid = torch.stack(
            torch.meshgrid(torch.arange(frames), torch.arange(side), torch.arange(side), indexing="ij"), dim=-1
        ).reshape(-1, 3)
        grid[:, 0] = self.frame_positions(frames).repeat_interleave(side * side)
        data = {"pixel_values": pixel_values, "patch_positions": grid.unsqueeze(0).repeat(len(clips), 1, 1)}
        if max_tokens is not None:
            data["visible_indices"] = self.moving_patches(pixel_values, max_tokens)
        return BatchFeature(data=data)

    def frame_positions(self, frames: int) -> torch.Tensor:
        """t of each of `frames` sampled frames on the `target_frames` timeline (the upstream recipe)."""
        return torch.linspace(0, self.target_frames - 1, frames).long()

    def moving_patches(self, pixel_values: torch.Tensor, max_tokens: int) -> torch.Tensor:
        """(B, K) ascending indices of the K patches of (B, C, T, H, W) clips with the largest summed |residual|,
        the residual being each frame minus the previous one (the first frame counts whole). The same choice
        as the model file's `select_patches_by_residual`."""
        batch, _, frames, height, width = pixel_values.shape
        patch = self.patch_size
        hp, wp = height // patch, width // patch
        length = frames * hp * wp
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= length:
            raise ValueError(
                f"max_tokens must be an integer between 1 and the clip's {length} patches "
                f"({frames} frames x {hp}x{wp}), got {max_tokens!r}"
            )
        residual = torch.cat([pixel_values[:, :, :1], pixel_values[:, :, 1:] - pixel_values[:, :, :-1]], dim=2)
        energy = residual.abs().float().sum(1).reshape(batch, frames, hp, patch, wp, patch).sum((3, 5))
        return energy.reshape(batch, length).topk(max_tokens, dim=1).indices.sort(dim=1).values

    def _frames_to_pixels(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (T, C, S, S) float: the image processor's own resize and normalisation."""
        square = {"height": self.video_size, "width": self.video_size}
        out = self.image_processor(
            list(frames), size=square, crop_size=square, return_tensors="pt", input_data_format="channels_last"
        )
        return out["pixel_values"]


def _is_path(item: Any) -> bool:
    """A file name: a str or an os.PathLike such as pathlib.Path."""
    return isinstance(item, str) or hasattr(item, "__fspath__")


def _is_frame(item: Any) -> bool:
    """One frame: a PIL image, or a 3-dimensional array or tensor."""
    if isinstance(item, np.ndarray | torch.Tensor):
        return item.ndim == 3
    return hasattr(item, "convert") and hasattr(item, "size")


def _split_batch(videos: Any) -> list[Any]:
    """The clips of `videos`: one clip (a path, a frame list, a 4D array) or a list/5D array of them."""
    if _is_path(videos):
        return [videos]
    if isinstance(videos, np.ndarray | torch.Tensor):
        if videos.ndim == 4:
            return [videos]
        if videos.ndim == 5:
            return list(videos)
        raise ValueError(
            f"a video array must be (T, H, W, 3) or a batch (B, T, H, W, 3), got shape {tuple(videos.shape)}"
        )
    if isinstance(videos, Sequence) and not isinstance(videos, bytes):
        if len(videos) == 0:
            raise ValueError("videos is empty: pass a video file, a list of frames or a (T, H, W, 3) array")
        return [videos] if all(_is_frame(item) for item in videos) else list(videos)
    raise ValueError(
        f"videos must be a video file path, a list of frames, a (T, H, W, 3) array or a list of those, "
        f"got {type(videos).__name__}"
    )


class _Budget:
    """The memory one call may take: `frame_pixels` per frame, `video_bytes` for the sampled RGB frames of all
    its clips."""

    def __init__(self, frame_pixels: int, video_bytes: int) -> None:
        self.frame_pixels = frame_pixels
        self.video_bytes = video_bytes
        self.spent = 0

    def check(self, frames: int, height: int, width: int, what: str) -> None:
        """Refuse `frames` sampled frames of height x width, before they are decoded or converted."""
        if height * width > self.frame_pixels:
            raise ValueError(
                f"{what}: a frame of {width}x{height} pixels is over the budget of {self.frame_pixels} pixels; "
                "pass a smaller video, or raise max_frame_pixels if this machine has the memory"
            )
        total = frames * height * width * 3
        if self.spent + total > self.video_bytes:
            before = f" after the batch's other clips' {self.spent / 2**20:.0f} MiB" if self.spent else ""
            raise ValueError(
                f"{what}: {frames} frames of {width}x{height} decode to {total / 2**20:.0f} MiB{before}, over the "
                f"budget of {self.video_bytes / 2**20:.0f} MiB; sample fewer frames, or raise max_video_bytes"
            )
        self.spent += total


def _sample_count(total: int, num_frames: int | None, fps: float | None, source_fps: float | None) -> int:
    """How many frames uniform sampling takes (nothing allocated yet)."""
    if fps is not None:
        if not source_fps:
            raise ValueError("fps sampling needs the video's frame rate: pass a video file, or num_frames for frames")
        num_frames = max(1, int(total / source_fps * fps))
    assert num_frames is not None
    if total < num_frames:
        raise ValueError(f"the video has {total} frames, fewer than the {num_frames} asked; pass num_frames<={total}")
    return num_frames


def _sample_indices(total: int, count: int) -> np.ndarray:
    """Uniform sampling of `count` of `total` frames, first and last frame included."""
    return np.linspace(0, total - 1, count).round().astype(int)


def _as_frame(frame: Any) -> np.ndarray:
    if hasattr(frame, "convert") and not isinstance(frame, np.ndarray | torch.Tensor):
        return np.asarray(frame.convert("RGB"))
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"a frame must be (H, W, 3) RGB, channels last; got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB (0-255), got {array.dtype}; convert with .astype(np.uint8)")
    return array


def _frame_size(frame: Any) -> tuple[int, int]:
    """(height, width) of a frame without converting it: a PIL image's size, an array's first two dimensions."""
    if hasattr(frame, "convert") and not isinstance(frame, np.ndarray | torch.Tensor):
        width, height = frame.size
        return int(height), int(width)
    return int(frame.shape[0]), int(frame.shape[1])


def _sample_clip(clip: Any, num_frames: int | None, fps: float | None, budget: _Budget) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of one clip after sampling, within `budget`."""
    if _is_path(clip):
        return _decode(clip if isinstance(clip, str) else clip.__fspath__(), num_frames, fps, budget)
    if fps is not None:
        raise ValueError("fps sampling needs the video's frame rate: pass a video file, or num_frames for frames")
    if isinstance(clip, np.ndarray | torch.Tensor) and clip.ndim == 4:
        frames = [clip[i] for i in range(clip.shape[0])]
    elif isinstance(clip, Sequence) and not isinstance(clip, str | bytes) and all(_is_frame(f) for f in clip):
        frames = list(clip)
    else:
        raise ValueError(
            "each video must be a video file path, a list of frames (PIL images or (H, W, 3) arrays) or a "
            f"(T, H, W, 3) array; got {type(clip).__name__}"
        )
    if not frames:
        raise ValueError("a video has no frames")
    indices = _sample_indices(len(frames), _sample_count(len(frames), num_frames, None, None))
    height, width = max((_frame_size(frames[i]) for i in indices), key=lambda size: size[0] * size[1])
    budget.check(len(indices), height, width, "a video")
    arrays = [_as_frame(frames[i]) for i in indices]
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) > 1:
        raise ValueError(f"the frames of a video must all have one size, got {', '.join(f'{h}x{w}' for h, w in sizes)}")
    return np.stack(arrays)


def _count_frames(path: str) -> int:
    """Frames of the first video stream, counted from its packets without decoding them."""
    try:
        import av
    except ImportError:
        raise ImportError("reading a video file needs PyAV: pip install av") from None
    with av.open(path) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


class _VideoError(ValueError):
    """A problem `_decode` found itself (its message is already complete)."""


def _decode(path: str, num_frames: int | None, fps: float | None, budget: _Budget) -> np.ndarray:
    """Decode only the sampled frames of a video file with transformers' `load_video` (PyAV backend)."""
    try:
        open(path, "rb").close()
    except OSError as error:
        raise ValueError(f"cannot open video file {path}: {error.strerror or error}") from None
    from transformers.utils import is_av_available
    from transformers.video_utils import load_video

    if not is_av_available():
        raise ImportError("reading a video file needs PyAV: pip install av")

    asked: list[int] = []

    def sample(metadata: Any, **kwargs: Any) -> np.ndarray:
        # Matroska and WebM do not store a frame count (PyAV reports 0): count the packets then.
        total = metadata.total_num_frames or _count_frames(path)
        if not total:
            raise _VideoError(f"{path}: no video frames found (empty or not a video)")
        try:
            count = _sample_count(total, num_frames, fps, metadata.fps)
            # The stream's declared frame size, read before any frame is decoded (0 when unknown: refused).
            height, width = int(getattr(metadata, "height", 0) or 0), int(getattr(metadata, "width", 0) or 0)
            if height <= 0 or width <= 0:
                raise ValueError("its frame size is unknown before decoding, so its memory cannot be bounded")
            budget.check(count, height, width, "the video")
        except ValueError as error:
            raise _VideoError(f"{path}: {error}") from None
        asked.append(count)
        return _sample_indices(total, count)

    try:
        frames, _ = load_video(path, backend="pyav", sample_indices_fn=sample)
    except _VideoError as error:
        raise ValueError(str(error)) from None
    except Exception as error:  # PyAV's and numpy's errors alike: the file cannot be decoded
        raise ValueError(f"cannot read video {path}: {error}") from None
    if frames.ndim != 4 or len(frames) != asked[0]:
        raise ValueError(f"{path}: decoded {len(frames)} of the {asked[0]} frames asked; the file is truncated")
    return frames


__all__ = ["LlavaViTProcessor"]
