"""`llava-vit sync`: bring a model repo's generated parts back in line with the installed llava_vit.

The standalone code files and config.json's `auto_map` are derived, never hand-edited: sync rewrites
them from the installed package. As a pre-commit hook it fails when it changed something, like a
formatter, leaving the fixed files in place to review and stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from ..cli import program_name
from ..errors import LlavaViTError, UsageError
from ..repo_contract import (
    AUTO_MAP,
    CONFIG_FILE,
    MAX_JSON_BYTES,
    PROCESSOR_AUTO_MAP,
    PROCESSOR_CONFIG_FILE,
    generated_files,
    parse_json_bytes,
    processor_config,
)
from ..repo_files import config_json_text, remove_leftovers, with_auto_map, write_atomic, write_code_files
from ..trust.opener import UnsafeFile, read_regular


def load_config_json(repo: Path) -> dict:
    """config.json of a model repo as a dict, or an error that says what is wrong with it."""
    path = repo / CONFIG_FILE
    if not repo.is_dir():
        raise UsageError(f"{repo} is not a folder; pass a model repo folder (or run this inside one)")
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{repo} has no config.json; run this in a model repo or pass its path")
    return load_json_object(path)


def load_json_object(path: Path) -> dict:
    """A small JSON file holding an object, or an error that says what is wrong with it."""
    try:
        data = parse_json_bytes(read_regular(path, MAX_JSON_BYTES))
    except UnsafeFile as error:
        raise LlavaViTError(f"{error}; {path.name} must be a regular file, re-export it") from None
    except (ValueError, RecursionError) as error:
        raise LlavaViTError(f"{path}: not valid JSON ({error}); fix it or re-export with `llava-vit export`") from None
    if not isinstance(data, dict):
        raise LlavaViTError(f"{path}: must hold a JSON object; re-create it with `llava-vit export`")
    return data


def sync_auto_map(repo: Path) -> bool:
    """Set config.json's auto_map to exactly AUTO_MAP (atomic rewrite); True when it changed."""
    data = load_config_json(repo)
    if data.get("auto_map") == AUTO_MAP:
        return False
    write_atomic(repo / CONFIG_FILE, config_json_text(with_auto_map(data)))
    return True


def sync_processor_config(repo: Path, config: dict) -> bool:
    """Give processor_config.json exactly PROCESSOR_AUTO_MAP (creating the file with the default video settings
    and config.json's patch_size when it is missing, as in repos made before video); True when it changed."""
    path = repo / PROCESSOR_CONFIG_FILE
    if not path.is_file() or path.is_symlink():
        patch_size = config.get("patch_size")
        if isinstance(patch_size, bool) or not isinstance(patch_size, int):
            raise LlavaViTError(f"{repo / CONFIG_FILE}: no integer patch_size; re-create it with `llava-vit export`")
        data = processor_config(patch_size)
    else:
        data = load_json_object(path)
        if data.get("auto_map") == PROCESSOR_AUTO_MAP:
            return False
        data = {**data, "auto_map": dict(PROCESSOR_AUTO_MAP)}
    write_atomic(path, json.dumps(data, indent=2) + "\n")
    return True


def sync_repo(repo: Path) -> list[str]:
    """Regenerate the code files and auto_maps of the model repo at `repo`; return the files that changed.

    What a killed sync left (a temporary file beside each file it writes) is removed once the repo is known to be
    one, also beside files that need no rewrite."""
    config = load_config_json(repo)
    if config.get("model_type") == "onevision_encoder":  # upstream's repo: converting it is adopt's job, whole
        raise LlavaViTError(
            f"{repo} is a OneVision-Encoder repo (model_type onevision_encoder); sync changed nothing: convert it "
            f"with `llava-vit adopt {repo} NEW_FOLDER`"
        )
    remove_leftovers(repo, (CONFIG_FILE, *generated_files()))
    changed = write_code_files(repo)
    if sync_auto_map(repo):
        changed.append(CONFIG_FILE)
    if sync_processor_config(repo, config):
        changed.append(PROCESSOR_CONFIG_FILE)
    return changed


def run(args: argparse.Namespace) -> int:
    repo = Path(args.repo)
    changed = sync_repo(repo)
    for name in changed:
        what = "auto_map" if name in (CONFIG_FILE, PROCESSOR_CONFIG_FILE) else "generated code"
        print(
            f"{program_name()} sync: rewrote {name} ({what} must match llava-vit {__version__}, the installed "
            f"package); review it and `git add {name}`",
            file=sys.stderr,
        )
    return 1 if changed and args.fail_on_change else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="regenerate a model repo's code files and auto_map from the installed llava_vit",
        description="Rewrite the standalone code files and config.json's auto_map when they drifted.",
    )
    parser.add_argument("repo", nargs="?", default=".", help="model repo folder (default: current folder)")
    parser.add_argument(
        "--fail-on-change", action="store_true", help="exit 1 when a file was rewritten (the pre-commit hook uses it)"
    )
    parser.set_defaults(handler=run)
