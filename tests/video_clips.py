"""Test clips written with PyAV: a white square moving over a static textured background, so that the truth
about which patches move is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 64  # frame side in pixels
SQUARE = 16  # the square's side
TOP = 24  # the square's top row


def clip_frames(frames: int = 24, step: int = 2) -> np.ndarray:
    """(T, SIZE, SIZE, 3) uint8: dark random 8x8-pixel tiles (static), and the square at x = step * t."""
    tiles = np.random.default_rng(0).integers(0, 100, (SIZE // 8, SIZE // 8, 3), dtype=np.uint8)
    background = tiles.repeat(8, axis=0).repeat(8, axis=1)
    clip = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        clip[t, TOP : TOP + SQUARE, step * t : step * t + SQUARE] = 255
    return clip


def write_clip(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """An .mp4 (H.264, lossless quantiser, so that the static background decodes identically in every frame)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def decode_all(path: Path) -> np.ndarray:
    """Every frame of a video file, decoded with PyAV directly (the manual route the processor must match)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
