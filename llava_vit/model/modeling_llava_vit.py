"""LlavaViT: a vision transformer with 3D RoPE (4:6:6 over T/H/W) for images and videos.

Standalone: imports only torch, transformers and the sibling configuration file, so a
model repo can carry this file as is and load it with `trust_remote_code=True`.
flash-attn is optional and reached only through transformers' attention interface.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.generic import can_return_tuple

from .configuration_llava_vit import LlavaViTConfig


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention on (B, H, N, D) inputs; returns (B, N, H, D) and the (B, H, N, N) weights."""
    # Scaling the (N, D) queries rather than the (N, N) scores saves a pass over the largest tensor.
    weights = torch.matmul(query * scaling, key.transpose(-1, -2))
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


# Scores per block of the blocked attention: 2**21 is 4 MiB in bf16, so that a block's GEMMs run near the bf16 matmul
# rate while its softmax still works out of the caches.
BLOCK_SCORES = 2**21
BLOCKED_ATTENTION = "llava_vit_blocked"
# On a CPU without AMX the default (sdpa) uses the blocked attention in bf16 from this many tokens on; below, torch's
# fused kernel stays. Measurements: benchmarks/README.md.
BLOCKED_MIN_TOKENS = 2048


# Tokens per chunk of the MLP on CPU (see `LlavaViTEncoderLayer._feed_forward`; benchmarks/README.md).
CPU_FEED_FORWARD_TOKENS = 1024


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles, on which torch's fused CPU attention runs its bf16 GEMMs (packed brgemm)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


# Whether the default takes the blocked attention at all, decided once per process: measured faster on CPUs without
# AMX, where torch's fused kernel runs bf16 at about its fp32 rate; with AMX the fused kernel is the faster one (its
# softmax runs between the tiles' GEMMs). Numbers: benchmarks/README.md.
BLOCKED_BY_DEFAULT_ON_CPU = not cpu_has_amx()


def blocked_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Exact softmax attention over blocks of (heads, queries) on (B, H, N, D) inputs; returns (B, N, H, D).

    Why: on a CPU without AMX, torch's fused kernel (what sdpa runs) runs bf16 far below the bf16 GEMM rate with
    head_dim 64; this path measured faster on CPUs without AMX (benchmarks/README.md). Here each block's scores come
    from one batched GEMM in the inputs' dtype (float32 accumulation), torch's softmax (float32 arithmetic, written
    back in the inputs' dtype), and a second GEMM with the values: large GEMMs that run near peak. Only one block of
    scores (about `BLOCK_SCORES`) exists at a time, so memory stays linear in tokens.
    """
    batch, heads, length, head_dim = query.shape
    # (head, query) rows per block: as many heads with all their queries as fit, else two heads at a time while a
    # block still holds >= 256 queries, else one head (the GEMMs slow down with fewer queries per block).
    rows = max(1, BLOCK_SCORES // key.shape[2])
    if rows >= length:
        group, block = min(heads, rows // length), length
    else:
        group = min(heads, 2 if rows >= 512 else 1)
        block = rows // group
    # Contiguous (heads, tokens, head_dim) operands (O(N) copies): torch's bmm would copy strided ones per block.
    query = (query * scaling).contiguous()
    key_t = key.transpose(-1, -2).contiguous()
    value = value.contiguous()
    output = query.new_empty(batch, length, heads, head_dim)
    for b in range(batch):
        for head in range(0, heads, group):
            heads_slice = slice(head, head + group)
            for start in range(0, length, block):
                rows_slice = slice(start, start + block)
                scores = torch.bmm(query[b, heads_slice, rows_slice], key_t[b, heads_slice])
                if attention_mask is not None:
                    mask = attention_mask[b].expand(heads, -1, -1)
                    scores = scores + mask[heads_slice, rows_slice]
                weights = torch.softmax(scores, dim=-1)
                weights = F.dropout(weights, p=dropout, training=module.training)
                output[b, rows_slice, heads_slice] = torch.bmm(weights, value[b, heads_slice]).transpose(0, 1)
    return output, None


def grid_positions(frames: int, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """(T*H*W, 3) integer [t, h, w] of each token, frame-major, then row, then column."""
    t, h, w = torch.meshgrid(
        torch.arange(frames, device=device),
        torch.arange(height, device=device),
        torch.arange(width, device=device),
        indexing="ij",
    )
    return torch.stack([t, h, w], dim=-1).reshape(-1, 3)


# Registered globally so that `attn_implementation="llava_vit_blocked"` selects it on any device (transformers
# validates the name against this registry); "sdpa", the default, routes to it on CPU in bf16.
ALL_ATTENTION_FUNCTIONS.register(BLOCKED_ATTENTION, blocked_attention_forward)


class LlavaViTRotaryEmbedding(nn.Module):
    """3D rotary angles: head_dim/2 frequencies split 4:6:6 over time, height and width.

    Frequencies are recomputed from the config on every call (in float32), never kept in a
    buffer: transformers 5 refills non-persistent buffers with garbage after meta-device loading.
    """

    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        half = config.head_dim // 2
        unit = half // 16
        self.axis_sizes = (4 * unit, 6 * unit, 6 * unit)
        self.theta = float(config.rope_theta)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, N, 3) -> cos and signed sin, both (B, N, 1, head_dim) in float32.

        The sin carries the sign of the pair rotation (-, +, -, +, ...), see `apply_rotary`.
        """
        positions = positions.float()
        angles = []
        for axis, size in enumerate(self.axis_sizes):
            inv_freq = 1.0 / self.theta ** (torch.arange(size, device=positions.device, dtype=torch.float32) / size)
            angles.append(positions[..., axis : axis + 1] * inv_freq)
        angles = torch.cat(angles, dim=-1)
        angles = torch.cat([angles, angles], dim=-1).unsqueeze(2)
        signed_sin = angles.sin()
        signed_sin[..., 0::2] *= -1
        return angles.cos(), signed_sin


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate(x) * sin on (B, N, H, D) queries or keys, computed in float32, returned in x's dtype.

    rotate is the reference's interleaved pairing (x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): the sign is in
    `signed_sin`, and the pair swap is two strided multiply-adds into the float32 product. No float32 or swapped copy
    of x is made, and the projections' (B, N, H, D) layout keeps every pass contiguous in memory.
    """
    rotated = x * cos  # float32, as cos is
    rotated_pairs, pairs, sin_pairs = (t.unflatten(-1, (-1, 2)) for t in (rotated, x, signed_sin))
    rotated_pairs[..., 0].addcmul_(pairs[..., 1], sin_pairs[..., 0])
    rotated_pairs[..., 1].addcmul_(pairs[..., 0], sin_pairs[..., 1])
    return rotated.to(x.dtype)


class LlavaViTRMSNorm(nn.Module):
    """RMSNorm without bias, computed in float32."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def make_norm(config: LlavaViTConfig) -> nn.Module:
    if config.layer_norm_type == "rms_norm":
        return LlavaViTRMSNorm(config.hidden_size, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class LlavaViTEmbeddings(nn.Module):
    """Patchify each frame with a bias-free convolution into (B, T*Hp*Wp, hidden) tokens."""

    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size, bias=False
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = pixel_values.shape
        frames_2d = pixel_values.transpose(1, 2).reshape(batch * frames, channels, height, width)
        weight_dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(frames_2d.to(weight_dtype))
        return patches.flatten(2).transpose(1, 2).reshape(batch, -1, patches.shape[1])


class LlavaViTAttentionMixin:
    """Picks the attention kernel of a call (a mixin of both attention modules, which have a `config`)."""

    config: LlavaViTConfig

    def _attention_function(self, query: torch.Tensor, output_attentions: bool = False) -> Callable:
        """The kernel for (B, H, N, D) queries, read from the config at call time so that switching implementations
        works."""
        implementation = self.config._attn_implementation
        # Only eager materialises the attention maps; asking for them selects it for this call.
        if output_attentions or implementation in (None, "eager"):
            return eager_attention_forward
        if (
            implementation == "sdpa"
            and BLOCKED_BY_DEFAULT_ON_CPU
            and query.device.type == "cpu"
            and query.dtype == torch.bfloat16
            and query.shape[2] >= BLOCKED_MIN_TOKENS
        ):
            # The default on CPU in bf16 for long inputs without AMX: the same math as sdpa, faster than torch's kernel.
            return blocked_attention_forward
        if hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface"):  # transformers 5: validates the name
            return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        # transformers 4.5x: 4.57's set_attn_implementation greps this file for this exact lookup
        return ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]


class LlavaViTAttention(LlavaViTAttentionMixin, nn.Module):
    """Multi-head self-attention with 3D RoPE on queries and keys; no mask, not causal."""

    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = apply_rotary(self.q_proj(hidden_states).view(shape), *position_embeddings).transpose(1, 2)
        key = apply_rotary(self.k_proj(hidden_states).view(shape), *position_embeddings).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)

        attention_interface = self._attention_function(query, output_attentions)
        output, weights = attention_interface(
            self, query, key, value, None, scaling=self.scaling, dropout=0.0, is_causal=False
        )
        output = output.reshape(batch, length, -1)
        # Unless asked for, let eager's (B, H, N, N) weights go now, not after the next layer has made its own.
        return self.out_proj(output), weights if output_attentions else None


class LlavaViTMLP(nn.Module):
    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LlavaViTEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: x + Attn(norm1(x)), then x + MLP(norm2(x)).

    transformers' gradient checkpointing (`gradient_checkpointing_enable`, `activation_checkpointing_enable`) runs
    through `GradientCheckpointingLayer`: `hidden_states` must stay the first positional argument.
    """

    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        self.layer_norm1 = make_norm(config)
        self.self_attn = LlavaViTAttention(config)
        self.layer_norm2 = make_norm(config)
        self.mlp = LlavaViTMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_output, weights = self.self_attn(self.layer_norm1(hidden_states), position_embeddings, output_attentions)
        return self._feed_forward(hidden_states + attn_output), weights

    def _feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """x + MLP(norm2(x)); on CPU in chunks of `CPU_FEED_FORWARD_TOKENS` tokens (rows are independent: same result).

        Why: a long input's (N, intermediate) activations are fresh memory in every layer (pages the kernel must fault
        in and zero), and the GELU pass reads and writes them outside the caches; chunked, the MLP of a long input
        measured faster on CPU (benchmarks/README.md), and the peak holds one chunk's activations instead of the whole
        input's.
        """
        if hidden_states.device.type != "cpu" or hidden_states.shape[1] <= CPU_FEED_FORWARD_TOKENS:
            return hidden_states + self.mlp(self.layer_norm2(hidden_states))
        chunks = hidden_states.split(CPU_FEED_FORWARD_TOKENS, dim=1)
        return torch.cat([chunk + self.mlp(self.layer_norm2(chunk)) for chunk in chunks], dim=1)


class LlavaViTEncoder(nn.Module):
    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([LlavaViTEncoderLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutput:
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            # hidden_states positional: gradient checkpointing with use_reentrant=True needs it so.
            hidden_states, weights = layer(
                hidden_states, position_embeddings=position_embeddings, output_attentions=output_attentions
            )
            if output_hidden_states:
                all_hidden += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden, attentions=all_attentions)


class LlavaViTPoolingAttention(LlavaViTAttentionMixin, nn.Module):
    """Multi-head attention of the probe over the tokens, through the same attention interface as the encoder.

    The parameters keep `nn.MultiheadAttention`'s names (`in_proj_weight`, `in_proj_bias`, `out_proj.weight`,
    `out_proj.bias`), so every checkpoint made with it loads unchanged, and compute what it computes. Unlike it, each
    weight is used only inside the forward of the module that owns it (`out_proj` is called, not read), which is what
    accelerate's offload hooks need to bring a weight in from disk or CPU.
    """

    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * hidden))
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, probe: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        """probe (B, P, hidden) attends over hidden_states (B, N, hidden); returns (B, P, hidden)."""
        (q_weight, k_weight, v_weight), (q_bias, k_bias, v_bias) = (
            self.in_proj_weight.chunk(3),
            self.in_proj_bias.chunk(3),
        )
        query = F.linear(probe, q_weight, q_bias).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
        key = F.linear(hidden_states, k_weight, k_bias).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
        value = F.linear(hidden_states, v_weight, v_bias).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
        attention_interface = self._attention_function(query)
        output, _ = attention_interface(
            self, query, key, value, None, scaling=self.scaling, dropout=0.0, is_causal=False
        )
        return self.out_proj(output.reshape(*probe.shape[:2], -1))


class LlavaViTPoolingHead(nn.Module):
    """PMA pooling: a learned probe attends over the tokens, then a residual RMSNorm-MLP."""

    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.attention = LlavaViTPoolingAttention(config)
        self.norm = LlavaViTRMSNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = LlavaViTMLP(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        probe = self.probe.expand(hidden_states.shape[0], -1, -1).to(hidden_states.dtype)
        pooled = self.attention(probe, hidden_states)
        pooled = pooled + self.mlp(self.norm(pooled))
        return pooled[:, 0]


class LlavaViTPreTrainedModel(PreTrainedModel):
    config_class = LlavaViTConfig
    base_model_prefix = "llava_vit"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlavaViTEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flash_attn_2 = True
    _supports_attention_backend = True
    # save_pretrained and push_to_hub copy the code files and write auto_map, so the folder loads with
    # trust_remote_code; the config's save_pretrained completes it (provenance headers, processor config).
    _auto_class = "AutoModel"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # torch.nn.init calls: transformers 5 guards them so that loaded weights are never overwritten.
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, LlavaViTRMSNorm)):
            nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, LlavaViTPoolingAttention):  # as nn.MultiheadAttention initialises its projection
            nn.init.xavier_uniform_(module.in_proj_weight)
            nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, LlavaViTPoolingHead):
            nn.init.trunc_normal_(module.probe, std=std)


class LlavaViTModel(LlavaViTPreTrainedModel):
    """The LlavaViT encoder; `pooler_output` comes from the PMA head (None when `use_head` is false)."""

    def __init__(self, config: LlavaViTConfig) -> None:
        super().__init__(config)
        self.embeddings = LlavaViTEmbeddings(config)
        self.rotary = LlavaViTRotaryEmbedding(config)
        self.layernorm_pre = make_norm(config)
        self.encoder = LlavaViTEncoder(config)
        if config.use_head:
            self.layernorm_post = make_norm(config)
            self.head = LlavaViTPoolingHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if pixel_values.ndim == 4:
            pixel_values = pixel_values.unsqueeze(2)
        elif pixel_values.ndim != 5:
            raise ValueError(
                "pixel_values must be 4D (batch, channels, height, width) for images or 5D "
                f"(batch, channels, frames, height, width) for videos, got shape {tuple(pixel_values.shape)}"
            )
        channels, height, width = pixel_values.shape[1], pixel_values.shape[-2], pixel_values.shape[-1]
        if channels != self.config.num_channels:
            raise ValueError(
                f"pixel_values has {channels} channels at dim 1, the model expects {self.config.num_channels} "
                f"(shape {tuple(pixel_values.shape)})"
            )
        patch = self.config.patch_size
        if height % patch or width % patch or height == 0 or width == 0:
            raise ValueError(
                f"height and width ({height}x{width}) must be positive multiples of patch_size ({patch}); "
                f"resize or pad the input, e.g. to {max(patch, height // patch * patch)}x"
                f"{max(patch, width // patch * patch)}"
            )
        return pixel_values

    @staticmethod
    def _check_visible_indices(visible_indices: torch.Tensor, batch: int, length: int) -> None:
        if (
            not isinstance(visible_indices, torch.Tensor)
            or visible_indices.is_floating_point()
            or (visible_indices.dtype == torch.bool)
        ):
            kind = (
                visible_indices.dtype if isinstance(visible_indices, torch.Tensor) else type(visible_indices).__name__
            )
            raise ValueError(f"visible_indices must be an integer tensor (torch.long), got {kind}")
        if visible_indices.ndim != 2 or visible_indices.shape[0] != batch or visible_indices.shape[1] == 0:
            raise ValueError(
                f"visible_indices must have shape (batch={batch}, K) with K >= 1, got {tuple(visible_indices.shape)}"
            )
        low, high = int(visible_indices.min()), int(visible_indices.max())
        if low < 0 or high >= length:
            raise ValueError(
                f"visible_indices must lie in [0, {length - 1}] (the input has {length} patches), "
                f"got values from {low} to {high}"
            )

    @staticmethod
    def _check_patch_positions(positions: torch.Tensor, batch: int, lengths: tuple[int, ...]) -> None:
        if (
            not isinstance(positions, torch.Tensor)
            or positions.ndim != 3
            or positions.shape[0] != batch
            or (positions.shape[2] != 3 or positions.shape[1] not in lengths)
        ):
            shape = tuple(positions.shape) if isinstance(positions, torch.Tensor) else type(positions).__name__
            expected = " or ".join(f"({batch}, {n}, 3)" for n in dict.fromkeys(lengths))
            raise ValueError(f"patch_positions must have shape {expected} ([t, h, w] per patch), got {shape}")
        if positions.numel() and int(positions.min()) < 0:
            raise ValueError("patch_positions must be non-negative [t, h, w] indices, got a negative value")

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        visible_indices: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        r"""
        pixel_values: (B, C, H, W) images or (B, C, T, H, W) videos.
        visible_indices: (B, K) indices of the tokens to keep (frame-major order), or None for all.
        patch_positions: (B, N, 3) `[t, h, w]` of each kept token (N = K), or of every token (N = T*Hp*Wp,
            gathered with `visible_indices`); None uses the token grid.
        return_dict (keyword): False returns a tuple of the outputs that are not None (`can_return_tuple`).
        """
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        hidden_states, position_embeddings = self._tokens(pixel_values, visible_indices, patch_positions)
        encoded = self.encoder(
            self.layernorm_pre(hidden_states), position_embeddings, output_attentions, output_hidden_states
        )
        last_hidden_state, pooled = encoded.last_hidden_state, None
        if self.config.use_head:
            last_hidden_state = self.layernorm_post(last_hidden_state)
            pooled = self.head(last_hidden_state)
        return BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )

    def _tokens(
        self,
        pixel_values: torch.Tensor,
        visible_indices: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The kept tokens' embeddings (B, K, hidden) and their rotary `(cos, sin)`, after checking every input."""
        pixel_values = self._check_pixel_values(pixel_values)
        batch, _, frames, height, width = pixel_values.shape
        patch = self.config.patch_size
        grid = (frames, height // patch, width // patch)
        length = grid[0] * grid[1] * grid[2]

        hidden_states = self.embeddings(pixel_values)
        kept = length
        if visible_indices is not None:
            self._check_visible_indices(visible_indices, batch, length)
            visible_indices = visible_indices.to(hidden_states.device).long()
            kept = visible_indices.shape[1]
            gather = visible_indices.unsqueeze(-1)
            hidden_states = torch.gather(hidden_states, 1, gather.expand(-1, -1, hidden_states.shape[-1]))

        if patch_positions is None:
            positions = grid_positions(*grid, device=hidden_states.device).unsqueeze(0).expand(batch, -1, -1)
            if visible_indices is not None:
                positions = torch.gather(positions, 1, gather.expand(-1, -1, 3))
        else:
            self._check_patch_positions(patch_positions, batch, (kept, length))
            positions = patch_positions.to(hidden_states.device)
            if positions.shape[1] != kept:
                positions = torch.gather(positions, 1, gather.expand(-1, -1, 3))
        return hidden_states, self.rotary(positions)


def select_patches_by_residual(
    residual: torch.Tensor, k_keep: int, patch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codec-style patch selection: keep the `k_keep` patches with the largest summed |residual|.

    residual: (B, C, T, H, W) (or (B, C, H, W) for one frame). Returns
    visible_indices (B, K) ascending, visible_mask (B, L) bool, and ids_restore (B, L): the
    rank of each patch when the visible ones come first (in index order), then the masked ones.
    """
    if residual.ndim == 4:
        residual = residual.unsqueeze(2)
    if residual.ndim != 5:
        raise ValueError(f"residual must be (B, C, T, H, W) or (B, C, H, W), got shape {tuple(residual.shape)}")
    batch, _, frames, height, width = residual.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"residual height and width ({height}x{width}) must be multiples of patch_size ({patch_size})")
    hp, wp = height // patch_size, width // patch_size
    length = frames * hp * wp
    k_keep = int(k_keep)
    if not 1 <= k_keep <= length:
        raise ValueError(f"k_keep must be between 1 and the number of patches ({length}), got {k_keep}")
    energy = residual.abs().float().sum(1).reshape(batch, frames, hp, patch_size, wp, patch_size).sum((3, 5))
    energy = energy.reshape(batch, length)
    visible_indices = energy.topk(k_keep, dim=1).indices.sort(dim=1).values
    visible_mask = torch.zeros(batch, length, dtype=torch.bool, device=residual.device)
    visible_mask.scatter_(1, visible_indices, True)
    # Stable sort on "is masked" puts visible patches first, each group in index order.
    ids_shuffle = torch.argsort((~visible_mask).to(torch.int8), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return visible_indices, visible_mask, ids_restore


__all__ = ["LlavaViTPreTrainedModel", "LlavaViTModel", "select_patches_by_residual"]
