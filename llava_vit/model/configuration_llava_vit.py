"""Configuration of the LlavaViT vision encoder.

Standalone: imports only transformers, so a model repo can carry this file as is.
"""

from __future__ import annotations

from collections.abc import Callable
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
# transformers builds id2label/label2id from num_labels (a dict entry per label) in PretrainedConfig.__init__, so
# these are checked before it runs. ImageNet-21k has 21843 classes; 100000 labels cost about 20 MB of dicts.
MAX_LABELS = 100_000
MAX_LABEL_CHARS = 1024  # one label's name


def image_processor_fields(image_size: int) -> dict[str, Any]:
    """CLIP-style processing whose output is exactly image_size x image_size whatever the input's aspect ratio: the
    shortest edge resized to image_size, then a centre crop (the OneVision-Encoder family's recipe), CLIP mean/std.
    (llava-vit's repo contract holds the same dict as its default; its tests keep the two equal, since this file
    cannot import the package.)"""
    return {
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,  # PIL.Image.Resampling.BICUBIC, the resampling CLIP was trained with
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }


def _keeps_image_size(path: str, image_size: int) -> bool:
    """Does the image processor config at `path` make image_size x image_size images (crop, or a square resize)?"""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    square = {"height": image_size, "width": image_size}
    if data.get("do_center_crop"):
        return data.get("crop_size") in (square, image_size)
    return bool(data.get("do_resize", True)) and data.get("size") in (square, image_size)


class LlavaViTConfig(PretrainedConfig):
    """Configuration of a LlavaViT encoder: a ViT with 3D RoPE (4:6:6 over T/H/W) and a PMA pooling head.

    The defaults are the `large` preset (the other variants live in llava-vit's presets table, not in this
    file). Geometry is checked here so that a wrong combination fails when the config is made, not deep
    inside a forward pass.
    """

    model_type = "llava_vit"
    # save_pretrained copies the code files and writes auto_map, so that the folder loads with trust_remote_code.
    _auto_class = "AutoConfig"
    # The llava-vit package sets this: its canonical code files carry no provenance header (a model repo's copies
    # do, and are copied as they are), so it puts the copies transformers made under their header.
    code_file_writer: Callable[[str], None] | None = None

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
        _validate_labels(kwargs)
        super().__init__(**kwargs)

    def save_pretrained(self, save_directory: Any, push_to_hub: bool = False, **kwargs: Any) -> None:
        """transformers' save_pretrained (config.json with auto_map, the code files), then what makes the folder a
        complete model repo: the code files under their provenance header, the video processor and the image
        processor config.

        A model's save_pretrained and push_to_hub call this before they write the weights and upload.
        """
        if push_to_hub:
            # transformers would upload before the folder is complete; push_to_hub saves through this method first.
            repo_id = kwargs.pop("repo_id", str(save_directory).rstrip("/").rsplit("/", 1)[-1])
            self.save_pretrained(save_directory)
            self.push_to_hub(repo_id, **kwargs)
            return
        super().save_pretrained(save_directory, **kwargs)
        writer = type(self).code_file_writer
        if writer is not None:
            writer(str(save_directory))
        self._copy_processor_files(str(save_directory))
        # The image processing the repo already holds (a folder saved again, or the repo this config came from) is
        # kept whenever it makes image_size x image_size images; only a missing or unfitting one is written anew.
        if _keeps_image_size(f"{save_directory}/preprocessor_config.json", self.image_size):
            return
        try:  # transformers 5: the PIL backend (the default one needs torchvision); it writes the same file
            from transformers import CLIPImageProcessorPil as ImageProcessor
        except ImportError:  # transformers 4.5x
            from transformers import CLIPImageProcessor as ImageProcessor
        ImageProcessor(**image_processor_fields(self.image_size)).save_pretrained(save_directory)

    # The processors' code and settings (the image processor's included); transformers copies only the config's
    # and the model's code.
    _processor_files = ("processing_llava_vit.py", "processor_config.json", "preprocessor_config.json")

    def _copy_processor_files(self, save_directory: str) -> None:
        """Bring the processor's files from the repo this config came from (a model loaded with trust_remote_code),
        byte for byte, unless the folder has them already."""
        source = getattr(self, "_name_or_path", "")
        if not source:
            return
        from transformers.utils import cached_file

        for name in self._processor_files:
            target = f"{save_directory}/{name}"
            try:
                with open(target, "rb"):
                    continue
            except FileNotFoundError:
                pass
            found = cached_file(
                source,
                name,
                revision=getattr(self, "_commit_hash", None),
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
            if found:
                with open(found, "rb") as origin, open(target, "wb") as copy:
                    copy.write(origin.read())

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


def _validate_labels(kwargs: dict[str, Any]) -> None:
    """num_labels, id2label and label2id within MAX_LABELS (and MAX_LABEL_CHARS per name), before transformers
    allocates a dict entry per label from them."""
    num_labels = kwargs.get("num_labels")
    if num_labels is not None:
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 0:
            raise ValueError(f"num_labels must be a non-negative integer, got {num_labels!r}")
        if num_labels > MAX_LABELS:
            raise ValueError(f"num_labels = {num_labels} is more than any LlavaViT head needs (at most {MAX_LABELS})")
    for name in ("id2label", "label2id"):
        mapping = kwargs.get(name)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise ValueError(f"{name} must be a mapping (JSON object), got {type(mapping).__name__}")
        if len(mapping) > MAX_LABELS:
            raise ValueError(
                f"{name} has {len(mapping)} entries, more than any LlavaViT head needs (at most {MAX_LABELS})"
            )
        longest = max((len(item) for pair in mapping.items() for item in pair if isinstance(item, str)), default=0)
        if longest > MAX_LABEL_CHARS:
            raise ValueError(f"{name} holds a label of {longest} characters (at most {MAX_LABEL_CHARS})")


__all__ = ["LlavaViTConfig"]
