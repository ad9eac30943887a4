"""What a llava-vit model repo *is*: the one owner of its file names, `auto_map`, code files, processor
config, size limits, license and repo-id rules, the shard index format and the code-provenance verdict.

export writes what this module describes; sync, check, verify, audit, guard and the template read it.
It imports neither torch nor transformers, so every fast path (CLI parsing, the hooks, audit) can use it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from . import __version__

# --- files -------------------------------------------------------------------------------------------
MODEL_TYPE = "llava_vit"
CONFIG_FILE = "config.json"
PROCESSOR_FILE = "preprocessor_config.json"
PROCESSOR_CONFIG_FILE = "processor_config.json"  # LlavaViTProcessor's settings and its AutoProcessor auto_map
CARD_FILE = "README.md"
ANSWERS_FILE = ".copier-answers.yml"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
SHARD_NAME = "model-{index:05d}-of-{count:05d}.safetensors"
# The standalone code a repo ships (canonical copies live in llava_vit/model/), and how transformers finds it.
CODE_FILES = ("configuration_llava_vit.py", "modeling_llava_vit.py", "processing_llava_vit.py")
AUTO_MAP = {"AutoConfig": "configuration_llava_vit.LlavaViTConfig", "AutoModel": "modeling_llava_vit.LlavaViTModel"}
PROCESSOR_AUTO_MAP = {"AutoProcessor": "processing_llava_vit.LlavaViTProcessor"}
ARCHITECTURES = ["LlavaViTModel"]
# The template's example script: not run by loading, but audit passes it only as the template renders it.
EXAMPLE_FILE = "example_usage.py"
GITATTRIBUTES_FILE = ".gitattributes"
GITIGNORE_FILE = ".gitignore"
HOOKS_FILE = ".pre-commit-config.yaml"


@dataclass(frozen=True)
class RepoFile:
    """One row of the table of a model repo's files: what it is and what it may hold. Every writer (export, sync,
    save_pretrained) and every judge (check, verify, audit) reads its rules from here; a new file is a new row."""

    name: str
    role: str  # code, config, image-processor, processor, weights-index, weights, card, example, answers, maintainer
    describe: str  # what audit's report calls it
    limit: int  # the most bytes a judge reads of it
    auto_map: dict[str, str] | None = None  # the only auto_map it may carry (None: none at any depth)
    required: bool = True  # a complete repo has it
    generated: bool = False  # sync rewrites it from the installed package


# --- limits ------------------------------------------------------------------------------------------
MAX_PLAIN_BYTES = 10 * 1024 * 1024  # the Hub rejects larger files outside git-lfs
MAX_SHARD_BYTES = 5 * 10**9  # the Hub's limit per LFS file, and transformers' default shard size
MAX_JSON_BYTES = 10 * 1024 * 1024  # config, processor and index files are small: refuse to parse a bomb
MAX_CODE_BYTES = 2 * 1024 * 1024  # a code file larger than this is not llava-vit's
MAX_YAML_BYTES = 1024 * 1024  # card metadata, copier answers, hook configs
MAX_YAML_NODES = 100_000  # a YAML document with more nodes than this is refused (no alias bombs either)
MAX_JSON_DEPTH = 64  # deeper nesting is hostile, not a config (and would hit RecursionError)

# --- processor ---------------------------------------------------------------------------------------
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
BICUBIC = 3  # PIL.Image.Resampling.BICUBIC, the resampling CLIP was trained with


# How an image becomes image_size x image_size. "crop" is the OneVision-Encoder family's published recipe and the
# default for new repos: the shortest edge to image_size (aspect ratio kept), then a centre crop. "squash" resizes
# to (S, S) without a crop (llava-vit repos made before crop became the default hold it; it sees the whole image,
# distorted).
IMAGE_PROCESSING_MODES = ("crop", "squash")
DEFAULT_IMAGE_PROCESSING = "crop"
IMAGE_PROCESSING_NAMES = {
    "crop": "shortest edge resized to image_size, then a centre crop to image_size x image_size",
    "squash": "resized to image_size x image_size without a crop (the aspect ratio is not kept)",
}


def preprocessor_config(image_size: int, mode: str = DEFAULT_IMAGE_PROCESSING) -> dict:
    """CLIP-style processing whose output is exactly image_size x image_size whatever the input's aspect ratio,
    in one of IMAGE_PROCESSING_MODES (`crop`: shortest edge then centre crop; `squash`: resize to (S, S))."""
    if mode not in IMAGE_PROCESSING_MODES:
        raise ValueError(f"unknown image processing {mode!r}; choose one of {', '.join(IMAGE_PROCESSING_MODES)}")
    square = {"height": image_size, "width": image_size}
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": image_size} if mode == "crop" else square,
        "resample": BICUBIC,
        "do_center_crop": mode == "crop",
        "crop_size": square,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
    }


def image_processing_mode(processor: dict) -> str | None:
    """Which of IMAGE_PROCESSING_MODES a preprocessor config follows ("crop": resize then centre crop, "squash":
    resize to a square without a crop), or None when it is neither."""
    if processor.get("do_center_crop"):
        return "crop"
    size = processor.get("size")
    if processor.get("do_resize", True) and isinstance(size, dict) and {"height", "width"} <= set(size):
        return "squash"
    return None


def processor_problems_of(processor: object, image_size: int | None) -> list[str]:
    """Why a preprocessor config is not one a llava-vit repo may hold (an empty list when it is): any CLIP image
    processor whose output is exactly image_size x image_size, normalised with CLIP mean/std, in either mode."""
    if not isinstance(processor, dict):
        return ["must hold a JSON object"]
    problems = []
    kind = processor.get("image_processor_type", "CLIPImageProcessor")
    if not isinstance(kind, str) or not kind.startswith("CLIPImageProcessor"):
        problems.append(f"image_processor_type is {kind!r}, expected CLIPImageProcessor")
    size = processor_output_size(processor)
    if image_size is not None and size != (image_size, image_size):
        problems.append(
            f"outputs {size or 'a variable size'}, the model expects {image_size}x{image_size} (image_size)"
        )
    if processor.get("do_normalize", True) is not True:
        problems.append("do_normalize must be true (the model expects CLIP-normalised pixels)")
    for key, expected in (("image_mean", CLIP_MEAN), ("image_std", CLIP_STD)):
        value = processor.get(key)
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in value)
            or any(abs(a - b) > 1e-6 for a, b in zip(value, expected, strict=True))
        ):
            problems.append(f"{key} must be the CLIP values {expected}")
    return problems


# Video: the resolution and sampling LlavaViT video was trained with (upstream: 16 frames of 224x224 placed on
# a 64-frame timeline); LlavaViTProcessor reads them from processor_config.json.
VIDEO_SIZE = 224
VIDEO_NUM_FRAMES = 16
VIDEO_TARGET_FRAMES = 64
# The ceilings of LlavaViTProcessor's memory budgets (its defaults): a repo may lower them, never raise them.
VIDEO_BUDGETS = {"max_frame_pixels": 8192 * 8192, "max_video_bytes": 2 * 1024**3}


def processor_config(patch_size: int) -> dict:
    """processor_config.json: how AutoProcessor finds LlavaViTProcessor, and its video settings."""
    return {
        "processor_class": "LlavaViTProcessor",
        "auto_map": dict(PROCESSOR_AUTO_MAP),
        "video_size": VIDEO_SIZE,
        "num_frames": VIDEO_NUM_FRAMES,
        "target_frames": VIDEO_TARGET_FRAMES,
        "patch_size": patch_size,
    }


def processor_output_size(processor: dict) -> tuple[int, int] | None:
    """Height and width every image comes out at, or None when it depends on the input's aspect ratio."""

    def dims(value: object) -> tuple[int, int] | None:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, value
        if isinstance(value, dict) and isinstance(value.get("height"), int) and isinstance(value.get("width"), int):
            return value["height"], value["width"]
        return None

    if processor.get("do_center_crop"):
        return dims(processor.get("crop_size"))
    if processor.get("do_resize", True):
        return dims(processor.get("size"))
    return None


# --- the table -----------------------------------------------------------------------------------------
# In the order `check` reports problems: config, code, weights, processors, card, then the rest.
REPO_FILES: tuple[RepoFile, ...] = (
    RepoFile(CONFIG_FILE, "config", "model config", MAX_JSON_BYTES, AUTO_MAP),
    *(RepoFile(name, "code", "remote code (runs under trust_remote_code=True)", MAX_CODE_BYTES, generated=True)
      for name in CODE_FILES),
    RepoFile(WEIGHTS_INDEX, "weights-index", "weight shard index", MAX_JSON_BYTES, required=False),
    RepoFile(WEIGHTS_FILE, "weights", "weights (safetensors: data only)", MAX_SHARD_BYTES, required=False),
    RepoFile(PROCESSOR_FILE, "image-processor", "image processor config", MAX_JSON_BYTES),
    RepoFile(PROCESSOR_CONFIG_FILE, "processor", "processor config (video settings)", MAX_JSON_BYTES,
             PROCESSOR_AUTO_MAP, generated=True),
    RepoFile(CARD_FILE, "card", "model card", MAX_PLAIN_BYTES),
    RepoFile(EXAMPLE_FILE, "example", "example script (not run by loading; passes only as the template renders it)",
             MAX_CODE_BYTES, required=False),
    RepoFile(GITATTRIBUTES_FILE, "maintainer", "git/LFS attributes", MAX_PLAIN_BYTES, required=False),
    RepoFile(GITIGNORE_FILE, "maintainer", "git ignore rules", MAX_PLAIN_BYTES, required=False),
    RepoFile(HOOKS_FILE, "maintainer", "pre-commit hooks (maintainers only)", MAX_YAML_BYTES, required=False),
    RepoFile(ANSWERS_FILE, "answers", "template answers (maintainers only)", MAX_YAML_BYTES, required=False),
)  # fmt: skip
_BY_NAME = {row.name: row for row in REPO_FILES}
_SHARD_RE = re.compile(r"model-[0-9]{5}-of-[0-9]{5}\.safetensors")


def repo_file(path: str) -> RepoFile | None:
    """The table's row for the repo path `path` (shards share the weights row), or None for a file it does not
    know."""
    if _SHARD_RE.fullmatch(path):
        return _BY_NAME[WEIGHTS_FILE]
    return _BY_NAME.get(path)


def allowed_auto_maps() -> dict[str, dict[str, str]]:
    """{file: the only auto_map it may hold} (every other JSON may hold none, at any depth)."""
    return {row.name: row.auto_map for row in REPO_FILES if row.auto_map is not None}


def generated_files() -> tuple[str, ...]:
    return tuple(row.name for row in REPO_FILES if row.generated)


# Never part of a model repo, whatever .gitignore says: secrets, environments, caches and temporaries, at any
# folder depth. upload never sends them and check never judges them as the repo's.
NEVER_SENT = (".env", ".env.*", ".venv", "venv", ".cache", "__pycache__", ".ipynb_checkpoints", ".pytest_cache",
              ".mypy_cache", ".ruff_cache", ".DS_Store", "*.py[cod]", "*.tmp", "*.swp", "*~", ".git")  # fmt: skip


def never_sent(path: str) -> bool:
    return any(fnmatch.fnmatchcase(part, pattern) for part in path.split("/") for pattern in NEVER_SENT)


# --- card, license, repo id --------------------------------------------------------------------------
CARD_METADATA = {"library_name": "transformers", "pipeline_tag": "image-feature-extraction"}
_LICENSE_RE = re.compile(r"[a-z0-9][a-z0-9.+-]*")
# Letters, digits, '-', '_', '.'; no '--' or '..'; no leading or trailing '-' or '.'; at most 96 characters a part.
_REPO_PART = r"(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID_RE = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
REPO_ID_RULE = (
    "ORG/NAME with letters, digits, '-', '_' or '.' (no '--' or '..', not starting or ending with '-' or '.'), "
    "e.g. acme/my-vit"
)


def is_license_id(text: object) -> bool:
    """A Hub license id such as apache-2.0, mit, cc-by-4.0 or other."""
    return isinstance(text, str) and _LICENSE_RE.fullmatch(text) is not None


def is_repo_id(text: str | None) -> bool:
    """The Hub's rule for ORG/NAME."""
    return isinstance(text, str) and _REPO_ID_RE.fullmatch(text) is not None


# --- weights -----------------------------------------------------------------------------------------
def shard_file_names(count: int) -> list[str]:
    """transformers' names for `count` weight files."""
    if count == 1:
        return [WEIGHTS_FILE]
    return [SHARD_NAME.format(index=i, count=count) for i in range(1, count + 1)]


def parse_index(text: str) -> dict[str, str]:
    """The `weight_map` of a shard index (tensor name -> shard file name); ValueError when malformed."""
    data = json.loads(text)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in weight_map.items()
    ):
        raise ValueError("not a shard index: it needs a weight_map of tensor name -> shard file")
    for shard in set(weight_map.values()):
        if "/" in shard or "\\" in shard or not shard.endswith(".safetensors") or shard.startswith("."):
            raise ValueError(f"shard {shard!r} is not a .safetensors file name in the repo's top folder")
    return weight_map


_LFS_POINTER_RE = re.compile(
    rb"\Aversion https://git-lfs\.github\.com/spec/v1\n(?:[a-z0-9.-]+ [^\n]*\n)*?"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\nsize (?P<size>[0-9]{1,19})\n"
)
LFS_POINTER_MAX_BYTES = 1024


def parse_lfs_pointer(blob: bytes) -> tuple[str, int] | None:
    """(sha256, size) of a git-lfs pointer file, or None when `blob` is not one. The object id is 64 hex
    digits or nothing: a hostile pointer cannot name a path outside the LFS object store."""
    match = _LFS_POINTER_RE.match(blob[:LFS_POINTER_MAX_BYTES])
    return (match["oid"].decode(), int(match["size"])) if match else None


# --- parsing hostile text ---------------------------------------------------------------------------
def json_depth_ok(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Is the nesting of the JSON `text` (brackets outside strings) at most `limit` deep? Checked before parsing,
    so that a deeply nested document is refused instead of exhausting the stack."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def parse_json_bytes(data: bytes) -> object:
    """JSON from untrusted bytes: UTF-8 only, nesting at most MAX_JSON_DEPTH; ValueError says what is wrong."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text (JSON files are UTF-8)") from None
    if not json_depth_ok(text):
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return json.loads(text)


def safe_yaml(text: str) -> object:
    """YAML from untrusted text: plain data only (no python tags), no anchors or aliases (no alias bombs), at most
    MAX_YAML_BYTES and MAX_YAML_NODES. Raises yaml.YAMLError with the reason."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise yaml.YAMLError(f"larger than {MAX_YAML_BYTES} bytes")

    class _Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("uses a YAML alias (*name); write the value out")
            self.node_count = getattr(self, "node_count", 0) + 1
            if self.node_count > MAX_YAML_NODES:
                raise yaml.YAMLError(f"has more than {MAX_YAML_NODES} nodes")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


# --- code provenance ---------------------------------------------------------------------------------
CANONICAL_DIR = Path(__file__).resolve().parent / "model"  # where the installed package keeps CODE_FILES
_HEADER_RE = re.compile(
    r"\A# Generated by llava-vit (?P<version>\S+) from llava_vit/(?:model/)?(?P<name>\S+)\n"
    r"# body sha256: (?P<sha>[0-9a-f]{64})\n"
    r"# generated: do not edit; run `llava-vit sync` to update\.\n"
)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_source(name: str) -> str:
    """The installed package's source of one of CODE_FILES."""
    if name not in CODE_FILES:
        raise ValueError(f"{name!r} is not a llava-vit code file; expected one of {', '.join(CODE_FILES)}")
    return (CANONICAL_DIR / name).read_text(encoding="utf-8")


@cache
def known_releases() -> dict[str, dict[str, str]]:
    """{version: {code file: sha256 of its body}} of every recorded release (scripts/record_release.py)."""
    return json.loads(resources.files("llava_vit").joinpath("releases.json").read_text(encoding="utf-8"))


def release_of(name: str, body: str, claimed: str | None = None) -> str | None:
    """The recorded llava-vit release whose `name` has exactly this body, if any: the `claimed` one (its header's)
    when it matches, since an unchanged file belongs to several releases."""
    digest = sha256_text(body)
    releases = known_releases()
    if claimed is not None and releases.get(claimed, {}).get(name) == digest:
        return claimed
    return next((version for version, files in releases.items() if files.get(name) == digest), None)


def render_code_file(name: str, body: str | None = None, version: str = __version__) -> str:
    """Header + body, the exact text a model repo holds for `name`."""
    body = canonical_source(name) if body is None else body
    header = (
        f"# Generated by llava-vit {version} from llava_vit/model/{name}\n"
        f"# body sha256: {sha256_text(body)}\n"
        "# generated: do not edit; run `llava-vit sync` to update.\n"
    )
    return header + body


def strip_header(text: str) -> str:
    """The body of a repo code file: the text after its provenance header (all of it without one)."""
    match = _HEADER_RE.match(text)
    return text[match.end() :] if match else text


@dataclass(frozen=True)
class CodeVerdict:
    """What one repo code file is: the release its body is byte for byte (None: none), what its header claims."""

    name: str
    release: str | None  # judged on the body alone, header or not
    claimed: str | None  # the version its header names; None without a valid header
    body_intact: bool  # the body still has the sha256 its header records
    installed: bool  # byte-identical to this installed llava-vit's file

    @property
    def problem(self) -> str | None:
        """Why this file is not release code (None when it is), phrased for every check alike."""
        if self.claimed is None:
            return f"{self.name}: no valid llava-vit provenance header (modified or not generated by llava-vit)"
        if not self.body_intact:
            return f"{self.name}: edited by hand (body differs from its llava-vit {self.claimed} header's sha256)"
        if self.release is None:
            return f"{self.name}: claims llava-vit {self.claimed} but matches no recorded llava-vit release"
        return None


def judge_code(name: str, text: str) -> CodeVerdict:
    """The provenance verdict on the text of the repo file `name` (one of CODE_FILES)."""
    match = _HEADER_RE.match(text)
    body = text[match.end() :] if match and match["name"] == name else text
    claimed = match["version"] if match and match["name"] == name else None
    intact = claimed is not None and sha256_text(body) == match["sha"]
    return CodeVerdict(
        name=name,
        release=release_of(name, body, claimed),
        claimed=claimed,
        body_intact=intact,
        installed=claimed is not None and body == canonical_source(name),
    )
