"""Run in a clean environment (torch + transformers, no llava_vit): load exported folders the way a user does
and report, as JSON, every fixture case's max error with eager and sdpa attention plus the processor's output.

usage: python clean_forward.py RESULT.json ARCH=FOLDER [ARCH=FOLDER ...]
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from reference import CASES, flatten_output, load_case, max_errors
from transformers import AutoImageProcessor, AutoModel, CLIPImageProcessor


def processor_report(folder: str) -> dict:
    """Output shapes of AutoImageProcessor and CLIPImageProcessor on non-square images."""
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((200, 300), (301, 97))]
    report = {}
    for loader in (AutoImageProcessor, CLIPImageProcessor):
        processor = loader.from_pretrained(folder)
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        report[loader.__name__] = {
            "shape": list(pixels.shape),
            "mean": list(processor.image_mean),
            "std": list(processor.image_std),
        }
    return report


def model_report(arch: str, folder: str) -> dict:
    """Loaded once per attention implementation: transformers 4.57 cannot switch it on a loaded remote-code model."""
    report: dict = {"errors": {}}
    for implementation in ("eager", "sdpa"):
        model, info = AutoModel.from_pretrained(
            folder, trust_remote_code=True, output_loading_info=True, attn_implementation=implementation
        )
        model.eval()
        report["module"] = type(model).__module__
        report[f"loading_info/{implementation}"] = {key: [str(item) for item in value] for key, value in info.items()}
        report[f"config/{implementation}"] = model.config._attn_implementation
        for case in CASES:
            inputs, expected = load_case(arch, case)
            with torch.no_grad():
                output = model(**inputs, output_hidden_states=True)
            report["errors"][f"{implementation}/{case}"] = max_errors(flatten_output(output), expected)
    return report


def main() -> None:
    result_path, *pairs = sys.argv[1:]
    results = {}
    for pair in pairs:
        arch, folder = pair.split("=", 1)
        try:
            results[folder] = {"model": model_report(arch, folder), "processor": processor_report(folder)}
        except Exception as error:  # reported per folder, so one bad export does not hide the others' results
            results[folder] = {"error": f"{type(error).__name__}: {error}"}
    results["llava_vit_importable"] = importlib.util.find_spec("llava_vit") is not None
    results["llava_vit_imported"] = "llava_vit" in sys.modules
    Path(result_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
