"""`llava-vit adopt SOURCE [OUT]`: an upstream OneVision-Encoder repo (a folder or a Hub repo id) becomes a llava-vit
model repo: config mapped field by field, weights loaded strictly in their own dtype, the image processing kept
byte for byte, the card's prose kept and its metadata completed, no upstream code. Before anything is written, the
source's own code and the new folder's code run in two offline processes on fixed inputs and must agree.

With `--create-pr`, SOURCE (a Hub repo id) gets one pull request that adds the new files and deletes the old code
files in the same commit, with the proof in its description.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .. import __version__
from ..cli import program_name
from ..errors import CheckFailed, LlavaViTError, UsageError, one_line
from ..repo_contract import (
    CARD_FILE,
    CONFIG_FILE,
    MAX_JSON_BYTES,
    MAX_PLAIN_BYTES,
    PROCESSOR_FILE,
    WEIGHTS_FILE,
    WEIGHTS_INDEX,
    image_processing_mode,
    is_license_id,
    is_repo_id,
    parse_json_bytes,
    processor_problems_of,
)
from ..trust.opener import UnsafeFile, read_regular
from .mapping import UPSTREAM_AUTO_MAP, UPSTREAM_CODE_FILES, declared_dtype, map_upstream_config

# What the new repo takes from the template as it is (no questions in them): LFS attributes, ignores, hooks.
TEMPLATE_FILES = (".gitattributes", ".gitignore", ".pre-commit-config.yaml")
# Files of the source repo that a pull request deletes: code that transformers could import (llava-vit's own
# code files are added in the same commit, so they stay).
OLD_CODE_PATTERNS = ["*.py"]


def _say(message: str) -> None:
    print(f"{program_name()} adopt: {message}", file=sys.stderr)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = parse_json_bytes(read_regular(path, MAX_JSON_BYTES))
    except FileNotFoundError:
        raise UsageError(
            f"{what} has no {path.name}; adopt takes a OneVision-Encoder repo folder or Hub repo id"
        ) from None
    except UnsafeFile as error:
        raise UsageError(f"{one_line(error)}; {path.name} must be a regular file") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"{one_line(path)}: not readable JSON ({one_line(error)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{one_line(path)}: must hold a JSON object")
    return data


def fetch_source(source: str, revision: str | None, scratch: Path) -> tuple[Path, str | None]:
    """(folder holding the source repo, its Hub repo id or None). A Hub repo is downloaded whole (HF_ENDPOINT)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if revision is not None:
            raise UsageError("--revision goes with a Hub repo id; SOURCE is a local folder")
        return path.resolve(), None
    if path.exists():
        raise UsageError(f"{one_line(source)} is not a folder; pass an upstream repo folder or ORG/NAME")
    if not is_repo_id(source):
        raise UsageError(f"{one_line(source)} is neither a folder nor a Hub repo id (ORG/NAME)")
    from huggingface_hub import snapshot_download

    from ..hub.access import hub_errors

    with hub_errors(source):
        folder = snapshot_download(source, revision=revision, local_dir=scratch / "source")
    return Path(folder), source


def _stored_dtype(folder: Path) -> str | None:
    from ..weights.safetensors_header import HeaderError, read_header

    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
    try:
        header = read_header(folder / WEIGHTS_FILE)
    except (HeaderError, OSError):
        return None
    found = {names.get(entry.dtype, entry.dtype) for entry in header.tensors.values()}
    return found.pop() if len(found) == 1 else None


def read_source(folder: Path, label: str) -> dict:
    """What adopt needs from the source, checked: mapped config fields, dtype, weights, processor bytes, card."""
    data = _read_json(folder / CONFIG_FILE, label)
    fields = map_upstream_config(data, f"{label}/{CONFIG_FILE}")
    auto_map = data.get("auto_map")
    code_there = all((folder / name).is_file() for name in UPSTREAM_CODE_FILES)
    if auto_map is None and not code_there:
        raise UsageError(
            f"{label} has neither an auto_map nor upstream's code files ({', '.join(UPSTREAM_CODE_FILES)}); the "
            "proof must run the source's own code"
        )
    if auto_map is not None and (
        not isinstance(auto_map, dict)
        or {key: auto_map.get(key) for key in UPSTREAM_AUTO_MAP} != UPSTREAM_AUTO_MAP
        or not set(auto_map) <= {*UPSTREAM_AUTO_MAP, "AutoImageProcessor", "AutoProcessor"}
    ):
        raise UsageError(
            f"{label}/{CONFIG_FILE}: auto_map is {auto_map!r}, not upstream's {UPSTREAM_AUTO_MAP}; the proof must run "
            "the source's own code"
        )
    weights = folder / WEIGHTS_INDEX if (folder / WEIGHTS_INDEX).is_file() else folder / WEIGHTS_FILE
    if not weights.is_file():
        raise UsageError(f"{label} has no {WEIGHTS_FILE} (or {WEIGHTS_INDEX}); adopt needs the safetensors weights")
    dtype = declared_dtype(data, f"{label}/{CONFIG_FILE}") or _stored_dtype(folder) or "float32"
    try:
        processor_bytes = read_regular(folder / PROCESSOR_FILE, MAX_JSON_BYTES)
        processor = parse_json_bytes(processor_bytes)
    except FileNotFoundError:
        raise UsageError(f"{label} has no {PROCESSOR_FILE}; its image processing cannot be kept") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"{label}/{PROCESSOR_FILE}: not readable JSON ({one_line(error)})") from None
    problems = processor_problems_of(processor, fields.get("image_size", 448))
    if problems:
        raise UsageError(f"{label}/{PROCESSOR_FILE}: {'; '.join(problems)}; llava-vit cannot keep this processing")
    try:
        card = read_regular(folder / CARD_FILE, MAX_PLAIN_BYTES).decode("utf-8")
    except FileNotFoundError:
        card = None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{label}/{CARD_FILE}: not a readable UTF-8 model card ({one_line(error)})") from None
    return {
        "fields": fields,
        "dtype": dtype,
        "weights": weights,
        "processor_bytes": processor_bytes,
        "mode": image_processing_mode(processor),
        "card": card,
        "needs_auto_map": auto_map is None,
    }


def proof_view(folder: Path, scratch: Path) -> Path:
    """The source as the proof loads it: a folder of links to its files whose config.json names upstream's code
    (a config saved without `register_for_auto_class` has no auto_map, though the code files are there)."""
    view = scratch / "source-view"
    view.mkdir()
    for path in folder.iterdir():
        if path.is_file() and path.name != CONFIG_FILE:
            (view / path.name).symlink_to(path.resolve())
    data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    (view / CONFIG_FILE).write_text(json.dumps({**data, "auto_map": UPSTREAM_AUTO_MAP}, indent=2), encoding="utf-8")
    return view


def build(
    folder: Path,
    source: dict,
    label: str,
    staging: Path,
    python: str,
    repo_id: str | None,
    license_id: str | None,
    scratch: Path,
):
    """Write the adopted repo into the empty folder `staging` and prove it; returns the Proof."""
    from ..export import export_model
    from ..model.configuration_llava_vit import LlavaViTConfig
    from ..scaffold.new import template_path
    from .card import merge_card
    from .proof import prove

    fields = {key: value for key, value in source["fields"].items() if key != "model_type"}
    try:
        config = LlavaViTConfig(**fields)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{label}/{CONFIG_FILE}: {one_line(error)}") from None
    exported = export_model(staging / ".adopt-export", config, source["weights"], source["dtype"], repo_id)
    for path in sorted(exported.iterdir()):
        os.replace(path, staging / path.name)
    exported.rmdir()
    (staging / PROCESSOR_FILE).write_bytes(source["processor_bytes"])  # the source's processing, byte for byte
    for name in TEMPLATE_FILES:
        shutil.copyfile(template_path() / "template" / name, staging / name)
    _say(f"proving: the source's own code ({python}) against the adopted folder's ({sys.executable})")
    proof = prove(proof_view(folder, scratch) if source["needs_auto_map"] else folder, staging, python, sys.executable)
    if not proof.passed:
        worst = max(proof.rows, key=lambda row: row.max_abs_diff)
        raise CheckFailed(
            f"the adopted model differs from the source by {worst.max_abs_diff:.3g} on {worst.case} "
            f"{worst.output} (more than 1e-4); nothing was written. Upstream's code is correct on transformers "
            "4.57 only: pass --python of a transformers 4.57 environment"
        )
    card = merge_card(source["card"], label, source["mode"], source["dtype"], proof.markdown(), __version__, license_id)
    (staging / CARD_FILE).write_text(card, encoding="utf-8")
    return proof


def adopt(args: argparse.Namespace) -> int:
    from ..export import _check_destination, recover_interrupted, staged_folder
    from ..hub.access import endpoint

    if args.out is None and not args.create_pr:
        raise UsageError("name OUT, the folder to create (or pass --create-pr with a Hub repo id)")
    if args.license is not None and not is_license_id(args.license):
        raise UsageError(f"--license {args.license!r} is not a Hub license id such as apache-2.0")
    if args.create_pr and not args.git:
        raise UsageError("--create-pr sends a committed repo (its hooks passed): leave out --no-git")
    if args.create_pr and Path(args.source).expanduser().exists():
        raise UsageError("--create-pr opens a pull request on a Hub repo: pass SOURCE as ORG/NAME")
    if args.create_pr:
        from ..hub.access import require_token

        require_token()  # before minutes of download and proof
    with tempfile.TemporaryDirectory(prefix="llava-vit-adopt-") as work:
        scratch = Path(work)
        out = Path(os.path.normpath(Path(args.out).absolute())) if args.out else scratch / "adopted"
        if out.parent.is_dir():
            recover_interrupted(out)
        _check_destination(out, force=False)
        if args.out is not None:
            from ..export import refuse_own_inputs

            refuse_own_inputs(out, [args.source] if Path(args.source).expanduser().exists() else [])
        folder, hub_id = fetch_source(args.source, args.revision, scratch)
        label = hub_id or one_line(args.source)
        source = read_source(folder, label)
        repo_id = args.repo_id or hub_id
        if repo_id is not None and not is_repo_id(repo_id):
            raise UsageError(f"invalid --repo-id {repo_id!r}; use ORG/NAME")
        try:
            with staged_folder(out, force=False) as staging:
                proof = build(folder, source, label, staging, args.python, repo_id, args.license, scratch)
                # A pull request's folder is a committed repo too: the hooks have passed on exactly what is sent.
                if args.git or args.create_pr:
                    from ..scaffold.init_repo import init_git

                    init_git(staging, repo_id, endpoint(), f"Adopted {label} with llava-vit {__version__}")
        except OSError as error:
            from ..errors import describe_os_error

            raise LlavaViTError(f"adopt to {out} failed, nothing was written: {describe_os_error(error)}") from None
        print(f"adopted {label} into {out}: the two agree within 1e-4 (largest difference {proof.worst:.3g})")
        if not args.create_pr:
            print(f"check it: llava-vit verify {out} && llava-vit audit {out}")
            return 0
        from ..hub.upload import upload_folder

        upload_folder(
            out,
            hub_id,
            create_pr=True,
            commit_message=f"Adopt by llava-vit {__version__}: generated code for transformers 4.57 and 5.x",
            commit_description=f"Converted with `llava-vit adopt {hub_id} --create-pr`.\n\n{proof.markdown()}",
            delete_patterns=OLD_CODE_PATTERNS,
        )
        print(f"judge it before merging: llava-vit audit {hub_id} --revision refs/pr/<number above>")
    return 0


def run(args: argparse.Namespace) -> int:
    return adopt(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adopt",
        help="turn a OneVision-Encoder repo (folder or Hub id) into a llava-vit repo, proven equal",
        description="Convert an upstream OneVision-Encoder repo into a llava-vit model repo and prove, by running the "
        "source's own code (as trust_remote_code would) and the new code in two offline processes, that both give "
        "the same outputs within 1e-4. Exit status: 0 done, 1 the proof or the Hub failed, 2 bad input.",
    )
    parser.add_argument("source", metavar="SOURCE", help="upstream repo: a local folder or a Hub repo id ORG/NAME")
    parser.add_argument("out", nargs="?", metavar="OUT", help="folder to create (a git repo, committed)")
    parser.add_argument("--revision", metavar="REV", help="with a Hub repo id: the branch, tag or commit to adopt")
    parser.add_argument(
        "--python",
        default=sys.executable,
        metavar="PY",
        help="interpreter that runs the source's own code (default: this one); upstream's code needs transformers 4.57",
    )
    parser.add_argument("--repo-id", metavar="ORG/NAME", help="Hub repo the new folder is for (default: SOURCE's id)")
    parser.add_argument("--license", metavar="ID", help="license when the source card names none (default: other)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request on SOURCE (a Hub repo id)")
    parser.add_argument("--no-git", dest="git", action="store_false", help="a plain folder: no git, LFS or hooks")
    parser.set_defaults(handler=run)
