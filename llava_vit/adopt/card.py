"""The adopted repo's model card: the source card's prose kept as it is, its metadata completed (what
`llava-vit check` asks for), and a section that says what changed, how images are processed and the proof."""

from __future__ import annotations

import re

import yaml

from ..repo_contract import CARD_METADATA, IMAGE_PROCESSING_NAMES, is_license_id, safe_yaml

TAGS = ("llava-vit", "onevision-encoder", "vision", "image-feature-extraction", "custom_code")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*(?:\n|\Z)", re.DOTALL)


def split_card(text: str) -> tuple[dict, str]:
    """(metadata, prose) of a model card; a card without a metadata block is all prose."""
    match = _FRONT.match(text)
    if match is None:
        return {}, text
    data = safe_yaml(match[1] or "") or {}
    if not isinstance(data, dict):
        raise yaml.YAMLError("the metadata block is not a mapping")
    return data, text[match.end() :]


def merged_metadata(metadata: dict, license_id: str | None) -> dict:
    """The source metadata with what a llava-vit repo needs: library_name, pipeline_tag, a license, our tags."""
    merged = dict(metadata)
    merged.update(CARD_METADATA)
    if license_id is not None:
        merged["license"] = license_id
    elif not is_license_id(merged.get("license")):
        merged["license"] = "other"
    tags = merged.get("tags")
    tags = [tags] if isinstance(tags, str) else list(tags) if isinstance(tags, list) else []
    merged["tags"] = [*tags, *(tag for tag in TAGS if tag not in tags)]
    return merged


def adopted_section(source: str, mode: str | None, dtype: str, proof_markdown: str, llava_vit: str) -> str:
    processing = IMAGE_PROCESSING_NAMES.get(mode or "", "as the source repo's preprocessor_config.json says")
    return f"""
## Adopted by llava-vit

This repo was converted from the OneVision-Encoder repo `{source}` with `llava-vit adopt` (llava-vit {llava_vit}).
The weights are the same tensors under the same names, stored as {dtype} as before; the model code is llava-vit's
generated, released code (`configuration_llava_vit.py`, `modeling_llava_vit.py`, `processing_llava_vit.py`), which
runs on transformers 4.57 and 5.x. Check it before loading with `pipx run llava-vit audit <this repo>`.

- **Images** are processed exactly as before (`preprocessor_config.json` is kept byte for byte): {processing},
  CLIP mean/std. `processor_config.json` adds LlavaViT's video processor (`AutoProcessor`).
- **Config**: `model_type` is `llava_vit`; every field keeps its name and value. `rope_temporal_size` is dropped:
  the original code indexes a RoPE table of that many frames, which gives the same angles for clips of up to that
  many frames and fails for longer ones; this code handles any length. `attention_dropout` (0.0) is dropped.
- **Back compatibility**: the state dict loads unchanged into the original `OneVisionEncoderModel`.

### Proof

{proof_markdown}"""


def merge_card(
    text: str | None,
    source: str,
    mode: str | None,
    dtype: str,
    proof_markdown: str,
    llava_vit: str,
    license_id: str | None = None,
) -> str:
    """The new README.md: completed metadata, the source prose unchanged, then the adoption section."""
    metadata, prose = split_card(text or "")
    if not prose.strip():
        prose = f"\n# {source.rstrip('/').rsplit('/', 1)[-1]}\n\nA OneVision-Encoder vision encoder.\n"
    front = yaml.safe_dump(merged_metadata(metadata, license_id), sort_keys=False, allow_unicode=True)
    section = adopted_section(source, mode, dtype, proof_markdown, llava_vit)
    return f"---\n{front}---\n{prose.rstrip()}\n{section}"
