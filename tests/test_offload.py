"""Big-model loading: `from_pretrained(..., device_map=..., offload_folder=...)` with parts of the model on disk.

accelerate's hooks bring an offloaded module's weights in only when that module's own forward runs. These splits put
the pooling head, its attention (whose weights `nn.MultiheadAttention` read without calling `out_proj`) or one encoder
layer on disk, and check every reference fixture case on CPU.
"""

from __future__ import annotations

import pytest
import torch
from reference import CASES, TOLERANCE, architecture, flatten_output, load_case, max_errors, weights_path
from safetensors.torch import load_file
from transformers import AutoModel

from llava_vit import LlavaViTConfig, LlavaViTModel

pytest.importorskip("accelerate", reason="device_map loading needs accelerate (in the test extra)")

ARCH = "tiny_ln_p14"  # two layers and the pooling head
REST = {"embeddings": "cpu", "layernorm_pre": "cpu", "layernorm_post": "cpu"}
SPLITS = {
    "whole head on disk": {**REST, "encoder": "cpu", "head": "disk"},
    "head attention on disk": {
        **REST,
        "encoder": "cpu",
        "head.probe": "cpu",
        "head.attention": "disk",
        "head.norm": "cpu",
        "head.mlp": "cpu",
    },
    "head out_proj on disk": {
        **REST,
        "encoder": "cpu",
        "head.probe": "cpu",
        "head.attention.in_proj_weight": "cpu",
        "head.attention.in_proj_bias": "cpu",
        "head.attention.out_proj": "disk",
        "head.norm": "cpu",
        "head.mlp": "cpu",
    },
    "one encoder layer on disk": {**REST, "encoder.layers.0": "disk", "encoder.layers.1": "cpu", "head": "cpu"},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    model = LlavaViTModel(LlavaViTConfig(**architecture(ARCH)))
    model.load_state_dict(load_file(weights_path(ARCH)), strict=True)
    folder = tmp_path_factory.mktemp(ARCH)
    model.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("split", SPLITS)
def test_offloaded_model_matches_reference(saved, tmp_path, split):
    device_map = SPLITS[split]
    model = AutoModel.from_pretrained(saved, device_map=device_map, offload_folder=tmp_path).eval()
    on_disk = [prefix for prefix, device in device_map.items() if device == "disk"]
    offloaded = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    # What the split puts on disk really is off the model (accelerate loads it per forward), and nothing else is.
    assert offloaded and all(name.startswith(tuple(on_disk)) for name in offloaded), offloaded
    for case in CASES:
        inputs, expected = load_case(ARCH, case)
        with torch.no_grad():
            output = model(**inputs, output_hidden_states=True)
        errors = max_errors(flatten_output(output), expected)
        assert max(errors.values()) <= TOLERANCE, f"{split}/{case}: {errors}"


def test_pooling_head_keeps_multihead_attention_keys():
    """Checkpoints written with `nn.MultiheadAttention` in the head (upstream repos, earlier exports) load strictly."""
    config = LlavaViTConfig(**architecture(ARCH))
    reference = torch.nn.MultiheadAttention(config.hidden_size, config.num_attention_heads, batch_first=True)
    head_keys = {k for k in LlavaViTModel(config).state_dict() if k.startswith("head.attention.")}
    assert head_keys == {f"head.attention.{k}" for k in reference.state_dict()}
    assert set(LlavaViTModel(config).state_dict()) == set(load_file(weights_path(ARCH)))


def test_pooling_head_computes_what_multihead_attention_computes():
    config = LlavaViTConfig(**architecture(ARCH))
    model = LlavaViTModel(config).eval()
    reference = torch.nn.MultiheadAttention(config.hidden_size, config.num_attention_heads, batch_first=True)
    reference.load_state_dict(
        {k.removeprefix("head.attention."): v for k, v in model.state_dict().items() if k.startswith("head.attention.")}
    )
    probe, tokens = torch.randn(3, 1, config.hidden_size), torch.randn(3, 37, config.hidden_size)
    with torch.no_grad():
        want = reference(probe, tokens, tokens, need_weights=False)[0]
        for implementation in ("eager", "sdpa"):
            model.config._attn_implementation = implementation
            torch.testing.assert_close(model.head.attention(probe, tokens), want, atol=1e-6, rtol=1e-5)
