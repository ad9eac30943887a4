"""The package's shape: fast paths that never import torch or transformers, one definition of the hooks,
and `import llava_vit` that is lazy yet still registers the Auto classes on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llava_vit.cli import COMMANDS

PROJECT = Path(__file__).resolve().parents[1]

# Runs a command in-process, then reports which heavy modules it imported.
_PROBE = """
import json, sys
from llava_vit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(name for name in ("torch", "transformers", "huggingface_hub", "copier") if name in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _imports(argv: list[str], cwd: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["check", "--help"], ["export", "--help"], ["audit", "--help"], ["verify", "--help"]],
    ids=lambda argv: " ".join(argv),
)
def test_cli_parsing_imports_neither_torch_nor_transformers(argv, tmp_path):
    result = _imports(argv, tmp_path)
    assert result["heavy"] == [], result


def test_hooks_on_a_model_repo_import_neither_torch_nor_transformers(tiny_repo):
    """guard, sync and check on a committed repo whose probe answer is cached: the everyday commit."""
    subprocess.run([sys.executable, "-m", "llava_vit", "check"], cwd=tiny_repo, check=True, capture_output=True)
    for argv in (["guard", "README.md"], ["sync", "--fail-on-change"], ["check"], ["audit", "."]):
        result = _imports(argv, tiny_repo)
        assert result == {"code": 0, "heavy": []}, (argv, result)


def test_every_command_module_registers_its_name():
    import argparse
    import importlib

    for name, (module, _) in COMMANDS.items():
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(subparsers)
        assert name in subparsers.choices, f"{module} does not register {name!r}"


def test_import_llava_vit_is_lazy_and_model_names_register_auto_classes():
    script = (
        "import sys, llava_vit\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "from llava_vit import LlavaViTModel\n"
        "from transformers import AutoConfig, AutoModel\n"
        "config = AutoConfig.for_model('llava_vit', hidden_size=64, num_attention_heads=2, num_hidden_layers=1,"
        " intermediate_size=64, image_size=32, patch_size=16)\n"
        "assert type(AutoModel.from_config(config)) is LlavaViTModel\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


def test_hook_files_are_rendered_from_the_one_definition():
    done = subprocess.run([sys.executable, "hooks/render.py", "--check"], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
