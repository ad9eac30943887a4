"""llava-vit: publish LlavaViT vision encoders as Hugging Face Hub models that load with AutoModel.

`import llava_vit` is instant: it imports neither torch nor transformers. The model names below load on
first use (PEP 562), and asking for `LlavaViTConfig` or `LlavaViTModel` also registers them with
`AutoConfig`/`AutoModel`, so that local folders with model_type "llava_vit" load without
`trust_remote_code` while the package is installed. The command line, the hooks and `audit` never
touch the model, so they start in a fraction of a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

# name -> submodule that defines it
_LAZY = {
    "LlavaViTConfig": "model.configuration_llava_vit",
    "LlavaViTModel": "model.modeling_llava_vit",
    "LlavaViTPreTrainedModel": "model.modeling_llava_vit",
    "select_patches_by_residual": "model.modeling_llava_vit",
    "LlavaViTProcessor": "model.processing_llava_vit",
    "PRESETS": "model.presets",
    "PRESET_ALIASES": "model.presets",
    "resolve_preset": "model.presets",
    "preset_config": "model.presets",
}
_REGISTERING = {"LlavaViTConfig", "LlavaViTModel", "LlavaViTPreTrainedModel", "select_patches_by_residual"}

if TYPE_CHECKING:
    from .model.configuration_llava_vit import LlavaViTConfig
    from .model.modeling_llava_vit import LlavaViTModel, LlavaViTPreTrainedModel, select_patches_by_residual
    from .model.presets import PRESET_ALIASES, PRESETS, preset_config, resolve_preset
    from .model.processing_llava_vit import LlavaViTProcessor


def _register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModel

    from .model.configuration_llava_vit import LlavaViTConfig
    from .model.modeling_llava_vit import LlavaViTModel

    AutoConfig.register(LlavaViTConfig.model_type, LlavaViTConfig, exist_ok=True)
    AutoModel.register(LlavaViTConfig, LlavaViTModel, exist_ok=True)
    # save_pretrained copies the package's bare code files: put the release's files (headed) and the processor in.
    from .repo_files import complete_saved_folder

    LlavaViTConfig.code_file_writer = staticmethod(complete_saved_folder)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llava_vit' has no attribute {name!r}")
    if name in _REGISTERING:
        _register_auto_classes()
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "PRESETS",
    "PRESET_ALIASES",
    "LlavaViTConfig",
    "LlavaViTModel",
    "LlavaViTPreTrainedModel",
    "LlavaViTProcessor",
    "__version__",
    "preset_config",
    "resolve_preset",
    "select_patches_by_residual",
]
