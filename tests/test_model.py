"""The canonical model against the upstream reference fixtures, and its contract around them."""

from __future__ import annotations

import inspect

import pytest
import torch
from reference import (
    ARCHITECTURES,
    CASES,
    REFERENCE,
    TOLERANCE,
    architecture,
    flatten_output,
    load_case,
    max_errors,
    weights_path,
)
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

from llava_vit import LlavaViTConfig, LlavaViTModel, select_patches_by_residual
from llava_vit.model import modeling_llava_vit as modeling
from llava_vit.model.presets import preset_config


@pytest.fixture(scope="module", params=ARCHITECTURES)
def saved_reference(request, tmp_path_factory) -> tuple[str, str]:
    """Each reference architecture with its weights, written with save_pretrained."""
    arch = request.param
    model = LlavaViTModel(LlavaViTConfig(**architecture(arch)))
    model.load_state_dict(load_file(weights_path(arch)), strict=True)
    folder = tmp_path_factory.mktemp(arch)
    model.save_pretrained(folder)
    return arch, str(folder)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_matches_reference_after_round_trip(saved_reference, implementation):
    arch, folder = saved_reference
    model = AutoModel.from_pretrained(folder, attn_implementation=implementation).eval()
    assert isinstance(model, LlavaViTModel)
    for case in CASES:
        inputs, expected = load_case(arch, case)
        with torch.no_grad():
            output = model(**inputs, output_hidden_states=True)
        assert len(output.hidden_states) == model.config.num_hidden_layers + 1
        errors = max_errors(flatten_output(output), expected)
        assert max(errors.values()) <= TOLERANCE, f"{arch}/{case}/{implementation}: {errors}"
        if not model.config.use_head:
            assert output.pooler_output is None


def test_residual_patch_selection_matches_reference():
    tensors = load_file(REFERENCE / "residual_topk.safetensors")
    visible, mask, restore = select_patches_by_residual(
        tensors["input.residual"], int(tensors["input.k_keep"]), int(tensors["input.patch_size"])
    )
    assert torch.equal(visible, tensors["output.visible_indices"])
    assert torch.equal(mask, tensors["output.visible_mask"])
    assert torch.equal(restore, tensors["output.ids_restore"])


def test_selected_patches_feed_the_model():
    config = LlavaViTConfig(**architecture("tiny_ln_p14"))
    model = LlavaViTModel(config).eval()
    video = torch.randn(2, 3, 4, 56, 56)
    visible, _, _ = select_patches_by_residual(video[:, :1] - video[:, :1].mean(), 10, config.patch_size)
    with torch.no_grad():
        output = model(video, visible_indices=visible)
    assert output.last_hidden_state.shape == (2, 10, config.hidden_size)


def _expected_parameters(c: LlavaViTConfig) -> int:
    """Parameter count written out by hand from the architecture, independent of the module tree."""
    h, i = c.hidden_size, c.intermediate_size
    norm = h if c.layer_norm_type == "rms_norm" else 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * norm
    total = c.num_channels * c.patch_size**2 * h + norm + c.num_hidden_layers * layer
    if c.use_head:
        total += norm + h + (3 * h * h + 3 * h) + (h * h + h) + h + (h * i + i) + (i * h + h)
    return total


@pytest.mark.parametrize("preset", ["small", "base", "large", "huge", "giant"])
def test_preset_parameter_counts(preset):
    from llava_vit.model.presets import parameter_count

    config = preset_config(preset)
    assert parameter_count(config) == _expected_parameters(config)
    assert preset_config(f"hf_llava_vit_{preset}_ln").to_dict() == config.to_dict()


def test_preset_overrides_and_defaults():
    config = preset_config("small", image_size=224)
    assert (config.image_size, config.hidden_size, config.patch_size) == (224, 384, 16)
    assert LlavaViTConfig().to_dict() == preset_config("large").to_dict()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"hidden_size": 100, "num_attention_heads": 3},
            r"hidden_size \(100\) must be divisible by num_attention_heads \(3\)",
        ),
        ({"hidden_size": 96, "num_attention_heads": 2}, r"head_dim .* = 48 must be divisible by 32"),
        ({"image_size": 100, "patch_size": 14}, r"image_size \(100\) must be divisible by patch_size \(14\)"),
        (
            {"layer_norm_type": "batch_norm"},
            r"unknown layer_norm_type 'batch_norm'; expected one of layer_norm, rms_norm",
        ),
        ({"num_hidden_layers": 0}, r"num_hidden_layers must be a positive integer, got 0"),
    ],
)
def test_invalid_geometry_fails_at_config_time(fields, message):
    with pytest.raises(ValueError, match=message):
        LlavaViTConfig(**fields)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown preset 'medium'; valid presets: small, base, large, huge, giant"):
        preset_config("medium")


def test_registered_with_auto_classes(tmp_path):
    config = LlavaViTConfig(**architecture("tiny_nohead_p8"))
    LlavaViTModel(config).save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is LlavaViTConfig
    assert type(AutoModel.from_pretrained(tmp_path)) is LlavaViTModel


@pytest.fixture(scope="module")
def tiny_model() -> LlavaViTModel:
    model = LlavaViTModel(LlavaViTConfig(**architecture("tiny_ln_p14")))
    model.load_state_dict(load_file(weights_path("tiny_ln_p14")))
    return model.eval()


def test_output_attentions_are_real_maps_with_sdpa(tiny_model):
    pixels = torch.randn(1, 3, 56, 56)
    tiny_model.config._attn_implementation = "sdpa"
    try:
        with torch.no_grad():
            output = tiny_model(pixels, output_attentions=True)
            plain = tiny_model(pixels)
    finally:
        tiny_model.config._attn_implementation = "eager"
    assert len(output.attentions) == tiny_model.config.num_hidden_layers
    for weights in output.attentions:
        assert weights.shape == (1, tiny_model.config.num_attention_heads, 16, 16)
        torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 16))
    torch.testing.assert_close(output.last_hidden_state, plain.last_hidden_state, atol=1e-5, rtol=0)


def _forward_counting_mlp_rows(model: LlavaViTModel, inputs: dict) -> tuple[object, list[int]]:
    """The output, and the token count of each call of the first layer's MLP."""
    rows: list[int] = []
    hook = model.encoder.layers[0].mlp.fc1.register_forward_hook(lambda _, args, __: rows.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            return model(**inputs, output_hidden_states=True), rows
    finally:
        hook.remove()


@pytest.mark.parametrize("case", CASES)
def test_feed_forward_in_token_chunks_matches_reference(tiny_model, monkeypatch, case):
    """On CPU the MLP runs in chunks of tokens: with uneven chunks of 7, every fixture case still matches."""
    monkeypatch.setattr(modeling, "CPU_FEED_FORWARD_TOKENS", 7)
    inputs, expected = load_case("tiny_ln_p14", case)
    output, rows = _forward_counting_mlp_rows(tiny_model, inputs)
    tokens = output.last_hidden_state.shape[1]
    assert rows == [7] * (tokens // 7) + ([tokens % 7] if tokens % 7 else [])
    assert max(max_errors(flatten_output(output), expected).values()) <= TOLERANCE


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_feed_forward_chunks_change_nothing_in_a_batch(tiny_model, monkeypatch, dtype):
    inputs = {"pixel_values": torch.randn(2, 3, 4, 42, 56)}  # 2 x 48 tokens
    model = tiny_model.to(dtype)
    try:
        whole, rows = _forward_counting_mlp_rows(model, inputs)
        assert rows == [48]
        monkeypatch.setattr(modeling, "CPU_FEED_FORWARD_TOKENS", 20)
        chunked, rows = _forward_counting_mlp_rows(model, inputs)
        assert rows == [20, 20, 8]
    finally:
        model.to(torch.float32)
    for name, want in flatten_output(whole).items():
        torch.testing.assert_close(flatten_output(chunked)[name], want)


def test_tuple_output(tiny_model):
    with torch.no_grad():
        last, pooled, hidden = tiny_model(torch.randn(1, 3, 56, 56), output_hidden_states=True, return_dict=False)
    assert last.shape == (1, 16, 128) and pooled.shape == (1, 128) and len(hidden) == 3


def test_bf16_forward_close_to_fp32(tiny_model):
    """bf16 keeps ~3 significant digits: we require cosine > 0.999 and max error <= 5% of the output range."""
    inputs, _ = load_case("tiny_ln_p14", "video_visible_indices")
    with torch.no_grad():
        reference = tiny_model(**inputs)
        low = LlavaViTModel(tiny_model.config).to(torch.bfloat16).eval()
        low.load_state_dict(tiny_model.state_dict())
        output = low(**inputs)
    for name in ("last_hidden_state", "pooler_output"):
        want, got = getattr(reference, name), getattr(output, name).float()
        assert got.dtype == torch.float32 and torch.isfinite(got).all()
        cosine = torch.nn.functional.cosine_similarity(got.flatten(1), want.flatten(1)).min()
        assert cosine > 0.999, (name, cosine)
        assert (got - want).abs().max() <= 0.05 * want.abs().max(), name


def _enable_checkpointing(model: LlavaViTModel, reentrant: bool, **options) -> None:
    """transformers' own switch: `activation_checkpointing_enable` on 5.x, `gradient_checkpointing_enable` on 4.57."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant}, **options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant}, **options)


def _gradients_and_layer_runs(model: LlavaViTModel, pixels: torch.Tensor) -> tuple[dict, list[int]]:
    """Every parameter's gradient after one backward, and how often each layer's MLP ran (a recomputed layer twice)."""
    runs = [0] * len(model.encoder.layers)
    hooks = [
        layer.mlp.fc1.register_forward_hook(lambda *_, i=i: runs.__setitem__(i, runs[i] + 1))
        for i, layer in enumerate(model.encoder.layers)
    ]
    try:
        model.zero_grad()
        output = model(pixels)
        (output.last_hidden_state.square().mean() + output.pooler_output.sum()).backward()
    finally:
        for hook in hooks:
            hook.remove()
    return {name: p.grad.clone() for name, p in model.named_parameters()}, runs


def _checkpointing_model(layers: int = 2) -> LlavaViTModel:
    config = LlavaViTConfig(**{**architecture("tiny_rms_p16"), "num_hidden_layers": layers})
    torch.manual_seed(0)
    return LlavaViTModel(config).train()


@pytest.mark.parametrize("reentrant", [True, False])
def test_gradient_checkpointing_gives_same_gradients(reentrant):
    model = _checkpointing_model()
    pixels = torch.randn(2, 3, 2, 64, 64)
    plain, runs = _gradients_and_layer_runs(model, pixels)
    assert runs == [1, 1]
    _enable_checkpointing(model, reentrant)
    assert model.is_gradient_checkpointing
    checkpointed, runs = _gradients_and_layer_runs(model, pixels)
    assert runs == [2, 2]  # each layer recomputed in the backward
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    model.gradient_checkpointing_disable()
    assert _gradients_and_layer_runs(model, pixels)[1] == [1, 1]


def test_gradient_checkpointing_every_n_layers():
    model = _checkpointing_model(layers=4)
    if "every_n_layers" not in inspect.signature(getattr(model, "activation_checkpointing_enable", len)).parameters:
        pytest.skip("this transformers has no every_n_layers option (added in 5.x)")
    pixels = torch.randn(2, 3, 2, 64, 64)
    plain, _ = _gradients_and_layer_runs(model, pixels)
    _enable_checkpointing(model, reentrant=False, every_n_layers=2)
    checkpointed, runs = _gradients_and_layer_runs(model, pixels)
    assert runs == [2, 1, 2, 1]
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pixel_values": torch.randn(3, 56, 56)}, r"must be 4D .* or 5D .* got shape \(3, 56, 56\)"),
        ({"pixel_values": torch.randn(1, 1, 56, 56)}, r"has 1 channels at dim 1, the model expects 3"),
        (
            {"pixel_values": torch.randn(1, 3, 50, 56)},
            r"height and width \(50x56\) must be positive multiples of patch_size \(14\)",
        ),
        ({"visible_indices": torch.tensor([[0.0, 1.0]])}, r"visible_indices must be an integer tensor"),
        (
            {"visible_indices": torch.tensor([[0, 16]])},
            r"visible_indices must lie in \[0, 15\] .* got values from 0 to 16",
        ),
        ({"visible_indices": torch.tensor([[-1, 2]])}, r"visible_indices must lie in \[0, 15\]"),
        ({"visible_indices": torch.tensor([[0, 1], [2, 3]])}, r"visible_indices must have shape \(batch=1, K\)"),
        ({"visible_indices": torch.zeros(1, 0, dtype=torch.long)}, r"with K >= 1, got \(1, 0\)"),
        ({"patch_positions": torch.zeros(1, 16, 2, dtype=torch.long)}, r"patch_positions must have shape \(1, 16, 3\)"),
        ({"patch_positions": torch.zeros(1, 7, 3, dtype=torch.long)}, r"got \(1, 7, 3\)"),
        ({"patch_positions": -torch.ones(1, 16, 3, dtype=torch.long)}, r"patch_positions must be non-negative"),
    ],
)
def test_bad_input_raises_clear_error(tiny_model, kwargs, message):
    kwargs = {"pixel_values": torch.randn(1, 3, 56, 56), **kwargs}
    with pytest.raises(ValueError, match=message):
        tiny_model(**kwargs)


def test_patch_positions_of_full_grid_are_gathered_by_visible_indices(tiny_model):
    inputs, expected = load_case("tiny_ln_p14", "video_patch_positions")
    keep = torch.tensor([[0, 5, 17, 40, 63], [1, 2, 3, 30, 62]])
    kept_positions = torch.gather(inputs["patch_positions"], 1, keep.unsqueeze(-1).expand(-1, -1, 3))
    with torch.no_grad():
        full = tiny_model(inputs["pixel_values"], visible_indices=keep, patch_positions=inputs["patch_positions"])
        kept = tiny_model(inputs["pixel_values"], visible_indices=keep, patch_positions=kept_positions)
    torch.testing.assert_close(full.last_hidden_state, kept.last_hidden_state)


def test_set_attn_implementation_switches_kernels(saved_reference):
    arch, folder = saved_reference
    model = AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    inputs, expected = load_case(arch, "video")
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        output = model(**inputs, output_hidden_states=True)
    assert max(max_errors(flatten_output(output), expected).values()) <= TOLERANCE
