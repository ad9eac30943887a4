"""The everyday loop, timed against `hf --help` in the same run (the machines are shared: ratios, not seconds).

Measures, each as the median of --repeats runs:
- `hf --help` (the reference: a CLI that imports its commands lazily),
- `llava-vit --help` and the startup of `guard`, `sync --fail-on-change`, `check` on a model repo,
- a commit with the hooks installed, code unchanged (a one-line card edit), on a `small` repo and on a
  `giant` repo whose 4.6 GB weights file is sparse (the fast check reads only its header),
- the first `check` after a code change (the clean-interpreter probe runs once, then is cached under .git/),
- a card-only `git push` of the `small` repo after a passing one (the pre-push proof is keyed by the blob ids of
  everything but the card: it is not run again), and the proof alone (`check --full --pushed`) on a cache hit.

usage: python benchmarks/loop.py [--repeats 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else shutil.which(name) or name


def timed(command: list[str], cwd: Path, env: dict[str, str], repeats: int, before=None) -> float:
    """Median wall time of `command` (each run preceded by `before()`, untimed)."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return statistics.median(times)


def make_repo(dest: Path, env: dict[str, str]) -> Path:
    subprocess.run(
        [tool("llava-vit"), "new", str(dest), "--repo-id", "bench/loop-vit", "--preset", "small"],
        env=env,
        check=True,
        capture_output=True,
    )
    return dest


def make_giant(small: Path, dest: Path, env: dict[str, str]) -> Path:
    """The small repo turned into a `giant` one: giant config.json, and a sparse weights file with the giant
    header (never added to git: hashing 4.6 GB into git-lfs is not what this measures)."""
    from llava_vit.export import config_json
    from llava_vit.model.presets import preset_config
    from llava_vit.weights.checkpoint import expected_shapes

    shutil.copytree(small, dest, symlinks=True)
    config = preset_config("giant")
    (dest / "config.json").write_text(config_json(config, "float32"))
    processor = json.loads((dest / "processor_config.json").read_text())
    processor["patch_size"] = config.patch_size
    (dest / "processor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    header, offset = {}, 0
    for name, shape in expected_shapes(config).items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    weights = dest / "model.safetensors"
    subprocess.run(["git", "rm", "-q", "--cached", "model.safetensors"], cwd=dest, env=env, check=True)
    with (dest / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("model.safetensors\n")
    with weights.open("wb") as handle:
        handle.write(struct.pack("<Q", len(blob)) + blob)
        handle.truncate(8 + len(blob) + offset)
    subprocess.run(["git", "commit", "-qam", "giant"], cwd=dest, env=env, check=True)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loop-", dir=args.workdir))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    env.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@x.invalid", GIT_COMMITTER_NAME="bench")
    env.update(GIT_COMMITTER_EMAIL="b@x.invalid", GIT_CONFIG_GLOBAL=str(work / "gitconfig"))
    (work / "gitconfig").touch()
    try:
        small = make_repo(work / "small", env)
        giant = make_giant(small, work / "giant", env)
        for repo in (small, giant):  # fill each repo's probe cache, as its first commit did
            subprocess.run([tool("llava-vit"), "check"], cwd=repo, env=env, check=True, capture_output=True)
        rows: list[tuple[str, float]] = []

        def measure(label: str, command: list[str], cwd: Path, before=None) -> None:
            rows.append((label, timed(command, cwd, env, args.repeats, before)))

        measure("hf --help (reference)", [tool("hf"), "--help"], work)
        measure("llava-vit --help", [tool("llava-vit"), "--help"], work)
        measure("llava-vit guard README.md", [tool("llava-vit"), "guard", "README.md"], small)
        measure("llava-vit sync --fail-on-change", [tool("llava-vit"), "sync", "--fail-on-change"], small)
        measure("llava-vit check (small)", [tool("llava-vit"), "check"], small)
        measure("llava-vit check (giant, sparse weights)", [tool("llava-vit"), "check"], giant)
        for label, repo in (("small", small), ("giant", giant)):
            card = repo / "README.md"

            def edit(card: Path = card) -> None:
                card.write_text(card.read_text() + "\nOne more line.\n")

            measure(f"git commit, hooks on, card edit ({label})", ["git", "commit", "-qam", "card"], repo, edit)

        def drop_cache(repo: Path = small) -> None:
            shutil.rmtree(repo / ".git" / "llava-vit", ignore_errors=True)

        measure("llava-vit check after a code change (probe runs)", [tool("llava-vit"), "check"], small, drop_cache)

        remote = work / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], env=env, check=True)
        subprocess.run(["git", "remote", "add", "bench", f"file://{remote}"], cwd=small, env=env, check=True)
        subprocess.run(["git", "push", "-q", "bench", "HEAD:main"], cwd=small, env=env, check=True)  # the proof
        card = small / "README.md"

        def card_commit(card: Path = card) -> None:
            card.write_text(card.read_text() + "\nOne more line.\n")
            subprocess.run(["git", "commit", "-qam", "card"], cwd=small, env=env, check=True)

        measure("git push, card-only, after a passing one (small)", ["git", "push", "-q", "bench", "HEAD:main"], small,
                card_commit)  # fmt: skip
        env["PRE_COMMIT_TO_REF"] = "HEAD"
        proof = [tool("llava-vit"), "check", "--full", "--pushed"]
        measure("llava-vit check --full --pushed, proof cached (small)", proof, small)
        del env["PRE_COMMIT_TO_REF"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = rows[0][1]
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; median of {args.repeats} runs")
    print(f"| {'what':<52} | median | x hf --help |")
    print(f"|{'-' * 54}|--------|------------|")
    for label, seconds in rows:
        print(f"| {label:<52} | {seconds:5.2f} s | {seconds / reference:9.2f}x |")


if __name__ == "__main__":
    main()
