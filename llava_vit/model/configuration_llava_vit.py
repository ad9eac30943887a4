"""Configuration of the LlavaViT vision encoder.

Standalone: imports only transformers, so a model repo can carry this file as is.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

LAYER_NORM_TYPES = ("layer_norm", "rms_norm")
# Sanity limits, far above every real encoder (giant: hidden 1536, 40 layers, MLP 6144), so that a hostile or
# mistyped config.json is refused here, before anything is allocated, instead of exhausting memory or time.
GEOMETRY_LIMITS = {
    "hidden_size": 16384,
    "intermediate_size": 131072,
    "num_hidden_layers": 512,
    "num_attention_heads": 512,
    "num_channels": 64,
    "image_size": 16384,
    "patch_size": 1024,
}
MAX_PARAMETERS = 50 * 10**9
MAX_PATCHES = 65536  # per frame: a 256 x 256 grid (448 / 14 is 32 x 32)


class LlavaViTConfig(PretrainedConfig):
    """Configuration of a LlavaViT encoder: a ViT with 3D RoPE (4:6:6 over T/H/W) and a PMA pooling head.

    The defaults are the `large` preset (the other variants live in llava-vit's presets table, not in this
    file). Geometry is checked here so that a wrong combination fails when the config is made, not deep
    inside a forward pass.
    """

    model_type = "llava_vit"

    def __init__(
        self,
        hidden_size: int = 1024,
        intermediate_size: int = 4096,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 16,
        num_channels: int = 3,
        image_size: int = 448,
        patch_size: int = 14,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-6,
        layer_norm_type: str = "layer_norm",
        rope_theta: float = 10000.0,
        use_head: bool = True,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ) -> None:
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_channels = num_channels
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.layer_norm_type = layer_norm_type
        self.rope_theta = rope_theta
        self.use_head = use_head
        self.initializer_range = initializer_range
        self._validate_geometry()
        super().__init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def _validate_geometry(self) -> None:
        for name in (
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_channels",
            "image_size",
            "patch_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            if value > GEOMETRY_LIMITS[name]:
                raise ValueError(f"{name} = {value} is larger than any LlavaViT (at most {GEOMETRY_LIMITS[name]})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.head_dim % 32:
            raise ValueError(
                f"head_dim = hidden_size / num_attention_heads = {self.hidden_size} / {self.num_attention_heads} "
                f"= {self.head_dim} must be divisible by 32 for the 4:6:6 3D RoPE split"
            )
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be divisible by patch_size ({self.patch_size})")
        if (self.image_size // self.patch_size) ** 2 > MAX_PATCHES:
            raise ValueError(
                f"image_size / patch_size = {self.image_size} / {self.patch_size} gives "
                f"{(self.image_size // self.patch_size) ** 2} patches per frame, more than {MAX_PATCHES}"
            )
        per_layer = 4 * self.hidden_size**2 + 2 * self.hidden_size * self.intermediate_size
        parameters = self.num_hidden_layers * per_layer + self.num_channels * self.patch_size**2 * self.hidden_size
        if parameters > MAX_PARAMETERS:
            raise ValueError(
                f"this geometry has about {parameters / 1e9:.0f} billion parameters (hidden_size {self.hidden_size}, "
                f"{self.num_hidden_layers} layers, intermediate_size {self.intermediate_size}); at most "
                f"{MAX_PARAMETERS // 10**9} billion are allowed"
            )
        if self.layer_norm_type not in LAYER_NORM_TYPES:
            raise ValueError(
                f"unknown layer_norm_type {self.layer_norm_type!r}; expected one of {', '.join(LAYER_NORM_TYPES)}"
            )


__all__ = ["LlavaViTConfig"]
