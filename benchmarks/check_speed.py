"""How fast `llava-vit check` is on a giant-preset repo, and proof that it reads no tensor data.

Builds a fake giant repo in a temp folder: real code files, config, processor config and card, and
safetensors shards whose headers are real (every name, shape and offset of the giant model) while
the data is a sparse hole made by seeking, so the repo costs no disk. Then times the check in this
process (import probe cold and warm) and as the CLI, and counts the bytes the weights check read.

    python benchmarks/check_speed.py [--shards 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from llava_vit import LlavaViTConfig
from llava_vit.checkpoint import expected_shapes
from llava_vit.export import config_json, preprocessor_config
from llava_vit.provenance import write_code_files
from llava_vit.repo_check import WEIGHTS_INDEX, fast_problems, weight_problems

CARD = """---
library_name: transformers
pipeline_tag: image-feature-extraction
license: apache-2.0
tags: [llava-vit]
---
# giant
"""


def write_sparse_shard(path: Path, tensors: dict[str, tuple[int, ...]]) -> int:
    """A safetensors file with a real header for float32 `tensors` and a hole where the data goes."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors.items():
        size = 4 * int(torch.Size(shape).numel())
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return offset


def build_giant_repo(repo: Path, shards: int) -> int:
    config = LlavaViTConfig.from_preset("giant")
    shapes = expected_shapes(config)
    names = list(shapes)
    weight_map, total = {}, 0
    for index in range(shards):
        shard = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = names[index * len(names) // shards : (index + 1) * len(names) // shards]
        total += write_sparse_shard(repo / shard, {name: shapes[name] for name in part})
        weight_map.update(dict.fromkeys(part, shard))
    (repo / WEIGHTS_INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    (repo / "config.json").write_text(config_json(config, "float32"))
    (repo / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(config.image_size)))
    (repo / "README.md").write_text(CARD)
    write_code_files(repo)
    return total


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no rchar")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo, cache = Path(tmp, "giant"), Path(tmp, "cache")
        repo.mkdir()
        os.environ["XDG_CACHE_HOME"] = str(cache)
        total = build_giant_repo(repo, args.shards)
        data = json.loads((repo / "config.json").read_text())
        config = LlavaViTConfig.from_dict(data)
        before = bytes_read()
        problems = weight_problems(repo, data, config)
        read = bytes_read() - before
        assert not problems, problems
        print(f"giant repo: {total / 1e9:.2f} GB of float32 weights in {args.shards} sparse shards")
        print(f"weights check read {read} bytes ({read / total:.2e} of the weights)")
        for label, warm in (("import probe runs (cold cache)", False), ("import probe cached (warm)", True)):
            times = []
            for _ in range(args.repeat):
                if not warm:
                    subprocess.run(["rm", "-rf", str(cache)], check=True)
                start = time.perf_counter()
                problems = fast_problems(repo)
                times.append(time.perf_counter() - start)
                assert not problems, problems
            print(f"fast_problems, {label}: best {min(times):.2f} s, worst {max(times):.2f} s")
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "llava_vit", "check", str(repo)], check=True)
            times.append(time.perf_counter() - start)
        print(f"`python -m llava_vit check` wall time, warm cache: best {min(times):.2f} s, worst {max(times):.2f} s")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import llava_vit"], check=True)
        print(f"for scale, `python -c 'import llava_vit'`: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
