"""llava-vit: publish LlavaViT vision encoders as Hugging Face Hub models that load with AutoModel."""

from transformers import AutoConfig, AutoModel

from .configuration_llava_vit import PRESET_ALIASES, PRESETS, LlavaViTConfig, resolve_preset
from .modeling_llava_vit import LlavaViTModel, LlavaViTPreTrainedModel, select_patches_by_residual

__version__ = "0.1.0"

# With the package installed, a folder with model_type "llava_vit" loads without trust_remote_code.
AutoConfig.register(LlavaViTConfig.model_type, LlavaViTConfig, exist_ok=True)
AutoModel.register(LlavaViTConfig, LlavaViTModel, exist_ok=True)

__all__ = [
    "PRESETS",
    "PRESET_ALIASES",
    "LlavaViTConfig",
    "LlavaViTModel",
    "LlavaViTPreTrainedModel",
    "resolve_preset",
    "select_patches_by_residual",
    "__version__",
]
