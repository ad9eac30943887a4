"""`llava-vit check`: prove fast, without loading tensors, that a model repo will load.

The fast check reads only small files and safetensors headers, compares the weights' names and
shapes with a meta-device model built from config.json, and imports the repo's code in a clean
interpreter. It is the pre-commit hook; `--full` adds the real load (`llava-vit verify`) and the
git-lfs object check that the pre-push hook runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
import transformers
import yaml

from .checkpoint import expected_shapes
from .configuration_llava_vit import LlavaViTConfig
from .errors import LlavaViTError
from .export import AUTO_MAP, CLIP_MEAN, CLIP_STD
from .lfs import lfs_object_problems, lfs_push_hook_problems
from .provenance import CODE_FILES, read_provenance
from .safetensors_header import TORCH_DTYPE_NAMES, HeaderError, read_header
from .sync import load_config_json
from .verify import verify

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
MAX_SHARD_BYTES = 5 * 10**9
CARD_METADATA = {"library_name": "transformers", "pipeline_tag": "image-feature-extraction"}
_LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_MAX_LISTED = 5

# Imports the repo folder as a package named after nothing installed, so only the repo's own files are used.
_IMPORT_PROBE = """
import importlib, importlib.machinery, importlib.util, json, sys
repo, auto_map = sys.argv[1], json.loads(sys.argv[2])
spec = importlib.machinery.ModuleSpec("llava_vit_model_repo", None, is_package=True)
spec.submodule_search_locations = [repo]
sys.modules[spec.name] = importlib.util.module_from_spec(spec)
for target in auto_map.values():
    module, _, name = target.rpartition(".")
    getattr(importlib.import_module(spec.name + "." + module), name)
"""


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _import_cache_file(repo: Path) -> Path:
    """Where a passed import probe is remembered: keyed by the code's bytes and this interpreter's stack."""
    digest = hashlib.sha256()
    for name in CODE_FILES:
        path = repo / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"<missing>") + b"\0")
    stack = (sys.executable, sys.version, torch.__version__, transformers.__version__, json.dumps(AUTO_MAP))
    digest.update(repr(stack).encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "llava-vit" / "import-probe" / digest.hexdigest()


def start_import_probe(repo: Path) -> subprocess.Popen | None:
    """Start importing the repo's code in an isolated interpreter (`python -I -B`), unless this exact code
    already passed with this exact interpreter and package versions; runs while we check the rest."""
    if _import_cache_file(repo).is_file():
        return None
    return subprocess.Popen(
        [sys.executable, "-I", "-B", "-c", _IMPORT_PROBE, str(repo.resolve()), json.dumps(AUTO_MAP)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def import_problems(repo: Path, probe: subprocess.Popen | None) -> list[str]:
    if probe is None:
        return []
    _, stderr = probe.communicate()
    if probe.returncode == 0:
        marker = _import_cache_file(repo)
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        return []
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    return [f"code: importing the repo's code in a clean interpreter failed ({last}); run `llava-vit sync`"]


def config_problems(data: dict) -> tuple[LlavaViTConfig | None, list[str]]:
    problems = []
    if data.get("model_type") != LlavaViTConfig.model_type:
        problems.append(
            f"config.json: model_type is {data.get('model_type')!r}, expected 'llava_vit'; "
            "re-create it with `llava-vit export`"
        )
    if data.get("auto_map") != AUTO_MAP:
        problems.append(f"config.json: auto_map must be exactly {json.dumps(AUTO_MAP)}; run `llava-vit sync`")
    try:
        config = LlavaViTConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        return None, [*problems, f"config.json: {error}; fix the value or re-create it with `llava-vit export`"]
    return config, problems


def code_problems(repo: Path) -> list[str]:
    problems = []
    for name in CODE_FILES:
        path = repo / name
        if not path.is_file():
            problems.append(f"{name}: missing; run `llava-vit sync`")
            continue
        provenance = read_provenance(path)
        if provenance is None:
            problems.append(f"{name}: no valid llava-vit provenance header; run `llava-vit sync`")
        elif not provenance.body_intact:
            problems.append(f"{name}: edited by hand (body differs from its header's sha256); run `llava-vit sync`")
        elif not provenance.matches_installed:
            problems.append(
                f"{name}: generated by llava-vit {provenance.version}, differs from the installed package; "
                "run `llava-vit sync`"
            )
    return problems


def _weight_files(repo: Path) -> tuple[dict[str, str] | None, list[str], list[str]]:
    """(weight_map from the index or None, shard names, problems)."""
    index_path = repo / WEIGHTS_INDEX
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            weight_map = dict(index["weight_map"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None, [], [f"{WEIGHTS_INDEX}: not a valid index (needs a weight_map); re-export the weights"]
        return weight_map, sorted(set(weight_map.values())), []
    if (repo / WEIGHTS_FILE).is_file():
        return None, [WEIGHTS_FILE], []
    return None, [], [f"{WEIGHTS_FILE}: missing; export weights with `llava-vit export`"]


def weight_problems(repo: Path, data: dict, config: LlavaViTConfig | None) -> list[str]:
    """Names, shapes and dtypes of the safetensors files against the model config.json describes."""
    weight_map, shards, problems = _weight_files(repo)
    found: dict[str, tuple[str, tuple[int, ...]]] = {}
    for shard in shards:
        path = repo / shard
        if not path.is_file():
            problems.append(f"{shard}: listed in {WEIGHTS_INDEX} but missing; re-export the weights")
            continue
        if path.stat().st_size > MAX_SHARD_BYTES:
            problems.append(f"{shard}: larger than 5 GB; re-export with `llava-vit export --max-shard-size 5GB`")
        try:
            header = read_header(path)
        except HeaderError as error:
            problems.append(f"{shard}: {error}")
            continue
        for name, entry in header.tensors.items():
            if weight_map is not None and weight_map.get(name) != shard:
                problems.append(f"{shard}: holds {name}, which {WEIGHTS_INDEX} maps to {weight_map.get(name)}")
            found[name] = (entry.dtype, entry.shape)
    if weight_map is not None:
        absent = sorted(name for name in weight_map if name not in found and (repo / weight_map[name]).is_file())
        if absent:
            problems.append(f"{WEIGHTS_INDEX}: maps tensors that no shard holds: {_listed(absent)}")
    if config is None or not shards:
        return problems
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{name} {list(found[name][1])} != {list(shape)}"
        for name, shape in sorted(expected.items())
        if name in found and found[name][1] != shape
    ]
    if missing:
        problems.append(f"weights: missing tensors {_listed(missing)}; config.json and the weights disagree")
    if unexpected:
        problems.append(f"weights: unexpected tensors {_listed(unexpected)}; config.json and the weights disagree")
    if wrong:
        problems.append(f"weights: wrong shapes {_listed(wrong)}; config.json and the weights disagree")
    declared = data.get("dtype") or data.get("torch_dtype")
    stored = sorted({TORCH_DTYPE_NAMES.get(dtype, dtype) for dtype, _ in found.values()})
    if declared and stored and stored != [declared]:
        problems.append(f"weights: stored as {', '.join(stored)} but config.json declares dtype {declared}; re-export")
    return problems


def processor_output_size(processor: dict) -> tuple[int, int] | None:
    """Height and width every image comes out at, or None when it depends on the input's aspect ratio."""

    def dims(value: object) -> tuple[int, int] | None:
        if isinstance(value, int):
            return value, value
        if isinstance(value, dict) and "height" in value and "width" in value:
            return value["height"], value["width"]
        return None

    if processor.get("do_center_crop"):
        return dims(processor.get("crop_size"))
    if processor.get("do_resize", True):
        return dims(processor.get("size"))
    return None


def processor_problems(repo: Path, config: LlavaViTConfig | None) -> list[str]:
    path = repo / "preprocessor_config.json"
    fix = "re-create it with `llava-vit export`"
    if not path.is_file():
        return [f"preprocessor_config.json: missing; {fix}"]
    try:
        processor = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return [f"preprocessor_config.json: not valid JSON ({error}); {fix}"]
    problems = []
    size = processor_output_size(processor)
    if config is not None and size != (config.image_size, config.image_size):
        problems.append(
            f"preprocessor_config.json: outputs {size or 'a variable size'}, the model expects "
            f"{config.image_size}x{config.image_size} (image_size); {fix}"
        )
    for key, expected in (("image_mean", CLIP_MEAN), ("image_std", CLIP_STD)):
        value = processor.get(key)
        if (
            not isinstance(value, list)
            or len(value) != 3
            or any(abs(a - b) > 1e-6 for a, b in zip(value, expected, strict=True))
        ):
            problems.append(f"preprocessor_config.json: {key} must be the CLIP values {expected}; {fix}")
    return problems


def card_metadata(text: str) -> dict | None:
    """The YAML metadata block at the top of a model card, or None when there is none."""
    match = re.match(r"\A---\s*\n(.*?\n)---\s*(\n|\Z)", text, re.DOTALL)
    if match is None:
        return None
    data = yaml.safe_load(match[1])
    return data if isinstance(data, dict) else None


def card_problems(repo: Path) -> list[str]:
    path = repo / "README.md"
    if not path.is_file():
        return ["README.md: missing model card; `copier update` (or `copier copy`) the llava-vit template"]
    try:
        metadata = card_metadata(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        return [f"README.md: card metadata is not valid YAML ({str(error).splitlines()[0]}); fix the block"]
    if metadata is None:
        return ["README.md: no YAML metadata block (--- ... ---) at the top; add library_name, pipeline_tag, license"]
    problems = [
        f"README.md: metadata {key} must be {value!r}, got {metadata.get(key)!r}"
        for key, value in CARD_METADATA.items()
        if metadata.get(key) != value
    ]
    license_id = metadata.get("license")
    if not isinstance(license_id, str) or not _LICENSE_RE.match(license_id):
        problems.append(f"README.md: metadata license must be a Hub license id such as apache-2.0, got {license_id!r}")
    tags = metadata.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags)):
        problems.append("README.md: metadata tags must be a list of strings")
    return problems


def fast_problems(repo: Path) -> list[str]:
    """Everything the pre-commit check proves, one fix-it line per problem; reads no tensor data."""
    data = load_config_json(repo)
    probe = start_import_probe(repo)
    try:
        config, problems = config_problems(data)
        problems += code_problems(repo)
        problems += weight_problems(repo, data, config)
        problems += processor_problems(repo, config)
        problems += card_problems(repo)
    except BaseException:
        if probe is not None:
            probe.kill()
        raise
    return problems + import_problems(repo, probe)


def full_problems(repo: Path) -> list[str]:
    """The pre-push check: the fast check; in a git repo, every LFS file has its object and git-lfs's
    pre-push hook will upload them; then, when all that passed, `llava-vit verify` (a real load and
    forward in a fresh interpreter)."""
    problems = fast_problems(repo)
    lfs_problems = lfs_object_problems(repo) + lfs_push_hook_problems(repo) if (repo / ".git").exists() else []
    if problems or lfs_problems:
        return problems + lfs_problems
    report = verify(str(repo))
    if report.passed:
        return []
    hint = f"run `llava-vit verify {repo}` for the full report"
    failed = [check for check in report.checks if not check.passed]
    return [f"verify: {check.name}: {check.detail}; {hint}" for check in failed] or [f"verify: no checks ran; {hint}"]


def run(args: argparse.Namespace) -> int:
    repo = Path(args.repo)
    if not repo.is_dir():
        raise LlavaViTError(f"{repo} is not a folder; pass a model repo folder")
    problems = full_problems(repo) if args.full else fast_problems(repo)
    for problem in problems:
        print(f"llava-vit check: {problem}", file=sys.stderr)
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="prove fast (no tensor data read) that a model repo is consistent and loadable",
        description="Check config, weights headers, code provenance, processor, card metadata and code imports.",
    )
    parser.add_argument("repo", nargs="?", default=".", help="model repo folder (default: current folder)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also check that every git-lfs file has its object and run `llava-vit verify` (the pre-push hook)",
    )
    parser.set_defaults(handler=run)
