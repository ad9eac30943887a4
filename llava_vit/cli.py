"""The `llava-vit` command line: each workflow module registers its own subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import (
    __version__,
    audit,
    demo,
    export,
    guard,
    local_hub,
    presets,
    publish,
    repo_check,
    scaffold,
    sync,
    upload,
    verify,
)
from .errors import LlavaViTError

COMMAND_MODULES = (
    presets,
    scaffold,
    export,
    sync,
    repo_check,
    guard,
    verify,
    audit,
    local_hub,
    publish,
    upload,
    demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llava-vit", description="Publish LlavaViT encoders as Hugging Face Hub models that load with AutoModel."
    )
    parser.add_argument("--version", action="version", version=f"llava-vit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except LlavaViTError as error:
        if args.debug:
            raise
        print(f"llava-vit {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"llava-vit {args.command}: interrupted", file=sys.stderr)
        return 130
