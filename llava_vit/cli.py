"""The `llava-vit` command line: a lazy command table, as huggingface_hub's `hf` keeps one.

The top-level parser knows every command's name and one-line help from `COMMANDS`; only the module of the
command being run is imported (and registers its own arguments). `llava-vit --help` and the hooks therefore
start without importing torch or transformers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import LlavaViTError, describe_hostile_input, describe_os_error, one_line

# command -> (module that registers and runs it, one-line help), in the order `--help` lists them:
# model -> export -> template -> hooks -> publish -> verify/audit.
COMMANDS: dict[str, tuple[str, str]] = {
    "presets": ("llava_vit.model.presets", "list the presets with their geometry and parameter counts"),
    "export": ("llava_vit.export", "write a Hub-ready model folder (code, config, processor, safetensors weights)"),
    "new": (
        "llava_vit.scaffold.new",
        "create a model repo from the llava-vit copier template (export + card + hooks + first commit)",
    ),
    "init-repo": ("llava_vit.scaffold.init_repo", "the copier template's post-copy steps (run by `copier copy`)"),
    "guard": ("llava_vit.checks.guard", "block big/binary files outside git-lfs, pickles and Hugging Face tokens"),
    "sync": ("llava_vit.checks.sync", "regenerate a model repo's code files and auto_map from the installed llava_vit"),
    "check": (
        "llava_vit.checks.check",
        "prove fast (no tensor data read) that a model repo is consistent and loadable",
    ),
    "adopt": (
        "llava_vit.adopt.command",
        "turn a OneVision-Encoder repo (folder or Hub id) into a llava-vit repo, proven equal",
    ),
    "publish": ("llava_vit.hub.publish", "push a model repo to the Hub with git + git-lfs after the full check"),
    "upload": ("llava_vit.hub.upload", "upload an export or model repo folder after the full check (no git)"),
    "local-hub": ("llava_vit.hub.local_hub", "a local Hub (olah on 127.0.0.1) for rehearsals and tests"),
    "verify": (
        "llava_vit.checks.verify",
        "prove that a model folder or Hub repo loads with AutoModel, in a fresh process",
    ),
    "audit": ("llava_vit.checks.audit", "judge a model repo's code without running it (before trust_remote_code=True)"),
    "demo": ("llava_vit.demo", "the whole loop in a temp folder: scaffold, commit, local Hub, push, verify"),
}


HF_PROGRAM = "hf llava-vit"


def program_name() -> str:
    """What the user typed: `hf llava-vit` under the Hugging Face CLI, else `llava-vit`."""
    return os.environ.get("LLAVA_VIT_PROG", "llava-vit")


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not one of the global options."""
    for arg in argv:
        if arg in ("--debug",):
            continue
        return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported, to register its arguments."""
    prog = program_name()
    parser = argparse.ArgumentParser(
        prog=prog, description="Publish LlavaViT encoders as Hugging Face Hub models that load with AutoModel."
    )
    parser.add_argument("--version", action="version", version=f"llava-vit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _escape_arguments(message: str, argv: list[str]) -> str:
    """`message` with every argument that holds a newline or another control character (a hostile file name)
    escaped, so that the error stays one line."""
    for arg in sorted((arg for arg in argv if not arg.isprintable()), key=len, reverse=True):
        message = message.replace(arg, one_line(arg))
    return message


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    where = f"{program_name()} {args.command}"
    try:
        return int(args.handler(args) or 0)
    except LlavaViTError as error:
        if args.debug:
            raise
        print(f"{where}: error: {_escape_arguments(str(error), argv)}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        if args.debug:
            raise
        print(f"{where}: error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except (RecursionError, MemoryError, UnicodeError) as error:  # last resort: hostile input nothing else caught
        if args.debug:
            raise
        print(f"{where}: error: {describe_hostile_input(error)}", file=sys.stderr)
        return 1


def hf_main() -> int:
    """The `hf-llava-vit` console script, which `hf llava-vit ...` runs once installed as an hf CLI extension
    (`hf extensions install`). Messages name `hf llava-vit`, here and in the processes it starts (hooks, copier)."""
    os.environ["LLAVA_VIT_PROG"] = HF_PROGRAM
    return main()
