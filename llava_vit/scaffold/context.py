"""What the copier template asks llava_vit while it renders: presets, validation and the architecture table.

copier.yml loads `LlavaViTTemplateExtension` (a Jinja extension), so the template validates answers
with the package's own config rules and describes the model from the package's own config, rather
than keeping a second copy of either.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment
from jinja2.ext import Extension

from .. import __version__
from ..model.presets import PRESETS, parameter_count, preset_config
from ..repo_contract import (
    DEFAULT_IMAGE_PROCESSING,
    IMAGE_PROCESSING_NAMES,
    MAX_JSON_BYTES,
    MODEL_TYPE,
    PROCESSOR_FILE,
    REPO_ID_RULE,
    VIDEO_NUM_FRAMES,
    VIDEO_SIZE,
    VIDEO_TARGET_FRAMES,
    image_processing_mode,
    is_license_id,
    is_repo_id,
    parse_json_bytes,
)
from ..trust.opener import read_regular

if TYPE_CHECKING:
    from ..model.configuration_llava_vit import LlavaViTConfig

CUSTOM = "custom"
CUSTOM_FIELDS = (
    "hidden_size",
    "num_attention_heads",
    "num_hidden_layers",
    "intermediate_size",
    "patch_size",
    "layer_norm_type",
    "use_head",
)


def build_config(preset: str, image_size: int | None = None, **custom: Any) -> LlavaViTConfig:
    """The config the answers describe: a preset at `image_size`, or the custom dimensions."""
    from ..model.configuration_llava_vit import LlavaViTConfig

    if preset == CUSTOM:
        fields = {k: v for k, v in custom.items() if k in CUSTOM_FIELDS}
        return LlavaViTConfig(image_size=448 if image_size is None else image_size, **fields)
    return preset_config(preset) if image_size is None else preset_config(preset, image_size=image_size)


def config_error(preset: str = "large", **fields: Any) -> str:
    """'' when the answers make a valid config, else the config's own message (copier shows it)."""
    try:
        build_config(preset, **fields)
    except (TypeError, ValueError) as error:
        return str(error)
    return ""


def custom_config_json(**fields: Any) -> str:
    """The `--config` file `llava-vit export` gets for custom dimensions."""
    config = build_config(CUSTOM, **fields)
    keys = ("image_size", *CUSTOM_FIELDS)
    return json.dumps({"model_type": MODEL_TYPE, **{key: getattr(config, key) for key in keys}})


def architecture(preset: str, **fields: Any) -> dict[str, Any]:
    """The numbers the model card's architecture table shows."""
    config = build_config(preset, **fields)
    grid = config.image_size // config.patch_size
    return {
        "preset": preset,
        "hidden_size": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "head_dim": config.head_dim,
        "num_hidden_layers": config.num_hidden_layers,
        "intermediate_size": config.intermediate_size,
        "patch_size": config.patch_size,
        "image_size": config.image_size,
        "tokens_per_frame": grid * grid,
        "grid": grid,
        "video_size": VIDEO_SIZE,
        "video_frames": VIDEO_NUM_FRAMES,
        "target_frames": VIDEO_TARGET_FRAMES,
        "video_tokens_per_frame": (VIDEO_SIZE // config.patch_size) ** 2,
        "layer_norm_type": config.layer_norm_type,
        "use_head": config.use_head,
        "parameters": f"{parameter_count(config) / 1e6:.1f}M",
    }


def image_processing_of(destination: object) -> str:
    """The image-processing question's default: the mode the destination's preprocessor_config.json follows (a
    `copier update` keeps what the repo holds, squash in repos made before the question), else the default, crop."""
    try:
        processor = parse_json_bytes(read_regular(Path(str(destination)) / PROCESSOR_FILE, MAX_JSON_BYTES))
    except (OSError, ValueError):
        return DEFAULT_IMAGE_PROCESSING
    return (image_processing_mode(processor) if isinstance(processor, dict) else None) or DEFAULT_IMAGE_PROCESSING


def repo_id_error(repo_id: str) -> str:
    return "" if is_repo_id(repo_id) else f"{repo_id!r} is not a Hub repo id: use {REPO_ID_RULE}"


def weights_error(weights: str) -> str:
    if not weights:
        return ""
    path = Path(weights).expanduser()
    if path.is_file() or (path.is_dir() and any(path.glob("*.safetensors"))):
        return ""
    return f"{weights}: no such checkpoint file or folder of .safetensors shards (relative paths start here)"


def license_error(license_id: str) -> str:
    if is_license_id(license_id):
        return ""
    return f"{license_id!r} is not a Hub license id; use one such as apache-2.0, mit, cc-by-4.0 or other"


def endpoint_error(endpoint: str) -> str:
    if re.match(r"^https?://[^\s/]+", endpoint or ""):
        return ""
    return f"{endpoint!r} is not an http(s) URL; the default is https://huggingface.co"


class LlavaViTTemplateExtension(Extension):
    """Exposes the functions above to copier.yml and the template files as Jinja globals."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals.update(
            llava_vit_version=__version__,
            llava_vit_presets=PRESETS,
            llava_vit_image_processing_names=IMAGE_PROCESSING_NAMES,
            llava_vit_image_processing_of=image_processing_of,
            llava_vit_config_error=config_error,
            llava_vit_custom_config_json=custom_config_json,
            llava_vit_architecture=architecture,
            llava_vit_repo_id_error=repo_id_error,
            llava_vit_weights_error=weights_error,
            llava_vit_license_error=license_error,
            llava_vit_endpoint_error=endpoint_error,
        )
