"""Render the hook files from hooks/definitions.yaml (the one definition of llava-vit's hooks).

usage: python hooks/render.py          rewrite .pre-commit-hooks.yaml and template/.pre-commit-config.yaml
       python hooks/render.py --check  exit 1 when either differs from what the definitions render
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "hooks" / "definitions.yaml"
MINIMUM_PRE_COMMIT = "3.2.0"
MANIFEST_HEADER = """\
# Generated from hooks/definitions.yaml by `python hooks/render.py`: edit the definitions, not this file.
# Hooks for llava-vit model repos that prefer this project as a pinned `repo:` (pre-commit then builds
# its own environment with llava-vit, torch and transformers, once, online). The template's default
# is `repo: local` hooks calling the installed `llava-vit`: see docs/hooks.md.
"""
LOCAL_HEADER = """\
# Generated from llava-vit's hooks/definitions.yaml. The hooks run the installed llava-vit: the interpreter
# recorded by `git config llava-vit.python` (set when the repo was made), else `llava-vit` on PATH, else
# `hf llava-vit`. They work offline, need no hook environment, and sync the code from that installed
# llava_vit. llava-vit's docs/hooks.md describes the alternative (a pinned `repo:`).
"""


def definitions() -> list[dict]:
    return yaml.safe_load(DEFINITIONS.read_text(encoding="utf-8"))


# A model repo's hooks find llava-vit wherever it lives: the interpreter `init-repo` recorded in the clone's git
# config (`git config llava-vit.python`), else `llava-vit` on PATH, else the `hf llava-vit` CLI extension.
LAUNCHER = (
    'py=$(git config llava-vit.python); if [ -x "$py" ]; then exec "$py" -m llava_vit "$@"; fi; '
    'if command -v llava-vit >/dev/null 2>&1; then exec llava-vit "$@"; fi; '
    'if command -v hf >/dev/null 2>&1; then exec hf llava-vit "$@"; fi; '
    'echo "llava-vit not found: pip install llava-vit, or git config llava-vit.python PYTHON" >&2; exit 1'
)


def _hook(definition: dict, language: str) -> dict:
    hook = {key: value for key, value in definition.items() if key != "command"}
    if language == "system":
        hook["entry"] = " ".join(["sh", "-c", f"'{LAUNCHER}'", "llava-vit", *definition["command"]])
    else:  # pre-commit's own environment has llava-vit installed
        hook["entry"] = " ".join(["llava-vit", *definition["command"]])
    hook["language"] = language
    return hook


def manifest_text() -> str:
    hooks = [
        {**_hook(definition, "python"), "minimum_pre_commit_version": MINIMUM_PRE_COMMIT}
        for definition in definitions()
    ]
    return MANIFEST_HEADER + yaml.safe_dump(hooks, sort_keys=False, width=120)


def local_config_text() -> str:
    hooks = [
        {key: value for key, value in _hook(definition, "system").items() if key != "description"}
        for definition in definitions()
    ]
    config = {"default_install_hook_types": ["pre-commit", "pre-push"], "repos": [{"repo": "local", "hooks": hooks}]}
    return LOCAL_HEADER + yaml.safe_dump(config, sort_keys=False, width=120)


RENDERED = {
    ROOT / ".pre-commit-hooks.yaml": manifest_text,
    ROOT / "template" / ".pre-commit-config.yaml": local_config_text,
}


def main(argv: list[str]) -> int:
    stale = [path for path, render in RENDERED.items() if path.read_text(encoding="utf-8") != render()]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} differs from hooks/definitions.yaml: run `python hooks/render.py`")
        return 1 if stale else 0
    for path in stale:
        path.write_text(RENDERED[path](), encoding="utf-8")
        print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
