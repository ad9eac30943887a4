"""The preset table: names, seed aliases, geometry and parameter counts."""

from __future__ import annotations

import argparse

import torch

from .configuration_llava_vit import PRESETS, LlavaViTConfig
from .modeling_llava_vit import LlavaViTModel


def parameter_count(config: LlavaViTConfig) -> int:
    """Parameters of a model built from `config`, counted on the meta device (no memory used)."""
    with torch.device("meta"):
        model = LlavaViTModel(config)
    return sum(p.numel() for p in model.parameters())


def preset_table() -> str:
    header = (
        f"{'preset':<8} {'seed alias':<24} {'patch':>5} {'hidden':>6} {'heads':>5} {'layers':>6} {'mlp':>5} "
        f"{'params':>9}"
    )
    rows = [header, "-" * len(header)]
    for name, dims in PRESETS.items():
        params = parameter_count(LlavaViTConfig.from_preset(name))
        rows.append(
            f"{name:<8} {'hf_llava_vit_' + name + '_ln':<24} {dims['patch_size']:>5} {dims['hidden_size']:>6} "
            f"{dims['num_attention_heads']:>5} {dims['num_hidden_layers']:>6} {dims['intermediate_size']:>5} "
            f"{params / 1e6:>8.1f}M"
        )
    return "\n".join(rows)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("presets", help="list the presets with their geometry and parameter counts")
    parser.set_defaults(handler=lambda args: print(preset_table()) or 0)
