"""How an upstream OneVision-Encoder config.json maps onto LlavaViTConfig (torch-free: export and adopt read it).

Upstream's `OneVisionEncoderConfig` (model_type `onevision_encoder`) has LlavaViT's fields under LlavaViT's names,
plus two of its own: `attention_dropout` (only 0.0 is mapped: LlavaViT has no attention dropout) and
`rope_temporal_size` (dropped: upstream builds the temporal RoPE table for that many frames and indexes it, which
gives the same angles as LlavaViT for clips of up to that many frames and fails for longer ones).
"""

from __future__ import annotations

from ..errors import UsageError
from ..repo_contract import MODEL_TYPE

UPSTREAM_MODEL_TYPE = "onevision_encoder"
UPSTREAM_AUTO_MAP = {
    "AutoConfig": "configuration_onevision_encoder.OneVisionEncoderConfig",
    "AutoModel": "modeling_onevision_encoder.OneVisionEncoderModel",
}
UPSTREAM_CODE_FILES = ("configuration_onevision_encoder.py", "modeling_onevision_encoder.py")
# upstream field -> LlavaViTConfig field (the same name: the architecture is the same).
FIELD_MAP = {
    name: name
    for name in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "patch_size",
        "image_size",
        "num_channels",
        "layer_norm_type",
        "layer_norm_eps",
        "hidden_act",
        "rope_theta",
        "use_head",
        "initializer_range",
    )
}
# Upstream fields LlavaViT does not keep, with why dropping them changes nothing that upstream can run.
DROPPED = {
    "rope_temporal_size": "upstream indexes a RoPE table of this many frames: the same angles as LlavaViT's for "
    "clips of up to that many frames, an error for longer clips; LlavaViT handles any length",
    "attention_dropout": "0.0 (no dropout), which is what LlavaViT does",
}
# transformers' own bookkeeping that a config.json carries; kept out of the mapping, never an error.
BOOKKEEPING = {
    "model_type",
    "auto_map",
    "architectures",
    "transformers_version",
    "dtype",
    "torch_dtype",
    "_name_or_path",
    "_attn_implementation_autoset",
    "attn_implementation",
}
# PretrainedConfig's generic fields that upstream configs carry with their defaults (ignored like export ignores).
GENERIC_DEFAULTS = {
    "return_dict": True,
    "output_hidden_states": False,
    "output_attentions": False,
    "torchscript": False,
    "use_bfloat16": False,
    "tie_word_embeddings": True,
    "is_encoder_decoder": False,
    "is_decoder": False,
    "chunk_size_feed_forward": 0,
    "problem_type": None,
    "pruned_heads": {},
    "tf_legacy_loss": False,
}
DTYPES = ("float32", "bfloat16", "float16")


def map_upstream_config(data: dict, where: str = "config.json") -> dict:
    """LlavaViT config fields (with model_type llava_vit) for an upstream config.json `data`; a UsageError of one
    line for what cannot be mapped. `where` names the file in messages."""
    if data.get("model_type") != UPSTREAM_MODEL_TYPE:
        raise UsageError(
            f"{where}: model_type is {data.get('model_type')!r}, not {UPSTREAM_MODEL_TYPE!r}; adopt takes a "
            "OneVision-Encoder repo (a llava-vit repo needs no adopting)"
        )
    dropout = data.get("attention_dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or dropout != 0:
        raise UsageError(
            f"{where}: attention_dropout is {dropout!r}; LlavaViT has no attention dropout, so only 0.0 can be "
            "adopted (set it to 0.0 if the model is only used for inference)"
        )
    temporal = data.get("rope_temporal_size", 64)
    if temporal is not None and (isinstance(temporal, bool) or not isinstance(temporal, int) or temporal < 1):
        raise UsageError(f"{where}: rope_temporal_size is {temporal!r}; expected a positive integer or null")
    unknown = [
        key
        for key in data
        if key not in FIELD_MAP
        and key not in DROPPED
        and key not in BOOKKEEPING
        and not (key in GENERIC_DEFAULTS and data[key] == GENERIC_DEFAULTS[key])
    ]
    if unknown:
        raise UsageError(
            f"{where}: fields that have no LlavaViT counterpart: {', '.join(sorted(unknown))}; adopt maps "
            f"{', '.join(FIELD_MAP)} (and drops {', '.join(DROPPED)}) only"
        )
    return {"model_type": MODEL_TYPE, **{FIELD_MAP[key]: value for key, value in data.items() if key in FIELD_MAP}}


def declared_dtype(data: dict, where: str = "config.json") -> str | None:
    """The dtype an upstream config declares (`dtype`, else `torch_dtype`), or None."""
    declared = data.get("dtype") or data.get("torch_dtype")
    if declared is None:
        return None
    if declared not in DTYPES:
        raise UsageError(f"{where}: dtype {declared!r} is not one of {', '.join(DTYPES)}; it cannot be adopted as is")
    return declared
