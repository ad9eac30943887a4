"""The blocked attention (`llava_vit_blocked`, the default on CPU in bf16 where the CPU has no AMX): same results as
eager, bounded memory, and selectable through `attn_implementation` on transformers 4.57 and 5.x."""

from __future__ import annotations

import pytest
import torch
from reference import CASES, TOLERANCE, architecture, flatten_output, load_case, max_errors, weights_path
from safetensors.torch import load_file
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModel

from llava_vit import LlavaViTConfig, LlavaViTModel
from llava_vit.model import modeling_llava_vit as modeling

BLOCKED = modeling.BLOCKED_ATTENTION
# bf16 keeps 8 significant bits: relative error (Frobenius norm of the difference over the reference's) allowed for a
# bf16 forward against the same model in fp32, and between two bf16 attention paths (rounding order only).
BF16_RELATIVE_TOLERANCE = 2e-2
FUSED_CPU_KERNEL = "aten::_scaled_dot_product_flash_attention_for_cpu"


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.float() - want.float()).norm() / want.float().norm()).item()


def assert_close_in_fp32(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal to 1e-5 of the output's scale: CPUs' GEMM kernels sum in different orders (AVX-512 vs AMX machines
    differ by 1e-5 absolute on these order-10 outputs), so an absolute 1e-5 would test the CPU, not the code."""
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def attention_inputs(batch: int, heads: int, length: int, head_dim: int, dtype: torch.dtype, seed: int = 0):
    """q, k, v as the model hands them over: (B, H, N, D) views of (B, N, H, D) projections, logits of order 1-10."""
    generator = torch.Generator().manual_seed(seed)

    def one() -> torch.Tensor:
        return (3 * torch.randn(batch, length, heads, head_dim, generator=generator)).to(dtype).transpose(1, 2)

    return one(), one(), one()


def eager(query, key, value, mask=None) -> torch.Tensor:
    module = torch.nn.Module().eval()
    return modeling.eager_attention_forward(module, query, key, value, mask, scaling=query.shape[-1] ** -0.5)[0]


def blocked(query, key, value, mask=None) -> torch.Tensor:
    module = torch.nn.Module().eval()
    output, weights = modeling.blocked_attention_forward(module, query, key, value, mask, query.shape[-1] ** -0.5)
    assert weights is None
    return output


@pytest.mark.parametrize("block_scores", [None, 7 * 61, 61, 1])  # one block; uneven blocks; one row; 1 score
@pytest.mark.parametrize(("batch", "heads"), [(1, 1), (2, 3), (1, 4)])
def test_blocked_attention_matches_eager_in_fp32(monkeypatch, block_scores, batch, heads):
    if block_scores is not None:
        monkeypatch.setattr(modeling, "BLOCK_SCORES", block_scores)
    query, key, value = attention_inputs(batch, heads, 61, 16, torch.float32)
    want = eager(query, key, value)
    got = blocked(query, key, value)
    assert got.shape == (batch, 61, heads, 16)
    assert_close_in_fp32(got, want)


def test_blocked_attention_applies_a_mask(monkeypatch):
    monkeypatch.setattr(modeling, "BLOCK_SCORES", 5 * 40)
    query, key, value = attention_inputs(2, 2, 40, 8, torch.float32)
    mask = torch.zeros(2, 1, 40, 40)
    mask[0, ..., 30:] = float("-inf")  # sample 0 must not see its last 10 keys
    got = blocked(query, key, value, mask)
    assert_close_in_fp32(got, eager(query, key, value, mask))
    assert_close_in_fp32(got[:1], eager(query[:1, :, :, :], key[:1, :, :30], value[:1, :, :30]))


@pytest.mark.parametrize("block_scores", [None, 3 * 128])
def test_blocked_attention_in_bf16_is_as_close_to_fp32_as_eager(monkeypatch, block_scores):
    if block_scores is not None:
        monkeypatch.setattr(modeling, "BLOCK_SCORES", block_scores)
    query, key, value = attention_inputs(2, 4, 128, 64, torch.bfloat16)
    exact = eager(query.float(), key.float(), value.float())
    got, eager_bf16 = blocked(query, key, value), eager(query, key, value)
    assert got.dtype == torch.bfloat16
    assert relative_error(got, exact) <= BF16_RELATIVE_TOLERANCE
    assert relative_error(got, exact) <= 1.5 * relative_error(eager_bf16, exact) + 1e-3
    assert relative_error(got, eager_bf16) <= BF16_RELATIVE_TOLERANCE


class LargestOutputs(TorchDispatchMode):
    """Records the shape of every tensor an aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[torch.Size] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(value, torch.Tensor):
                self.shapes.append(value.shape)
        return result


def test_blocked_attention_memory_is_bounded_by_the_block(monkeypatch):
    monkeypatch.setattr(modeling, "BLOCK_SCORES", 2**12)
    heads, length = 4, 512
    query, key, value = attention_inputs(1, heads, length, 16, torch.bfloat16)
    with LargestOutputs() as recorded:
        blocked(query, key, value)
    # Besides one block of scores, only (N, H, D)-sized tensors: the inputs' copies and the output.
    largest = max(shape.numel() for shape in recorded.shapes)
    assert largest <= max(2**12, query.numel()) < heads * length * length
    with LargestOutputs() as recorded:
        eager(query, key, value)
    assert max(shape.numel() for shape in recorded.shapes) >= heads * length * length  # what the blocks avoid


@pytest.fixture(scope="module")
def reference_model() -> LlavaViTModel:
    model = LlavaViTModel(LlavaViTConfig(**architecture("tiny_ln_p14")))
    model.load_state_dict(load_file(weights_path("tiny_ln_p14")))
    return model.eval()


def _forward(model: LlavaViTModel, implementation: str, dtype: torch.dtype, inputs: dict) -> dict[str, torch.Tensor]:
    model.config._attn_implementation = implementation
    try:
        with torch.no_grad():
            return flatten_output(model.to(dtype)(**inputs, output_hidden_states=True))
    finally:
        model.to(torch.float32).config._attn_implementation = "eager"


BATCHED = {
    "image batch": {"pixel_values": torch.randn(3, 3, 56, 84)},
    "video batch": {"pixel_values": torch.randn(2, 3, 4, 42, 56)},
}


@pytest.mark.parametrize("case", [*CASES, *BATCHED])
def test_model_with_blocked_attention_matches_eager_in_fp32(reference_model, monkeypatch, case):
    monkeypatch.setattr(modeling, "BLOCK_SCORES", 3 * 29)  # several uneven blocks per head even on small inputs
    inputs = BATCHED[case] if case in BATCHED else load_case("tiny_ln_p14", case)[0]
    want = _forward(reference_model, "eager", torch.float32, inputs)
    got = _forward(reference_model, BLOCKED, torch.float32, inputs)
    assert max(max_errors(got, want).values()) <= 1e-5


@pytest.mark.parametrize("case", ["video", "video_visible_indices", "video_patch_positions", "video batch"])
def test_default_bf16_forward_on_cpu_without_amx_is_blocked_and_close_to_fp32(reference_model, monkeypatch, case):
    monkeypatch.setattr(modeling, "BLOCKED_BY_DEFAULT_ON_CPU", True)  # what a CPU without AMX decides
    monkeypatch.setattr(modeling, "BLOCK_SCORES", 3 * 29)
    monkeypatch.setattr(modeling, "BLOCKED_MIN_TOKENS", 1)  # the fixtures' inputs are short
    inputs = BATCHED[case] if case in BATCHED else load_case("tiny_ln_p14", case)[0]
    exact = _forward(reference_model, "eager", torch.float32, inputs)
    eager_bf16 = _forward(reference_model, "eager", torch.bfloat16, inputs)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        default_bf16 = _forward(reference_model, "sdpa", torch.bfloat16, inputs)
    calls = {event.key: event.count for event in profile.key_averages()}
    # The pooling head's attention follows the same choice (one query: one block), no layer runs the fused kernel.
    assert calls.get(FUSED_CPU_KERNEL, 0) == 0
    assert calls.get("aten::_softmax", 0) > reference_model.config.num_hidden_layers + 1  # several blocks per layer
    for name in ("last_hidden_state", "pooler_output"):
        assert default_bf16[name].dtype == torch.bfloat16
        assert relative_error(default_bf16[name], exact[name]) <= BF16_RELATIVE_TOLERANCE, name
        assert relative_error(default_bf16[name], eager_bf16[name]) <= BF16_RELATIVE_TOLERANCE, name


def _kernel_calls(model: LlavaViTModel, pixels: torch.Tensor) -> dict[str, int]:
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(pixels)
    return {event.key: event.count for event in profile.key_averages()}


@pytest.fixture(scope="module")
def saved_reference(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny_ln_p14")
    model = LlavaViTModel(LlavaViTConfig(**architecture("tiny_ln_p14")))
    model.load_state_dict(load_file(weights_path("tiny_ln_p14")))
    model.save_pretrained(folder)
    return str(folder)


def test_blocked_is_selected_by_name_and_matches_the_fixtures(saved_reference):
    model = AutoModel.from_pretrained(saved_reference, attn_implementation=BLOCKED).eval()
    assert model.config._attn_implementation == BLOCKED
    for case in CASES:
        inputs, expected = load_case("tiny_ln_p14", case)
        with torch.no_grad():
            output = model(**inputs, output_hidden_states=True)
        assert max(max_errors(flatten_output(output), expected).values()) <= TOLERANCE, case
    layers = model.config.num_hidden_layers
    calls = _kernel_calls(model, torch.randn(1, 3, 56, 56))
    # The pooling head's attention takes the named kernel too: one softmax more than the layers'.
    assert calls.get(FUSED_CPU_KERNEL, 0) == 0 and calls.get("aten::_softmax", 0) == layers + 1


def test_set_attn_implementation_switches_to_and_from_blocked(saved_reference):
    model = AutoModel.from_pretrained(saved_reference, attn_implementation="eager").eval()
    layers = model.config.num_hidden_layers
    pixels = torch.randn(1, 3, 56, 56)
    model.set_attn_implementation(BLOCKED)
    assert model.config._attn_implementation == BLOCKED
    calls = _kernel_calls(model, pixels)
    assert calls.get(FUSED_CPU_KERNEL, 0) == 0 and calls.get("aten::_softmax", 0) == layers + 1  # + the head's
    model.set_attn_implementation("sdpa")
    assert _kernel_calls(model, pixels).get(FUSED_CPU_KERNEL, 0) == layers + 1


def test_default_is_sdpa_and_keeps_torch_fused_kernel_in_fp32_and_for_short_inputs(saved_reference, monkeypatch):
    """torch's fused kernel is the faster one on CPU in fp32 and for short bf16 inputs, so the default keeps it."""
    monkeypatch.setattr(modeling, "BLOCKED_BY_DEFAULT_ON_CPU", True)
    model = AutoModel.from_pretrained(saved_reference).eval()
    assert model.config._attn_implementation == "sdpa"
    layers = model.config.num_hidden_layers
    pixels = torch.randn(1, 3, 56, 56)  # 16 tokens
    monkeypatch.setattr(modeling, "BLOCKED_MIN_TOKENS", 16)
    assert _kernel_calls(model, pixels).get(FUSED_CPU_KERNEL, 0) == layers + 1
    model.to(torch.bfloat16)
    calls = _kernel_calls(model, pixels.to(torch.bfloat16))
    assert calls.get(FUSED_CPU_KERNEL, 0) == 1 and calls.get("aten::_softmax", 0) == layers
    monkeypatch.setattr(modeling, "BLOCKED_MIN_TOKENS", 17)
    assert _kernel_calls(model, pixels.to(torch.bfloat16)).get(FUSED_CPU_KERNEL, 0) == layers + 1


def test_output_attentions_still_returns_maps_with_blocked(reference_model):
    reference_model.config._attn_implementation = BLOCKED
    try:
        with torch.no_grad():
            output = reference_model(torch.randn(1, 3, 56, 56), output_attentions=True)
    finally:
        reference_model.config._attn_implementation = "eager"
    heads = reference_model.config.num_attention_heads
    assert [tuple(weights.shape) for weights in output.attentions] == [(1, heads, 16, 16)] * 2


def test_unknown_implementation_is_refused(saved_reference):
    with pytest.raises(ValueError, match="llava_vit_blockd"):
        AutoModel.from_pretrained(saved_reference, attn_implementation="llava_vit_blockd")


def test_default_keeps_torch_fused_kernel_in_bf16_on_a_cpu_with_amx(saved_reference, monkeypatch):
    """With AMX, torch's fused kernel runs its bf16 GEMMs on tiles and is the faster one at every length."""
    monkeypatch.setattr(modeling, "BLOCKED_BY_DEFAULT_ON_CPU", False)  # what a CPU with AMX decides
    monkeypatch.setattr(modeling, "BLOCKED_MIN_TOKENS", 1)
    model = AutoModel.from_pretrained(saved_reference).to(torch.bfloat16).eval()
    calls = _kernel_calls(model, torch.randn(1, 3, 2, 56, 56, dtype=torch.bfloat16))
    assert calls.get(FUSED_CPU_KERNEL, 0) == model.config.num_hidden_layers + 1
    assert calls.get("aten::_softmax", 0) == 0


def test_the_default_follows_the_cpu(saved_reference, monkeypatch):
    """Unpatched, on whatever CPU runs this: a long bf16 input takes torch's fused kernel where torch reports AMX and
    the blocked attention where it does not; a torch without that report counts as no AMX."""
    monkeypatch.setattr(modeling, "BLOCKED_MIN_TOKENS", 1)  # every input is long enough
    model = AutoModel.from_pretrained(saved_reference).to(torch.bfloat16).eval()
    layers = model.config.num_hidden_layers
    fused_layers = layers if modeling.cpu_has_amx() else 0
    calls = _kernel_calls(model, torch.randn(1, 3, 2, 56, 56, dtype=torch.bfloat16))
    # The pooling head's attention (one query, so long enough here too) follows the same choice.
    assert calls.get(FUSED_CPU_KERNEL, 0) == fused_layers + int(modeling.cpu_has_amx())
    assert calls.get("aten::_softmax", 0) == (layers + 1 - fused_layers - int(modeling.cpu_has_amx()))
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert modeling.cpu_has_amx() is False
