"""The model variants (timm-style: a table beside the model, not data inside the shipped config class).

Kept out of `configuration_llava_vit.py`, so that adding or changing a preset does not change the code
every published repo carries. Torch-free: the table is read by the CLI and the template's questions.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .configuration_llava_vit import LlavaViTConfig

# Architecture of each preset; everything else takes the config's defaults (which are `large`).
PRESETS: dict[str, dict[str, int]] = {
    "small": dict(patch_size=16, hidden_size=384, num_attention_heads=6, num_hidden_layers=6, intermediate_size=1536),
    "base": dict(patch_size=16, hidden_size=768, num_attention_heads=12, num_hidden_layers=12, intermediate_size=3072),
    "large": dict(
        patch_size=14, hidden_size=1024, num_attention_heads=16, num_hidden_layers=24, intermediate_size=4096
    ),
    "huge": dict(patch_size=14, hidden_size=1536, num_attention_heads=16, num_hidden_layers=27, intermediate_size=4608),
    "giant": dict(
        patch_size=14, hidden_size=1536, num_attention_heads=16, num_hidden_layers=40, intermediate_size=6144
    ),
    # The OneVision-Encoder family, as upstream's training registers it (`ov_encoder_*`); large is 448 on the Hub.
    "ov-encoder-base": dict(
        patch_size=14,
        hidden_size=768,
        num_attention_heads=12,
        num_hidden_layers=12,
        intermediate_size=3072,
        image_size=224,
    ),
    "ov-encoder-large": dict(
        patch_size=14,
        hidden_size=1024,
        num_attention_heads=16,
        num_hidden_layers=24,
        intermediate_size=4096,
        image_size=448,
    ),
    "ov-encoder-huge": dict(
        patch_size=14,
        hidden_size=1280,
        num_attention_heads=20,
        num_hidden_layers=32,
        intermediate_size=5120,
        image_size=224,
    ),
}
SEED_PRESETS = ("small", "base", "large", "huge", "giant")
# The seed tool's model-registry names, and upstream OneVision-Encoder's training names.
PRESET_ALIASES: dict[str, str] = {
    **{f"hf_llava_vit_{name}_ln": name for name in SEED_PRESETS},
    **{name.replace("-", "_"): name for name in PRESETS if name.startswith("ov-encoder-")},
}


def resolve_preset(name: str) -> str:
    """Return the canonical preset name for `name` or one of its seed aliases."""
    key = name.strip().lower()
    key = PRESET_ALIASES.get(key, key)
    if key not in PRESETS:
        valid = ", ".join([*PRESETS, *PRESET_ALIASES])
        raise ValueError(f"unknown preset {name!r}; valid presets: {valid}")
    return key


def preset_config(name: str, **overrides: Any) -> LlavaViTConfig:
    """The config of a named preset (small/base/large/huge/giant, ov-encoder-base/large/huge, or an alias), with
    `overrides`."""
    from .configuration_llava_vit import LlavaViTConfig

    return LlavaViTConfig(**{**PRESETS[resolve_preset(name)], **overrides})


def parameter_count(config: LlavaViTConfig) -> int:
    """Parameters of a model built from `config`, counted on the meta device (no memory used)."""
    import torch

    from .modeling_llava_vit import LlavaViTModel

    with torch.device("meta"):
        model = LlavaViTModel(config)
    return sum(p.numel() for p in model.parameters())


def preset_table() -> str:
    header = (
        f"{'preset':<16} {'alias':<24} {'patch':>5} {'image':>5} {'hidden':>6} {'heads':>5} {'layers':>6} "
        f"{'mlp':>5} {'params':>9}"
    )
    rows = [header, "-" * len(header)]
    aliases = {name: alias for alias, name in PRESET_ALIASES.items()}
    for name, dims in PRESETS.items():
        config = preset_config(name)
        params = parameter_count(config)
        rows.append(
            f"{name:<16} {aliases[name]:<24} {dims['patch_size']:>5} {config.image_size:>5} {dims['hidden_size']:>6} "
            f"{dims['num_attention_heads']:>5} {dims['num_hidden_layers']:>6} {dims['intermediate_size']:>5} "
            f"{params / 1e6:>8.1f}M"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    print(preset_table())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("presets", help="list the presets with their geometry and parameter counts")
    parser.set_defaults(handler=run)
