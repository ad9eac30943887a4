"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`) on LlavaViT, as transformers tests a
vision encoder.

The tests come from the transformers release that is installed: its sdist carries tests/test_modeling_common.py and
tests/test_configuration_common.py, so CI stays at the standard of whichever 4.57 or 5.x it runs. They are fetched
once with pip (`pip download --no-binary :all: transformers==<installed>`) into a cache, `LLAVA_VIT_TRANSFORMERS_TESTS`
or ~/.cache/llava-vit/transformers-tests (put an extracted copy there to run offline), and imported as a package of
their own. The sdist does not carry three helper modules that those files import; they are written beside them as the
least that satisfies the import, and say so:

- generation/test_utils.py `GenerationTesterMixin`: read only in `issubclass` checks; LlavaViT does not generate.
- exporters/test_export.py `ExportTesterMixin` (5.x): the export tests live there, so they do not run here.
- utils/test_configuration_utils.py `config_common_kwargs`: read only by `check_config_arguments_init`, which is
  therefore left out of `test_config` (below).

Tests that need an accelerator (offload, model parallelism, flash attention) skip themselves on CPU by transformers'
own decorators; tests/test_offload.py covers offload on CPU.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path

import torch
import transformers

from llava_vit import LlavaViTConfig, LlavaViTModel

VERSION = transformers.__version__
COMMON_FILES = ("test_modeling_common.py", "test_configuration_common.py")
SHIMS = {
    "generation/test_utils.py": "class GenerationTesterMixin:  # not in the sdist; read only by issubclass checks\n"
    "    pass\n",
    "exporters/test_export.py": "class ExportTesterMixin:  # not in the sdist (5.x): its export tests do not run\n"
    "    pass\n",
    "utils/test_configuration_utils.py": "# not in the sdist: check_config_arguments_init, its reader, is not run\n"
    "config_common_kwargs = {}\n",
}


def _common_tests_package() -> str:
    """The name of an importable package holding the installed release's common test files (fetched once)."""
    root = Path(os.environ.get("LLAVA_VIT_TRANSFORMERS_TESTS", Path.home() / ".cache/llava-vit/transformers-tests"))
    package = "transformers_tests_" + re.sub(r"\W", "_", VERSION)
    folder = root / package
    if not all((folder / name).is_file() for name in COMMON_FILES):
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as work:
            staging = Path(work) / package
            for name, text in {"__init__.py": "", **SHIMS}.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).with_name("__init__.py").touch()
                (staging / name).write_text(text)
            with tarfile.open(_download_sdist(Path(work))) as archive:
                for name in COMMON_FILES:
                    member = archive.extractfile(f"transformers-{VERSION}/tests/{name}")
                    (staging / name).write_bytes(member.read())
            if not folder.exists():  # another run may have finished first: its copy is the same
                staging.rename(folder)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return package


def _download_sdist(folder: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", str(folder)]
    done = subprocess.run([*command, f"transformers=={VERSION}"], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(
            f"could not fetch the transformers {VERSION} sdist for its common tests (to run offline, put its "
            f"tests/ files in a folder named as below, under $LLAVA_VIT_TRANSFORMERS_TESTS):\n{done.stderr[-2000:]}"
        )
    (sdist,) = folder.glob("transformers-*.tar.gz")
    return sdist


PACKAGE = _common_tests_package()
common = importlib.import_module(f"{PACKAGE}.test_modeling_common")
ConfigTester = importlib.import_module(f"{PACKAGE}.test_configuration_common").ConfigTester
IS_TF4 = int(VERSION.split(".")[0]) < 5


class LlavaViTModelTester:
    """Small configs and inputs, the way transformers' vision model tests build them."""

    def __init__(self, parent, batch_size=2, image_size=32, patch_size=8, num_channels=3, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.is_training = is_training
        self.hidden_size = 64
        self.num_hidden_layers = 2
        self.num_attention_heads = 2
        self.intermediate_size = 128
        self.seq_length = (image_size // patch_size) ** 2  # tokens: no class token

    def get_config(self) -> LlavaViTConfig:
        return LlavaViTConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
        )

    def prepare_config_and_inputs(self):
        shape = [self.batch_size, self.num_channels, self.image_size, self.image_size]
        return self.get_config(), common.floats_tensor(shape)

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}

    def create_and_check_model(self, config, pixel_values):
        model = LlavaViTModel(config).eval()
        with torch.no_grad():
            output = model(pixel_values)
        self.parent.assertEqual(output.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))
        self.parent.assertEqual(output.pooler_output.shape, (self.batch_size, self.hidden_size))


class LlavaViTModelTest(common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (LlavaViTModel,)
    # An encoder: no token embeddings to resize, no heads to prune or mask (switches read by 4.57).
    test_resize_embeddings = False
    test_pruning = False
    test_head_masking = False
    fx_compatible = False  # 4.57's torch.fx tracing test: not a goal for remote code
    has_attentions = True

    def setUp(self):
        self.model_tester = LlavaViTModelTester(self)
        common_properties = ["hidden_size", "num_attention_heads", "num_hidden_layers"]
        self.config_tester = ConfigTester(
            self, config_class=LlavaViTConfig, has_text_modality=False, common_properties=common_properties
        )

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    def test_model_get_set_embeddings(self):
        """As transformers' vision encoders test it: the input embedding is the patch convolution, not a token table."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = LlavaViTModel(config)
        self.assertIsInstance(model.get_input_embeddings(), torch.nn.Conv2d)
        self.assertIsNone(model.get_output_embeddings())

    def test_config(self):
        """ConfigTester's common tests, but for two (see the tests below)."""
        tester = self.config_tester
        tester.create_and_test_config_to_json_string()
        tester.create_and_test_config_to_json_file()
        tester.create_and_test_config_from_and_save_pretrained()
        tester.create_and_test_config_from_and_save_pretrained_subfolder()
        tester.create_and_test_config_with_num_labels()
        tester.create_and_test_config_from_pretrained_custom_kwargs()
        tester.check_config_can_be_init_without_params()

    @unittest.skipIf(
        IS_TF4,
        "4.57's version builds LlavaViTConfig(hidden_size=0), which the config refuses by design (geometry is "
        "checked when the config is made; tests/test_model.py checks the message)",
    )
    def test_config_common_properties(self):
        self.config_tester.create_and_test_config_common_properties()

    @unittest.skip("check_config_arguments_init reads config_common_kwargs from tests/utils, which the sdist lacks")
    def test_config_arguments_init(self):
        self.config_tester.check_config_arguments_init()


# transformers' training tests (test_training, test_training_gradient_checkpointing*, named differently on 4.57 and 5.x)
# need a loss and skip the base models of transformers' own MODEL_MAPPING by name; LlavaViT is such a base model (an
# encoder without a loss) that the mapping cannot name. tests/test_model.py checks training gradients with and without
# checkpointing (every_n_layers included) against each other.
for _name in [name for name in dir(common.ModelTesterMixin) if name.startswith("test_training")]:
    setattr(
        LlavaViTModelTest,
        _name,
        unittest.skip("a base model without a loss: transformers skips its training tests for base models")(
            lambda self: None
        ),
    )
