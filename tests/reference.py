"""The upstream reference fixtures (tests/fixtures/reference) and how to compare against them."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
ARCHITECTURES = ("tiny_ln_p14", "tiny_rms_p16", "tiny_nohead_p8")
CASES = ("image", "image_nonsquare", "video", "video_visible_indices", "image_visible_indices", "video_patch_positions")
TOLERANCE = 1e-4


def architecture(arch: str) -> dict:
    return json.loads((REFERENCE / arch / "architecture.json").read_text())


def weights_path(arch: str) -> Path:
    return REFERENCE / arch / "model.safetensors"


def load_case(arch: str, case: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(forward kwargs, expected outputs) of one fixture case."""
    tensors = load_file(REFERENCE / arch / f"{case}.safetensors")
    inputs = {k.removeprefix("input."): v for k, v in tensors.items() if k.startswith("input.")}
    outputs = {k.removeprefix("output."): v for k, v in tensors.items() if k.startswith("output.")}
    return inputs, outputs


def flatten_output(output) -> dict[str, torch.Tensor]:
    """Model output as the fixtures name it: last_hidden_state, pooler_output, hidden_states.<i>."""
    flat = {"last_hidden_state": output.last_hidden_state}
    if output.pooler_output is not None:
        flat["pooler_output"] = output.pooler_output
    for i, hidden in enumerate(output.hidden_states or ()):
        flat[f"hidden_states.{i}"] = hidden
    return flat


def max_errors(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, float]:
    """Max abs error per expected output; a missing or mis-shaped output counts as infinite."""
    errors = {}
    for name, want in expected.items():
        have = got.get(name)
        if have is None or have.shape != want.shape:
            errors[name] = float("inf")
        else:
            errors[name] = (have.float() - want.float()).abs().max().item()
    return errors
