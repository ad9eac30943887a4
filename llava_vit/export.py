"""`llava-vit export`: write a folder that `AutoModel.from_pretrained(folder, trust_remote_code=True)` loads
with only torch and transformers installed: code files, config.json with auto_map, processor config and
safetensors weights.

The folder is built next to its destination under a temporary name and renamed into place at the end,
so an error or Ctrl-C never leaves a half-written model behind, and `--force` replaces an old export
only once the new one is complete.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import glob
import inspect
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .cli import program_name
from .errors import LlavaViTError, UsageError, describe_os_error, one_line
from .model.presets import PRESETS, resolve_preset
from .repo_contract import (
    ARCHITECTURES,
    AUTO_MAP,
    CONFIG_FILE,
    DEFAULT_IMAGE_PROCESSING,
    IMAGE_PROCESSING_MODES,
    MAX_JSON_BYTES,
    MODEL_TYPE,
    PROCESSOR_CONFIG_FILE,
    PROCESSOR_FILE,
    REPO_ID_RULE,
    WEIGHTS_INDEX,
    is_repo_id,
    parse_json_bytes,
    preprocessor_config,
    processor_config,
    processor_problems_of,
)
from .repo_files import config_json_text, write_code_files, writer_gone
from .trust.opener import UnsafeFile, read_regular
from .weights.sizes import DEFAULT_MAX_SHARD_SIZE, available_memory, parse_size

if TYPE_CHECKING:
    import torch

    from .model.configuration_llava_vit import LlavaViTConfig

DTYPE_NAMES = ("float32", "bfloat16", "float16")
RANDOM_SEED = 0
# Keys a config.json may carry that are transformers' bookkeeping, not architecture: ignored by --config.
_BOOKKEEPING_KEYS = {
    "auto_map",
    "architectures",
    "transformers_version",
    "model_type",
    "dtype",
    "torch_dtype",
    "_name_or_path",
    "_attn_implementation_autoset",
    "attn_implementation",
}


def _warn(message: str) -> None:
    print(f"{program_name()} export: {message}", file=sys.stderr)


def _architecture_fields() -> list[str]:
    from .model.configuration_llava_vit import LlavaViTConfig

    parameters = inspect.signature(LlavaViTConfig.__init__).parameters.values()
    return [p.name for p in parameters if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


def config_from_file(path: Path) -> dict:
    """Architecture fields from a JSON file (a config.json works: transformers' own keys are ignored)."""
    shown = one_line(path)  # a file name with a newline must not break the one-line error
    try:
        data = parse_json_bytes(read_regular(Path(path), MAX_JSON_BYTES, follow=True))
    except UnsafeFile as error:
        raise UsageError(f"config {one_line(error)}; pass a JSON file") from None
    except OSError as error:
        raise UsageError(f"cannot read config {shown}: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(f"config {shown} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path} must hold a JSON object of config fields, found {type(data).__name__}")
    from .adopt.mapping import UPSTREAM_MODEL_TYPE, map_upstream_config

    if data.get("model_type") == UPSTREAM_MODEL_TYPE:  # a OneVision-Encoder config.json: the same architecture
        data = map_upstream_config(data, f"config {shown}")
    if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise UsageError(f"config {path} is for model_type {data['model_type']!r}, not {MODEL_TYPE!r}")
    from transformers import PretrainedConfig

    fields = _architecture_fields()
    ignored = _BOOKKEEPING_KEYS | set(PretrainedConfig().to_dict())
    unknown = [key for key in data if key not in fields and key not in ignored]
    if unknown:
        hints = [
            f"{key} (did you mean {match[0]}?)" if (match := difflib.get_close_matches(key, fields, n=1)) else key
            for key in unknown
        ]
        raise UsageError(
            f"config {path} has fields LlavaViT does not know: {', '.join(hints)}; known fields: {', '.join(fields)}"
        )
    return {key: value for key, value in data.items() if key in fields}


def config_dtype(path: Path | None) -> str | None:
    """The dtype a config file declares (`dtype`, else transformers 4's `torch_dtype`), if it is one export writes."""
    if path is None:
        return None
    try:
        data = parse_json_bytes(read_regular(Path(path), MAX_JSON_BYTES, follow=True))
    except (OSError, ValueError):
        return None  # config_from_file has said what is wrong with the file
    if not isinstance(data, dict):
        return None
    declared = data.get("dtype") or data.get("torch_dtype")
    if declared is None:
        return None
    if declared not in DTYPE_NAMES:
        raise UsageError(
            f"config {one_line(path)} declares dtype {declared!r}; pass --dtype {' or '.join(DTYPE_NAMES)}"
        )
    return declared


def build_config(
    preset: str | None = None, config_path: Path | None = None, image_size: int | None = None
) -> LlavaViTConfig:
    """The config from a preset name or a JSON file, with `image_size` overriding; bad geometry is a usage error."""
    from .model.configuration_llava_vit import LlavaViTConfig

    if (preset is None) == (config_path is None):
        raise UsageError("give exactly one of --preset NAME or --config PATH")
    try:
        fields = dict(PRESETS[resolve_preset(preset)]) if preset is not None else config_from_file(config_path)
        if image_size is not None:
            fields["image_size"] = image_size
        return LlavaViTConfig(**fields)
    except ValueError as error:
        raise UsageError(str(error)) from None


def config_json(config: LlavaViTConfig, dtype: str) -> str:
    """config.json text: architectures, auto_map, and the dtype under both names (4.5x reads torch_dtype)."""
    config = copy.deepcopy(config)
    config.architectures = list(ARCHITECTURES)
    config.auto_map = dict(AUTO_MAP)
    data = json.loads(config.to_json_string(use_diff=True))
    data.update(architectures=list(ARCHITECTURES), auto_map=dict(AUTO_MAP), dtype=dtype, torch_dtype=dtype)
    return config_json_text(data)


def processor_text(out: Path, image_size: int, mode: str | None) -> str:
    """preprocessor_config.json for an export to `out`: the `mode` asked for; without one, the valid CLIP image
    processor config OUT already holds (a re-export keeps the repo's processing), else the default mode."""
    if mode is None:
        try:
            kept = read_regular(out / PROCESSOR_FILE, MAX_JSON_BYTES)
            if not processor_problems_of(parse_json_bytes(kept), image_size):
                return kept.decode("utf-8")
        except (OSError, ValueError):
            pass  # none there, or not one a llava-vit repo may hold: write the default
        mode = DEFAULT_IMAGE_PROCESSING
    if mode not in IMAGE_PROCESSING_MODES:
        raise UsageError(f"invalid image processing {mode!r}; choose one of {', '.join(IMAGE_PROCESSING_MODES)}")
    return json.dumps(preprocessor_config(image_size, mode), indent=2) + "\n"


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _check_destination(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder; choose another output folder")
    blocking = next((parent for parent in out.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"{blocking} is a file, so {out} cannot be created under it; choose another output folder")
    if out.is_dir() and not force and not _is_empty_dir(out):
        raise UsageError(
            f"{out} already exists and is not empty; pass --force to replace it (its content is removed only "
            "once the new export is complete) or choose another output folder"
        )


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (so that a failed export can remove them again)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return missing


def _place(staging: Path, out: Path, force: bool) -> None:
    """Rename the finished staging folder to `out`; an old `out` is moved aside first and deleted last."""
    _check_destination(out, force)
    if not out.exists() or _is_empty_dir(out):
        os.replace(staging, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover_interrupted(out: Path) -> None:
    """Undo what an export killed outright (SIGKILL, power loss) left next to `out`, once its process is gone:
    a half-built `.OUT.tmp-PID-XXXX` is deleted; a `.OUT.old-PID-XXXX` (the previous OUT, moved aside by --force
    just before the new one took its place) is put back when OUT is missing, else deleted. Folders of a running
    export (or of a recycled PID) are left alone."""
    for kind in ("tmp", "old"):
        for path in sorted(out.parent.glob(f".{glob.escape(out.name)}.{kind}-*")):
            pid = path.name.rsplit(f".{kind}-", 1)[1].split("-", 1)[0]
            if not writer_gone(pid) or not path.is_dir():
                continue
            if kind == "old" and not out.exists():
                os.rename(path, out)
            else:
                shutil.rmtree(path, ignore_errors=True)


@contextmanager
def staged_folder(out: Path, force: bool) -> Iterator[Path]:
    """A temporary sibling `.OUT.tmp-PID-XXXX` to build in; renamed to `out` on success, deleted on any error."""
    created = _make_parents(out.parent)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        staging.mkdir()
        yield staging
        _place(staging, out, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:
            if _is_empty_dir(folder):
                folder.rmdir()
        raise


def _random_state(config: LlavaViTConfig) -> dict[str, torch.Tensor]:
    import torch

    from .model.modeling_llava_vit import LlavaViTModel
    from .model.presets import parameter_count

    needed, available = 4 * parameter_count(config), available_memory()
    if available is not None and needed > available:
        raise UsageError(
            f"random weights for this geometry need {needed / 1e9:.1f} GB of memory, {available / 1e9:.1f} GB is "
            "free: pass --weights with a trained checkpoint (it is converted tensor by tensor) or a smaller geometry"
        )

    _warn(
        "WARNING: no --weights given: the exported model has RANDOM weights (initialised with seed "
        f"{RANDOM_SEED}). It loads and runs, but its outputs mean nothing; export a trained checkpoint "
        "with --weights PATH before publishing."
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return LlavaViTModel(config).state_dict()


def _check_repo_id(repo_id: str) -> None:
    if not is_repo_id(repo_id):
        raise UsageError(f"invalid --repo-id {repo_id!r}; use {REPO_ID_RULE}")


def refuse_own_inputs(out: Path, inputs: Sequence[str | os.PathLike | None]) -> None:
    """Refuse an OUT that holds, or lies inside, one of its own inputs (the checkpoint, the config): replacing
    OUT (--force) would delete it. Both sides are resolved, so symlinks and `..` cannot hide the overlap."""
    target = Path(out).resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if source == target or target in source.parents or source in target.parents:
            relation = "is" if source == target else "is inside" if source in target.parents else "holds"
            raise UsageError(
                f"{out} {relation} the input {given}: replacing it could delete that input; choose an output folder "
                "apart from --weights and --config"
            )


def export_model(
    out: str | os.PathLike,
    config: LlavaViTConfig,
    weights: str | os.PathLike | None = None,
    dtype: str = "float32",
    repo_id: str | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    force: bool = False,
    inputs: Sequence[str | os.PathLike | None] = (),
    image_processing: str | None = None,
) -> Path:
    """Export `config` with `weights` (or random weights) to the folder `out`; returns its absolute path.
    `inputs` are other files OUT must not touch (the --config file). `image_processing` is one of
    IMAGE_PROCESSING_MODES; None keeps the processing an existing OUT holds, else takes the default (crop).

    Raises UsageError for bad arguments and LlavaViTError for a checkpoint that does not fit the config.
    """
    out = Path(os.path.normpath(Path(out).absolute()))
    if not out.name:
        raise UsageError(f"cannot export to {out}; name a folder")
    refuse_own_inputs(out, [weights, *inputs])
    if dtype not in DTYPE_NAMES:
        raise UsageError(f"invalid dtype {dtype!r}; choose one of {', '.join(DTYPE_NAMES)}")
    if image_processing is not None and image_processing not in IMAGE_PROCESSING_MODES:
        raise UsageError(
            f"invalid image processing {image_processing!r}; choose one of {', '.join(IMAGE_PROCESSING_MODES)}"
        )
    max_bytes = parse_size(max_shard_size)
    if repo_id is not None:
        _check_repo_id(repo_id)
    import torch

    from .weights.checkpoint import expected_shapes, open_checkpoint, validate
    from .weights.shards import write_weights

    if out.parent.is_dir():
        recover_interrupted(out)
    _check_destination(out, force)
    shapes = expected_shapes(config)
    processor = processor_text(out, config.image_size, image_processing)
    checkpoint = open_checkpoint(Path(weights)) if weights is not None else None
    try:
        if checkpoint is not None:
            validate(checkpoint, shapes, config)
            fetch: Callable[[str], torch.Tensor] = checkpoint.load
        else:
            fetch = _random_state(config).__getitem__
        with staged_folder(out, force) as staging:
            write_code_files(staging)
            (staging / CONFIG_FILE).write_text(config_json(config, dtype), encoding="utf-8")
            (staging / PROCESSOR_FILE).write_text(processor, encoding="utf-8")
            video = json.dumps(processor_config(config.patch_size), indent=2) + "\n"
            (staging / PROCESSOR_CONFIG_FILE).write_text(video, encoding="utf-8")
            written = write_weights(staging, shapes, getattr(torch, dtype), fetch, max_bytes)
    except OSError as error:
        raise LlavaViTError(f"export to {out} failed, nothing was written: {describe_os_error(error)}") from None
    finally:
        if checkpoint is not None:
            checkpoint.close()
    if written.non_finite:
        _warn(
            f"warning: {len(written.non_finite)} tensors hold NaN or Inf values after conversion to {dtype}: "
            f"{', '.join(written.non_finite[:20])}{' ...' if len(written.non_finite) > 20 else ''}. The folder "
            "was written; check the checkpoint (float16 overflows above 65504: try --dtype bfloat16)."
        )
    return out


def summary(out: Path, repo_id: str | None = None) -> str:
    """What an export folder holds and what to do next, for the command line."""
    weights = sorted(out.glob("*.safetensors"))
    size = sum(path.stat().st_size for path in weights) / 1e6
    files = weights[0].name if len(weights) == 1 else f"{len(weights)} shards + {WEIGHTS_INDEX}"
    dtype = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))["dtype"]
    lines = [
        f"exported {out}: {dtype} weights in {files} ({size:.1f} MB), code of llava-vit {__version__}",
        f"check it: llava-vit verify {out}",
    ]
    if repo_id is not None:
        lines.append(f"once pushed to {repo_id}: AutoModel.from_pretrained({repo_id!r}, trust_remote_code=True)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    refuse_own_inputs(Path(args.out), [args.weights, args.config])
    config = build_config(args.preset, args.config, args.image_size)
    # The dtype the source config declares (a bf16 upstream config stays bf16), unless --dtype says otherwise.
    dtype = args.dtype or config_dtype(args.config) or "float32"
    out = export_model(
        args.out,
        config,
        args.weights,
        dtype,
        args.repo_id,
        args.max_shard_size,
        args.force,
        [args.config],
        args.image_processing,
    )
    print(summary(out, args.repo_id))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a Hub-ready model folder (code, config, processor, safetensors weights)",
        description="Write a folder that AutoModel.from_pretrained(OUT, trust_remote_code=True) loads with only "
        "torch and transformers installed. Exit status: 0 done, 1 the checkpoint does not fit, 2 bad arguments.",
    )
    parser.add_argument("out", metavar="OUT", help="folder to create (refused if it exists and is not empty)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", metavar="NAME", help=f"architecture preset: {', '.join(PRESETS)} (or a seed alias)")
    source.add_argument("--config", type=Path, metavar="PATH", help="JSON file of config fields (a config.json works)")
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="PATH",
        help=".safetensors (file or sharded folder) or .pth/.pt/.bin state dict; without it weights are random",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        help="dtype of the written weights (default: the dtype --config declares, else float32)",
    )
    parser.add_argument(
        "--image-processing",
        choices=IMAGE_PROCESSING_MODES,
        help="crop: shortest edge to image_size, then a centre crop (the default, the OneVision-Encoder recipe); "
        "squash: resize to image_size x image_size without a crop. Default: keep what OUT holds, else crop",
    )
    parser.add_argument("--image-size", type=int, metavar="N", help="override the config's image_size")
    parser.add_argument("--repo-id", metavar="ORG/NAME", help="Hub repo the folder is meant for")
    parser.add_argument(
        "--max-shard-size",
        default=DEFAULT_MAX_SHARD_SIZE,
        metavar="SIZE",
        help="split weights into shards above this size (e.g. 5GB, 500MB, or bytes; default 5GB)",
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT, once the new one is complete")
    parser.set_defaults(handler=run)
