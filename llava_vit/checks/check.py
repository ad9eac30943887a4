"""`llava-vit check`: prove fast, without loading tensors or importing torch, that a model repo will load.

The fast check reads only small files and safetensors headers, and judges the code files by their bytes
(they must be the installed release's, under an intact provenance header). What only the model code knows
(is config.json a valid config, which tensors and shapes it needs) comes from a probe: the installed
llava-vit's own model files, imported in an isolated interpreter (`python -I`) that reads config.json and
builds the model on the meta device. The repo's code is never run. The probe's answer is cached under
`.git/` by the model code, config.json and the torch/transformers versions, so the everyday commit never
pays for importing torch. `--full` adds the real load (`llava-vit verify`) and the git-lfs object check
that the pre-push hook runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import program_name
from ..errors import CheckFailed, LlavaViTError, UsageError
from ..repo_contract import (
    AUTO_MAP,
    CANONICAL_DIR,
    CARD_FILE,
    CARD_METADATA,
    CONFIG_FILE,
    MAX_JSON_BYTES,
    MAX_PLAIN_BYTES,
    MAX_SHARD_BYTES,
    MODEL_TYPE,
    PROCESSOR_AUTO_MAP,
    PROCESSOR_CONFIG_FILE,
    PROCESSOR_FILE,
    REPO_FILES,
    VIDEO_BUDGETS,
    WEIGHTS_FILE,
    WEIGHTS_INDEX,
    is_license_id,
    json_depth_ok,
    parse_index,
    parse_json_bytes,
    processor_problems_of,
    safe_yaml,
)
from ..repo_files import write_atomic
from ..trust.gitdb import find_git_dir
from ..trust.opener import UnsafeFile, read_regular
from ..trust.reader import FolderSource, repo_names
from ..trust.runnable import judge
from ..weights.safetensors_header import TORCH_DTYPE_NAMES, HeaderError, read_header
from .answers import template_source_problems
from .proof import Checks, cache_dir, environment_key, prove_commit, pushed_tip
from .sync import load_config_json

_MAX_LISTED = 5
_PROBE_VERSION = "2"

# Imports the model folder as a package named after nothing installed (so only its files are used), builds
# the config from the repo's config.json and the model on the meta device, and prints what they say as JSON.
_PROBE = """
import importlib, importlib.machinery, importlib.util, json, sys
code, repo, auto_map = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = importlib.machinery.ModuleSpec("llava_vit_model_code", None, is_package=True)
spec.submodule_search_locations = [code]
sys.modules[spec.name] = importlib.util.module_from_spec(spec)
classes = {}
for kind, target in auto_map.items():
    module, _, name = target.rpartition(".")
    classes[kind] = getattr(importlib.import_module(spec.name + "." + module), name)
import torch
with open(repo + "/config.json", encoding="utf-8") as handle:
    data = json.load(handle)
for key in ("attn_implementation", "_attn_implementation"):  # a Hub kernel repo here would download code
    data.pop(key, None)
try:
    config = classes["AutoConfig"].from_dict(data)
except (TypeError, ValueError) as error:
    print(json.dumps({"config_error": str(error)}))
    raise SystemExit(0)
with torch.device("meta"):
    model = classes["AutoModel"](config)
shapes = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
print(json.dumps({"config_error": None, "image_size": config.image_size, "patch_size": config.patch_size,
                  "shapes": shapes}))
"""


@dataclass
class ModelFacts:
    """What the repo's own code says about its config.json: an error, or the image size and tensor shapes."""

    config_error: str | None = None
    image_size: int | None = None
    patch_size: int | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    problem: str | None = None  # the probe itself failed (the code does not import)

    def __post_init__(self) -> None:
        self.shapes = {name: tuple(shape) for name, shape in self.shapes.items()}  # JSON gives lists


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _cache_dir(repo: Path) -> Path:
    """`.git/llava-vit/probe` of a git repo (never published, per clone; refused through a symlink); else the
    user's cache."""
    git_dir = find_git_dir(repo)
    if git_dir is not None:
        return cache_dir(git_dir, "probe")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llava-vit" / "probe"


def _probe_key(repo: Path) -> str:
    """config.json's bytes (read as every judge reads a repo file) and the code and versions that read them."""
    digest = hashlib.sha256(f"probe={_PROBE_VERSION}\0{environment_key()}\0".encode())
    digest.update(read_regular(repo / CONFIG_FILE, MAX_JSON_BYTES))
    return digest.hexdigest()


class ModelProbe:
    """What the installed model code says about one repo's config.json: answered from the cache, or from an
    isolated interpreter that runs while the rest is checked."""

    def __init__(self, repo: Path, cache: Path | None = None) -> None:
        self.repo = repo.resolve()
        self.cache = (cache or _cache_dir(repo)) / f"{_probe_key(repo)}.json"
        self.process: subprocess.Popen | None = None
        self.no_bytecode = ""
        self.cached: ModelFacts | None = None
        try:
            cached = ModelFacts(**json.loads(read_regular(self.cache, MAX_JSON_BYTES)))
            cached.shapes = {name: tuple(shape) for name, shape in cached.shapes.items()}
            self.cached = cached
        except (OSError, ValueError, TypeError, AttributeError):
            # Bytecode is never read from the repo: a planted __pycache__/*.pyc (an unchecked-hash one is loaded
            # without a look at its source) would run instead of the proven source. -X pycache_prefix points
            # Python at an empty folder of ours, -B keeps it empty.
            self.no_bytecode = tempfile.mkdtemp(prefix="llava-vit-probe-")
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-B",
                    "-X",
                    f"pycache_prefix={self.no_bytecode}",
                    "-c",
                    _PROBE,
                    str(CANONICAL_DIR),
                    str(self.repo),
                    json.dumps(AUTO_MAP),
                ],  # fmt: skip
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},  # the probe never downloads anything
            )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.communicate()
            shutil.rmtree(self.no_bytecode, ignore_errors=True)

    def facts(self) -> ModelFacts:
        if self.cached is not None:
            return self.cached
        assert self.process is not None
        stdout, stderr = self.process.communicate()
        shutil.rmtree(self.no_bytecode, ignore_errors=True)
        if self.process.returncode != 0:
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            return ModelFacts(problem=f"config.json: the model code could not read it ({last})")
        data = json.loads(stdout.strip().splitlines()[-1])
        facts = ModelFacts(
            config_error=data["config_error"],
            image_size=data.get("image_size"),
            patch_size=data.get("patch_size"),
            shapes=data.get("shapes", {}),
        )
        try:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            record = {**facts.__dict__, "shapes": {k: list(v) for k, v in facts.shapes.items()}}
            write_atomic(self.cache, json.dumps(record))
        except (OSError, LlavaViTError):
            pass  # a read-only clone still checks, only slower next time
        return facts


def config_problems(data: dict) -> list[str]:
    problems = []
    if data.get("model_type") != MODEL_TYPE:
        problems.append(
            f"config.json: model_type is {data.get('model_type')!r}, expected 'llava_vit'; "
            "re-create it with `llava-vit export`"
        )
    if data.get("auto_map") != AUTO_MAP:
        problems.append(f"config.json: auto_map must be exactly {json.dumps(AUTO_MAP)}; run `llava-vit sync`")
    return problems


def runnable_problems(repo: Path) -> list[str]:
    """The definition of what can run, on the files a commit of `repo` would hold: every code file must be this
    installed llava-vit's, nothing else may run."""
    with FolderSource(repo, repo_names(repo)) as source:
        return [str(problem) for problem in judge(source, installed_only=True).problems]


def _read_json(path: Path) -> object:
    try:
        return parse_json_bytes(read_regular(path, MAX_JSON_BYTES))
    except UnsafeFile as error:
        raise ValueError(str(error).replace(f"{path} ", "", 1)) from None


def _weight_files(repo: Path) -> tuple[dict[str, str] | None, list[str], list[str]]:
    """(weight_map from the index or None, shard names, problems)."""
    index_path = repo / WEIGHTS_INDEX
    if index_path.is_file():
        try:
            data = read_regular(index_path, MAX_JSON_BYTES).decode("utf-8")
            if not json_depth_ok(data):
                raise ValueError("nested too deep")
            weight_map = parse_index(data)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None, [], [f"{WEIGHTS_INDEX}: not a valid index (needs a weight_map); re-export the weights"]
        return weight_map, sorted(set(weight_map.values())), []
    if (repo / WEIGHTS_FILE).is_file():
        return None, [WEIGHTS_FILE], []
    return None, [], [f"{WEIGHTS_FILE}: missing; export weights with `llava-vit export`"]


def weight_problems(repo: Path, data: dict, expected: dict[str, tuple[int, ...]] | None) -> list[str]:
    """Names, shapes and dtypes of the safetensors files against the tensors the model needs (`expected`)."""
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
    if expected is None or not shards:
        return problems
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


def processor_problems(repo: Path, image_size: int | None) -> list[str]:
    path = repo / PROCESSOR_FILE
    fix = "re-create it with `llava-vit export`"
    if not path.is_file():
        return [f"preprocessor_config.json: missing; {fix}"]
    try:
        processor = _read_json(path)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return [f"preprocessor_config.json: not valid JSON ({error}); {fix}"]
    # Either mode (shortest edge + centre crop, or squash) passes: what matters is image_size x image_size, CLIP.
    return [f"preprocessor_config.json: {problem}; {fix}" for problem in processor_problems_of(processor, image_size)]


def processor_config_problems(repo: Path, patch_size: int | None) -> list[str]:
    """processor_config.json: LlavaViTProcessor's auto_map and video settings that fit the model."""
    path = repo / PROCESSOR_CONFIG_FILE
    if not path.is_file():
        return [f"{PROCESSOR_CONFIG_FILE}: missing (AutoProcessor and video need it); run `llava-vit sync`"]
    try:
        data = _read_json(path)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return [f"{PROCESSOR_CONFIG_FILE}: not valid JSON ({error}); delete it and run `llava-vit sync`"]
    if not isinstance(data, dict):
        return [f"{PROCESSOR_CONFIG_FILE}: must hold a JSON object; delete it and run `llava-vit sync`"]
    problems = []
    if data.get("auto_map") != PROCESSOR_AUTO_MAP:
        problems.append(
            f"{PROCESSOR_CONFIG_FILE}: auto_map must be exactly {json.dumps(PROCESSOR_AUTO_MAP)}; run `llava-vit sync`"
        )
    values = {key: data.get(key) for key in ("video_size", "num_frames", "target_frames", "patch_size")}
    bad = [key for key, value in values.items() if isinstance(value, bool) or not isinstance(value, int) or value <= 0]
    if bad:
        return [*problems, f"{PROCESSOR_CONFIG_FILE}: {', '.join(bad)} must be positive integers"]
    if patch_size is not None and values["patch_size"] != patch_size:
        problems.append(
            f"{PROCESSOR_CONFIG_FILE}: patch_size is {values['patch_size']}, the model's is {patch_size}; fix it"
        )
    for key, ceiling in VIDEO_BUDGETS.items():
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= ceiling):
            problems.append(
                f"{PROCESSOR_CONFIG_FILE}: {key} must be a positive integer of at most {ceiling} (the memory budget "
                "that refuses a hostile video before decoding); lower it or remove it"
            )
    if values["video_size"] % values["patch_size"]:
        problems.append(
            f"{PROCESSOR_CONFIG_FILE}: video_size {values['video_size']} is not a multiple of patch_size "
            f"{values['patch_size']}; fix it"
        )
    return problems


def card_metadata(text: str) -> dict | None:
    """The YAML metadata block at the top of a model card, or None when there is none."""
    match = re.match(r"\A---[ \t]*\n(.*?\n)---[ \t]*(\n|\Z)", text, re.DOTALL)
    if match is None:
        return None
    data = safe_yaml(match[1])
    return data if isinstance(data, dict) else None


def card_problems(repo: Path) -> list[str]:
    import yaml

    path = repo / CARD_FILE
    if not path.is_file():
        return ["README.md: missing model card; `copier update` (or `copier copy`) the llava-vit template"]
    try:
        metadata = card_metadata(read_regular(path, MAX_PLAIN_BYTES).decode("utf-8"))
    except UnsafeFile as error:
        return [f"README.md: {error}; the model card must be a regular file under 10 MB"]
    except UnicodeDecodeError:
        return ["README.md: not UTF-8 text; save the model card as UTF-8"]
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
    if not is_license_id(license_id):
        problems.append(f"README.md: metadata license must be a Hub license id such as apache-2.0, got {license_id!r}")
    tags = metadata.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags)):
        problems.append("README.md: metadata tags must be a list of strings")
    return problems


@dataclass
class Context:
    """What every file's check may read: the repo, its config.json and what the model code says about it."""

    repo: Path
    data: dict
    facts: ModelFacts


def _config_checks(context: Context) -> list[str]:
    problems = config_problems(context.data)
    if context.facts.problem:
        problems.append(context.facts.problem)
    if context.facts.config_error:
        problems.append(
            f"config.json: {context.facts.config_error}; fix the value or re-create it with `llava-vit export`"
        )
    return problems


# The check of each role of the table of repo files (repo_contract.REPO_FILES): a new row names a role here.
# Code and the example are judged by the definition of what can run (trust.runnable), run before these.
ROLE_CHECKS: dict[str, Callable[[Context], list[str]]] = {
    "config": _config_checks,
    "code": lambda context: [],
    "example": lambda context: [],
    "weights": lambda context: weight_problems(context.repo, context.data, context.facts.shapes or None),
    "weights-index": lambda context: [],  # read with the weights: the index names the shards
    "image-processor": lambda context: processor_problems(context.repo, context.facts.image_size),
    "processor": lambda context: processor_config_problems(context.repo, context.facts.patch_size),
    "card": lambda context: card_problems(context.repo),
    "answers": lambda context: template_source_problems(context.repo),
    "maintainer": lambda context: [],
}


def fast_problems(repo: Path, probe_cache: Path | None = None, judged: bool = False) -> list[str]:
    """Everything the pre-commit check proves, one fix-it line per problem; reads no tensor data and never
    runs the repo's code. `judged`: what can run was already judged (on the commit itself)."""
    data = load_config_json(repo)
    probe = ModelProbe(repo, probe_cache)
    try:
        problems = [] if judged else runnable_problems(repo)
        facts = probe.facts()
    except BaseException:
        probe.kill()
        raise
    context = Context(repo, data, facts)
    for role in dict.fromkeys(row.role for row in REPO_FILES):
        problems += ROLE_CHECKS[role](context)
    return problems


def _progress(line: str) -> None:
    print(f"{program_name()} check: {line}", file=sys.stderr, flush=True)


def full_problems(repo: Path, commit: str | None = None, use_cache: bool = True) -> list[str]:
    """The pre-push check. With `commit` (a git repo): the proof of that commit alone (`proof.prove_commit`).
    Else the working tree: the fast check; in a git repo, every LFS file has its object and git-lfs's pre-push
    hook will upload them; then, when all that passed, `llava-vit verify` (a real load and forward in a fresh
    interpreter)."""
    from ..git_lfs import GIT_LFS_MISSING, lfs_object_problems, lfs_push_hook_problems
    from .verify import verify

    git_repo = find_git_dir(repo) is not None
    if commit is not None:
        hook = lfs_push_hook_problems(repo) if shutil.which("git-lfs") else [GIT_LFS_MISSING]
        checks = Checks(
            fast=lambda folder, cache: fast_problems(folder, probe_cache=cache, judged=True),
            card=card_problems,
            progress=_progress,
        )
        return prove_commit(repo, commit, checks, use_cache=use_cache) + hook
    problems = fast_problems(repo)
    lfs_problems = lfs_object_problems(repo) + lfs_push_hook_problems(repo) if git_repo else []
    if problems or lfs_problems:
        return problems + lfs_problems
    _progress("verify: loading the repo in a fresh interpreter ...")
    report = verify(str(repo), on_check=lambda c: _progress(f"verify:{c.line()}"))
    if report.passed:
        return []
    hint = f"run `llava-vit verify {repo}` for the full report"
    failed = [check for check in report.checks if not check.passed]
    return [f"verify: {check.name}: {check.detail}; {hint}" for check in failed] or [f"verify: no checks ran; {hint}"]


def require_full_check(folder: Path, command: str, outcome: str, commit: str | None = None) -> None:
    """The full check before anything leaves the machine (of `commit` when given, else of the folder as it is):
    each problem printed as `<program> <command>: ...`, then CheckFailed saying what did not happen and what to do
    (`outcome`)."""
    problems = full_problems(folder, commit)
    for problem in problems:
        print(f"{program_name()} {command}: {problem}", file=sys.stderr)
    if problems:
        raise CheckFailed(f"the full check failed for {folder} ({len(problems)} problem(s), see above); {outcome}")


def run(args: argparse.Namespace) -> int:
    repo = Path(args.repo)
    if not repo.is_dir():
        raise LlavaViTError(f"{repo} is not a folder; pass a model repo folder")
    commit = None
    if args.commit or args.pushed or (args.full and os.environ.get("PRE_COMMIT_TO_REF")):
        if not args.full:
            raise UsageError("--commit and --pushed go with --full")
        commit = args.commit or pushed_tip(repo)
    problems = full_problems(repo, commit, use_cache=not args.no_cache) if args.full else fast_problems(repo)
    for problem in problems:
        print(f"{program_name()} check: {problem}", file=sys.stderr)
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
    parser.add_argument("--commit", metavar="REV", help="with --full: judge this commit, not the working tree")
    parser.add_argument(
        "--pushed",
        action="store_true",
        help="with --full: judge the commit being pushed (PRE_COMMIT_TO_REF, else HEAD); the pre-push hook's mode",
    )
    parser.add_argument("--no-cache", action="store_true", help="with --full: prove again even if this content passed")
    parser.set_defaults(handler=run)
