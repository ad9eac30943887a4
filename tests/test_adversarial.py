"""Hostile repos, hostile checkpoints and careless hands: a table of attacks, one per line, each refused.

Every case builds its inputs in a fresh work folder (most start from a copy of the session's tiny model repo
made by `llava-vit new`, committed past the hooks with `--no-verify` as an attacker would), beside an
`outside` folder that stands for the rest of the machine. It runs `llava-vit ARGV` (in-process, or as a real
process under a time limit and `RLIMIT_AS` where the attack is a hang or a memory bomb) and asserts: the exit
status, the message, that no hostile code ran (the marker file it would write does not exist), and that
nothing outside the work folder changed.

Classes: (1) audit's allowlist verdict, (2) guard of every pushed commit, (3) writers and symlinks,
(4) bounded work on hostile input, (5) one line, never a traceback, (6) check never runs unproven code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from template_repos import copy_repo

from llava_vit.cli import main
from llava_vit.repo_contract import AUTO_MAP, canonical_source, render_code_file

# Under the sanity limits (about 39 billion parameters) yet beyond any test machine's memory as float32 (154 GB).
BIG_GEOMETRY = {"hidden_size": 8192, "num_attention_heads": 64, "num_hidden_layers": 48, "intermediate_size": 32768}
MARKER = "pwned"  # hostile code would create outside/pwned
TOKEN = "hf_" + "Qx7" * 12
RUNS_CODE = "open({marker!r}, 'w').write('ran')\n"


@dataclass
class Where:
    work: Path
    outside: Path
    base: Path

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    @property
    def marker(self) -> Path:
        return self.outside / MARKER


Step = Callable[[Where], None]


# --- building blocks --------------------------------------------------------------------------------------
def git(where: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=where, check=True, capture_output=True)


def repo(*steps: Step, commit: bool = True) -> Step:
    """A copy of the tiny model repo, `steps` done to it, then (by default) committed past the hooks."""

    def setup(at: Where) -> None:
        copy_repo(at.base, at.repo)
        for step in steps:
            step(at)
        if commit:
            git(at.repo, "add", "-A")
            git(at.repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", "change")

    return setup


def folder(*steps: Step) -> Step:
    """A plain folder (no git) with the release's code and config, then `steps`."""

    def setup(at: Where) -> None:
        at.repo.mkdir()
        for name in ("configuration_llava_vit.py", "modeling_llava_vit.py"):
            (at.repo / name).write_text(render_code_file(name))
        (at.repo / "config.json").write_text(json.dumps({"model_type": "llava_vit", "auto_map": AUTO_MAP}))
        for step in steps:
            step(at)

    return setup


def put(name: str, content: str | bytes | Callable[[Where], bytes]) -> Step:
    def step(at: Where) -> None:
        path = at.repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content(at) if callable(content) else content
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return step


def append(name: str, text: str) -> Step:
    def step(at: Where) -> None:
        path = at.repo / name
        path.write_text(path.read_text() + text.format(marker=str(at.marker)))

    return step


def edit_json(name: str, change: Callable[[dict], None]) -> Step:
    def step(at: Where) -> None:
        data = json.loads((at.repo / name).read_text())
        change(data)
        (at.repo / name).write_text(json.dumps(data))

    return step


def link(name: str, target: str) -> Step:
    """A symlink `name` -> `target` (relative to the outside folder), replacing any file there."""

    def step(at: Where) -> None:
        path = at.repo / name
        path.unlink(missing_ok=True)
        path.symlink_to(at.outside / target)

    return step


def fifo(name: str) -> Step:
    def step(at: Where) -> None:
        os.mkfifo(at.repo / name)

    return step


def lfs_track(pattern: str) -> Step:
    def step(at: Where) -> None:
        git(at.repo, "lfs", "track", pattern)

    return step


def forged_modeling(at: Where) -> None:
    """The modeling file with code that writes the marker on import, under a header whose sha256 matches."""
    body = canonical_source("modeling_llava_vit.py") + RUNS_CODE.format(marker=str(at.marker))
    (at.repo / "modeling_llava_vit.py").write_text(render_code_file("modeling_llava_vit.py", body))


def commit_step(message: str = "step") -> Step:
    def step(at: Where) -> None:
        git(at.repo, "add", "-A")
        git(at.repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)

    return step


def author_commit(at: Where) -> None:
    """A commit whose author name is a token (it travels in the commit object, not in any file)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": TOKEN}
    subprocess.run(["git", "commit", "-q", "--no-verify", "--allow-empty", "-m", "x"], cwd=at.repo, env=env, check=True)


def planted_pyc(at: Where) -> None:
    """Bytecode beside the (release-identical) modeling file that writes the marker, as an unchecked-hash pyc:
    Python would load it without looking at the source it claims to be compiled from."""
    import importlib.util
    import py_compile

    hostile = at.work / "hostile.py"
    hostile.write_text(RUNS_CODE.format(marker=str(at.marker)))
    target = importlib.util.cache_from_source(str(at.repo / "modeling_llava_vit.py"))
    py_compile.compile(str(hostile), target, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    hostile.unlink()
    shutil.rmtree(at.repo / ".git" / "llava-vit", ignore_errors=True)  # no cached answer: the probe must run


def remove(name: str) -> Step:
    def step(at: Where) -> None:
        (at.repo / name).unlink()

    return step


# --- hostile payloads -------------------------------------------------------------------------------------
def torch_pickle(at: Where | None = None) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    return buffer.getvalue()


def legacy_pickle(at: Where | None = None) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def zip_with_late_pickle(at: Where | None = None) -> bytes:
    """A zip whose first member is 100 KB of padding: `data.pkl` appears only in its central directory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("padding.bin", os.urandom(100_000))
        archive.writestr("archive/data.pkl", pickle.dumps({"a": 1}))
    return buffer.getvalue()


def npy_objects(at: Where | None = None) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def npy_structured_objects() -> bytes:
    """A structured array with one field of Python objects: numpy pickles it, whatever the other fields are."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.zeros(2, dtype=[("x", "f4"), ("o", "O")]), allow_pickle=True)
    return buffer.getvalue()


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def damaged_weights(change: Callable[[dict], None]) -> Step:
    """model.safetensors with its header changed by `change` (the data kept)."""

    def step(at: Where) -> None:
        path = at.repo / "model.safetensors"
        raw = path.read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + length])
        change(header)
        path.write_bytes(safetensors_bytes(header, raw[8 + length :]))

    return step


def overlap(header: dict) -> None:
    names = sorted(name for name in header if name != "__metadata__")
    header[names[1]]["data_offsets"] = list(header[names[0]]["data_offsets"])
    header[names[1]]["dtype"], header[names[1]]["shape"] = header[names[0]]["dtype"], header[names[0]]["shape"]


def float_offsets(header: dict) -> None:
    name = next(name for name in header if name != "__metadata__")
    header[name]["data_offsets"] = [float(x) for x in header[name]["data_offsets"]]


def alias_bomb_card(at: Where) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]" for i in range(9)]
    card = (at.repo / "README.md").read_text()
    (at.repo / "README.md").write_text(card.replace("---\n", "---\n" + "\n".join(lines) + "\n", 1))


def token_in_safetensors_metadata(at: Where) -> None:
    """A token hidden in the header's metadata behind a JSON escape, so its bytes never spell hf_..."""
    path = at.repo / "model.safetensors"
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header["__metadata__"] = {**header.get("__metadata__", {}), "note": TOKEN}
    text = json.dumps(header).replace("hf_", "\\u0068f_")
    assert TOKEN.encode() not in text.encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text.encode() + raw[8 + length :])


# --- the trust boundary's attackers (issue 19) ---------------------------------------------------------------
def runs_marker(at: Where) -> str:
    """An executable that writes the marker: what a hostile git config names as a filter, hook or pager."""
    script = at.work / "payload.sh"
    script.write_text(f"#!/bin/sh\ntouch {at.marker}\nexit 1\n")
    script.chmod(0o755)
    return str(script)


def git_config_runs(*keys: str, attributes: str = "") -> Step:
    """The repo's own .git/config names the payload under `keys` (and its attributes route files to it), set after
    the last commit so that only the judge under test could run it."""

    def step(at: Where) -> None:
        payload = runs_marker(at)
        for key in keys:
            git(at.repo, "config", key, payload)
        if attributes:
            (at.repo / ".git" / "info").mkdir(exist_ok=True)
            (at.repo / ".git" / "info" / "attributes").write_text(attributes)
            (at.repo / ".gitattributes").write_text((at.repo / ".gitattributes").read_text() + attributes)
        hooks = at.work / "hooks"
        hooks.mkdir(exist_ok=True)
        for hook in ("post-checkout", "pre-commit", "post-index-change", "reference-transaction", "pre-push"):
            (hooks / hook).write_text(f"#!/bin/sh\ntouch {at.marker}\n")
            (hooks / hook).chmod(0o755)
        git(at.repo, "config", "core.hooksPath", str(hooks))

    return step


def dirty_tree(at: Where) -> None:
    """Touch the work tree after the commit: git status would stat, filter and diff it."""
    (at.repo / "config.json").write_text((at.repo / "config.json").read_text() + " ")


def replace_blob(at: Where) -> None:
    """The committed modeling file is forged; a replace ref makes git show the release file in its place."""
    forged = subprocess.run(
        ["git", "rev-parse", "HEAD:modeling_llava_vit.py"], cwd=at.repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    good = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=at.repo,
        input=render_code_file("modeling_llava_vit.py"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    git(at.repo, "replace", forged, good)


def hide_behind_skip_worktree(at: Where) -> None:
    """The forged file is committed; the work tree holds the release file and the index is told not to look."""
    (at.repo / "modeling_llava_vit.py").write_text(render_code_file("modeling_llava_vit.py"))
    git(at.repo, "update-index", "--skip-worktree", "modeling_llava_vit.py")


def tamper_lfs_object(at: Where) -> None:
    """model.safetensors's local LFS object is overwritten (same name, its oid no longer its hash)."""
    oid = subprocess.run(
        ["git", "lfs", "ls-files", "--long"], cwd=at.repo, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    path = at.repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    path.chmod(0o644)
    path.write_bytes(legacy_pickle())


def annotated_tag(message: str) -> Step:
    def step(at: Where) -> None:
        git(at.repo, "tag", "-a", "v1", "-m", message)

    return step


def archive(kind: str, members: dict[str, bytes]) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
            for name, data in members.items():
                out.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz" if kind == "tgz" else "w") as out:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_claiming_members(count: int) -> bytes:
    """A small zip whose end-of-central-directory record claims `count` members (zip64 when needed)."""
    data = bytearray(archive("zip", {"a.txt": b"x"}))
    end = data.rfind(b"PK\x05\x06")
    if count < 0xFFFF:
        struct.pack_into("<HH", data, end + 8, count, count)
        return bytes(data)
    struct.pack_into("<HH", data, end + 8, 0xFFFF, 0xFFFF)
    directory_size, directory_offset = struct.unpack_from("<II", data, end + 12)
    record = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, count, count, directory_size, directory_offset)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, end, 1)
    return bytes(data[:end]) + record + locator + bytes(data[end:])


def zip_bomb(at: Where | None = None) -> bytes:
    """One member that inflates to 300 MB of zeros (a few hundred KB on disk)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out,
        out.open("zeros.bin", "w") as member,
    ):
        block = bytes(1 << 20)
        for _ in range(300):
            member.write(block)
    return buffer.getvalue()


def nested_auto_map(at: Where) -> None:
    path = at.repo / "processor_config.json"
    data = json.loads(path.read_text())
    data["image_processor"] = {"auto_map": {"AutoImageProcessor": "evil_processing.P"}}
    path.write_text(json.dumps(data))


def cache_links_outside(at: Where) -> None:
    shutil.rmtree(at.repo / ".git" / "llava-vit", ignore_errors=True)
    (at.outside / "cache").mkdir()
    (at.repo / ".git" / "llava-vit").symlink_to(at.outside / "cache")


# --- the table --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]  # "{repo}" and "{outside}" are replaced
    code: int
    message: str  # a regex searched in stdout + stderr
    setup: Step
    cwd: str = "."  # relative to the work folder ("repo" for guard)
    memory_mb: int | None = None  # run as a real process under RLIMIT_AS (bombs, hangs)
    env: tuple[tuple[str, str], ...] = ()


A = ["audit", "{repo}"]
G = ["guard", "--range", "HEAD~1..HEAD"]
CASES = [
    # (1) audit: an allowlist verdict on exactly the pinned commit
    Case(
        "audit-extra-py",
        A,
        1,
        r"helper\.py: Python file that is not llava-vit release code",
        repo(put("helper.py", "x = 1\n")),
    ),
    Case(
        "audit-nested-py",
        A,
        1,
        r"a/b/modeling_llava_vit\.py: Python file that is not",
        repo(put("a/b/modeling_llava_vit.py", "import torch\n")),
    ),
    Case("audit-uppercase-py", A, 1, r"Evil\.PY: Python file that is not", repo(put("Evil.PY", "import os\n"))),
    Case(
        "audit-example-builtins",
        A,
        1,
        r"example_usage\.py: differs from what the llava-vit template renders",
        repo(append("example_usage.py", "getattr(__builtins__, 'ev' + 'al')('1')\n")),
    ),
    Case(
        "audit-modeling-hub-load",
        A,
        1,
        r"modeling_llava_vit\.py: edited by hand",
        repo(append("modeling_llava_vit.py", "torch.hub.load('a/b', 'c')\n")),
    ),
    Case(
        "audit-forged-header",
        A,
        1,
        r"claims llava-vit \S+ but matches no recorded llava-vit release",
        repo(forged_modeling),
    ),
    Case(
        "audit-auto-map-extra-class",
        A,
        1,
        r"config\.json: auto_map is .*AutoModelForImageClassification",
        repo(
            edit_json(
                "config.json",
                lambda d: d["auto_map"].update(AutoModelForImageClassification="modeling_llava_vit.LlavaViTModel"),
            )
        ),
    ),
    Case(
        "audit-remote-chain",
        A,
        1,
        r"config\.json: auto_map is .*evil/repo--modeling\.M",
        repo(edit_json("config.json", lambda d: d["auto_map"].update(AutoModel="evil/repo--modeling.M"))),
    ),
    Case(
        "audit-processor-auto-map",
        A,
        1,
        r"preprocessor_config\.json: auto_map .* makes transformers import",
        repo(
            edit_json(
                "preprocessor_config.json", lambda d: d.update(auto_map={"AutoImageProcessor": "modeling_llava_vit.X"})
            )
        ),
    ),
    Case(
        "audit-tokenizer-remote-chain",
        A,
        1,
        r"sub/tokenizer_config\.json: auto_map names code in another repo \(a/b--t\.T\)",
        repo(put("sub/tokenizer_config.json", json.dumps({"auto_map": {"AutoTokenizer": ["a/b--t.T", None]}}))),
    ),
    Case(
        "audit-nested-auto-map",
        A,
        1,
        r"config\.json: vision_config\.auto_map .* makes transformers import",
        repo(edit_json("config.json", lambda d: d.update(vision_config={"auto_map": {"AutoModel": "x.Y"}}))),
    ),
    Case(
        "audit-custom-pipelines",
        A,
        1,
        r"config\.json: custom_pipelines: custom pipelines run",
        repo(edit_json("config.json", lambda d: d.update(custom_pipelines={"p": {"impl": "p.P"}}))),
    ),
    Case(
        "audit-trust-hint",
        A,
        1,
        r"video_preprocessor_config\.json: trust_remote_code: asks for",
        repo(put("video_preprocessor_config.json", '{"trust_remote_code": true}')),
    ),
    Case(
        "audit-compiled",
        A,
        1,
        r"_ext\.cpython-311-x86_64-linux-gnu\.so: compiled code",
        repo(put("_ext.cpython-311-x86_64-linux-gnu.so", b"\x7fELF\0")),
    ),
    Case(
        "audit-git-symlink",
        A,
        1,
        r"configuration_llava_vit\.py: symlink: never followed",
        repo(link("configuration_llava_vit.py", "target.py")),
    ),
    Case(
        "audit-folder-symlink",
        A,
        1,
        r"config\.json: symlink: never followed",
        folder(link("config.json", "config.json")),
    ),
    Case("audit-fifo", A, 1, r"pipe: not a regular file \(FIFO", folder(fifo("pipe")), memory_mb=3072),
    Case(
        "audit-pickle-pth-tar",
        A,
        1,
        r"w\.pth\.tar: pickle \(recognised by content\)",
        repo(put("w.pth.tar", torch_pickle)),
    ),
    Case(
        "audit-pickle-upper-pth", A, 1, r"W\.PTH: pickle \(recognised by content\)", repo(put("W.PTH", legacy_pickle))
    ),
    Case(
        "audit-pickle-protocol-0",
        A,
        1,
        r"s\.joblib: pickle \(recognised",
        repo(put("s.joblib", pickle.dumps({"a": [1, 2]}, protocol=0))),
    ),
    Case(
        "audit-pickle-no-suffix",
        A,
        1,
        r"weights: pickle \(recognised",
        repo(put("weights", pickle.dumps({"a": 1}, protocol=2))),
    ),
    Case(
        "audit-pickle-gzip",
        A,
        1,
        r"m\.pkl\.gz: pickle \(recognised",
        repo(put("m.pkl.gz", gzip.compress(pickle.dumps({"a": 1}, protocol=4)))),
    ),
    Case(
        "audit-pickle-zip-central-directory",
        A,
        1,
        r"bundle\.zip: pickle \(recognised",
        repo(put("bundle.zip", zip_with_late_pickle)),
    ),
    Case("audit-pickle-npy-objects", A, 1, r"a\.npy: pickle \(recognised", repo(put("a.npy", npy_objects))),
    Case(
        "audit-pickle-in-lfs",
        A,
        1,
        r"model\.ckpt: pickle \(recognised",
        repo(lfs_track("*.ckpt"), put("model.ckpt", torch_pickle)),
    ),
    Case(
        "audit-deep-json",
        A,
        1,
        r"deep\.json: JSON that cannot be judged \(nested more than",
        repo(put("deep.json", "[" * 200_000 + "]" * 200_000)),
        memory_mb=3072,
    ),
    Case(
        "audit-huge-json",
        A,
        1,
        r"big\.json: JSON that cannot be judged",
        repo(put("big.json", b'{"a": "' + b"x" * (11 * 2**20) + b'"}')),
    ),
    Case(
        "audit-head-not-working-tree",
        A,
        1,
        r"modeling_llava_vit\.py: edited by hand",
        repo(
            append("modeling_llava_vit.py", "import os\n"),
            commit_step(),
            lambda at: git(at.repo, "checkout", "HEAD~1", "--", "modeling_llava_vit.py"),
            commit=False,
        ),
    ),
    Case(
        "audit-newline-in-name",
        A,
        1,
        r"\n  x\\ny\.py: Python file that is not llava-vit release code",
        repo(put("x\ny.py", "import os\n")),
    ),
    Case(
        "audit-peft-auto-mapping",
        A,
        1,
        r"adapter_config\.json: auto_mapping .* names classes to import by name",
        repo(put("adapter_config.json", json.dumps({"auto_mapping": {"base_model_class": "Evil"}}))),
    ),
    Case(
        "audit-hub-kernel",
        A,
        1,
        r"config\.json: attn_implementation 'kernels-community/x' names a Hub kernel repo",
        repo(edit_json("config.json", lambda d: d.update(attn_implementation="kernels-community/x"))),
    ),
    # (2) guard: every commit pushed, every encoding, LFS content, metadata, messages, option-like names
    Case(
        "guard-utf16-be",
        G,
        1,
        r"notes\.txt: holds a Hugging Face token \(hf_\.\.\.\) in UTF-16-BE text",
        repo(put("notes.txt", f"key={TOKEN}".encode("utf-16-be"))),
        cwd="repo",
    ),
    Case(
        "guard-utf16-bom",
        G,
        1,
        r"notes\.txt: holds a Hugging Face token .* UTF-16-LE",
        repo(put("notes.txt", f"key={TOKEN}".encode("utf-16"))),
        cwd="repo",
    ),
    Case(
        "guard-utf32",
        G,
        1,
        r"notes\.txt: holds a Hugging Face token .* UTF-32-LE",
        repo(put("notes.txt", f"key={TOKEN}".encode("utf-32"))),
        cwd="repo",
    ),
    Case(
        "guard-commit-message",
        G,
        1,
        r"commit [0-9a-f]{12} message:1: looks like a Hugging Face token",
        repo(commit_step(f"debug {TOKEN}"), commit=False),
        cwd="repo",
    ),
    Case(
        "guard-lfs-text",
        G,
        1,
        r"secrets\.txt:1: looks like a Hugging Face token",
        repo(lfs_track("*.txt"), put("secrets.txt", f"{TOKEN}\n")),
        cwd="repo",
    ),
    Case(
        "guard-safetensors-metadata",
        G,
        1,
        r"model\.safetensors \(safetensors header\):1: looks like a Hugging Face token",
        repo(token_in_safetensors_metadata),
        cwd="repo",
    ),
    Case(
        "guard-token-in-tensor-data",
        G,
        1,
        r"w\.safetensors:\d+: looks like a Hugging Face token",
        repo(
            put(
                "w.safetensors",
                lambda at: safetensors_bytes(
                    {"t": {"dtype": "U8", "shape": [len(TOKEN) + 2], "data_offsets": [0, len(TOKEN) + 2]}},
                    f" {TOKEN} ".encode(),
                ),
            )
        ),
        cwd="repo",
    ),
    Case(
        "guard-pickle-as-txt",
        G,
        1,
        r"readme\.txt: pickle \(recognised by content\) is not published",
        repo(put("readme.txt", pickle.dumps([1], protocol=0))),
        cwd="repo",
    ),
    Case(
        "guard-added-then-removed",
        ["guard", "--range", "HEAD~2..HEAD"],
        1,
        r"leak\.md:2: looks like a Hugging Face token",
        repo(put("leak.md", f"# x\n{TOKEN}\n"), commit_step(), remove("leak.md")),
        cwd="repo",
    ),
    Case(
        "guard-option-like-name",
        ["guard", "--", "-h"],
        1,
        r"-h: pickle \(recognised by content\)",
        repo(put("-h", torch_pickle)),
        cwd="repo",
    ),
    Case(
        "guard-option-like-range",
        ["guard", "--range=--output=x..HEAD"],
        2,
        r"'--output=x' is not a commit",
        repo(),
        cwd="repo",
    ),
    Case(
        "guard-token-in-file-name",
        G,
        1,
        r"hf_\.\.\.\.txt: its file name holds a Hugging Face token",
        repo(put(f"{TOKEN}.txt", "notes\n")),
        cwd="repo",
    ),
    Case(
        "guard-token-as-author",
        G,
        1,
        r"commit [0-9a-f]{12} author/committer:\d+: looks like a Hugging Face token",
        repo(author_commit, commit=False),
        cwd="repo",
    ),
    # (3) writers never write through a planted symlink; destructive replaces never delete their inputs
    Case(
        "sync-symlinked-code",
        ["sync", "{repo}"],
        1,
        r"modeling_llava_vit\.py is a symlink; refusing to write through it",
        repo(link("modeling_llava_vit.py", "target.py"), commit=False),
    ),
    Case(
        "sync-symlinked-config",
        ["sync", "{repo}"],
        1,
        r"config\.json is a symlink; refusing to follow it",
        repo(link("config.json", "config.json"), commit=False),
    ),
    Case(
        "export-force-into-weights-folder",
        ["export", "{repo}/sub", "--preset", "small", "--weights", "{repo}", "--force"],
        2,
        r"is inside the input",
        repo(commit=False),
    ),
    Case(
        "export-force-symlink-to-weights",
        ["export", "{outside}/alias", "--preset", "small", "--weights", "{repo}/model.safetensors", "--force"],
        2,
        r"holds the input",
        repo(lambda at: (at.outside / "alias").symlink_to(at.repo), commit=False),
    ),
    # (4) bounded work on hostile input
    Case(
        "config-billion-layers",
        ["check", "{repo}"],
        1,
        r"num_hidden_layers = 1000000000 is larger than any LlavaViT",
        repo(edit_json("config.json", lambda d: d.update(num_hidden_layers=10**9)), commit=False),
        memory_mb=3072,
    ),
    Case(
        "export-hidden-ten-million",
        ["export", "out", "--config", "{repo}/c.json"],
        2,
        r"hidden_size = 10000000 is larger than any LlavaViT",
        repo(put("c.json", json.dumps({"hidden_size": 10**7, "num_attention_heads": 10**7 // 64})), commit=False),
    ),
    Case(
        "export-too-many-parameters",
        ["export", "out", "--config", "{repo}/c.json"],
        2,
        r"about \d+ billion parameters",
        repo(
            put(
                "c.json",
                json.dumps(
                    {
                        "hidden_size": 16384,
                        "num_attention_heads": 256,
                        "num_hidden_layers": 512,
                        "intermediate_size": 65536,
                    }
                ),
            ),
            commit=False,
        ),
    ),
    Case(
        "card-alias-bomb",
        ["check", "{repo}"],
        1,
        r"README\.md: card metadata is not valid YAML \(uses a YAML alias",
        repo(alias_bomb_card, commit=False),
        memory_mb=3072,
    ),
    Case(
        "answers-python-tag",
        ["publish", "{repo}", "--local-hub", "--hub-dir", "{outside}/hub"],
        1,
        r"\.copier-answers\.yml: not a plain YAML answers file",
        repo(
            lambda at: git(at.repo, "remote", "remove", "origin"),
            put(".copier-answers.yml", "repo_id: !!python/object/apply:os.system ['touch pwned']\n"),
        ),
    ),
    Case(
        "safetensors-overlap",
        ["check", "{repo}"],
        1,
        r"model\.safetensors: has tensor .* overlaps another tensor",
        repo(damaged_weights(overlap), commit=False),
    ),
    Case(
        "safetensors-float-offsets",
        ["check", "{repo}"],
        1,
        r"model\.safetensors: has tensor .* are not non-negative integers",
        repo(damaged_weights(float_offsets), commit=False),
    ),
    Case(
        "export-weights-fifo",
        ["export", "out", "--preset", "small", "--weights", "{repo}/w.pth"],
        2,
        r"w\.pth is not a regular file \(a FIFO",
        repo(fifo("w.pth"), commit=False),
        memory_mb=3072,
    ),
    Case(
        "export-config-fifo",
        ["export", "out", "--config", "{repo}/c.json"],
        2,
        r"c\.json is not a regular file",
        repo(fifo("c.json"), commit=False),
        memory_mb=3072,
    ),
    Case(
        "export-config-folder",
        ["export", "out", "--config", "{repo}"],
        2,
        r"is not a regular file \(a folder",
        repo(commit=False),
    ),
    Case(
        "export-million-patches",
        ["export", "out", "--config", "{repo}/c.json"],
        2,
        r"gives 1048576 patches per frame, more than 65536",
        repo(put("c.json", json.dumps({"image_size": 8192, "patch_size": 8})), commit=False),
    ),
    Case(
        "export-random-init-beyond-memory",
        ["export", "out", "--config", "{repo}/c.json"],
        2,
        r"random weights for this geometry need 1\d\d\.\d GB of memory",
        repo(put("c.json", json.dumps(BIG_GEOMETRY)), commit=False),
        memory_mb=4096,
    ),
    # (5) one line, never a traceback
    Case(
        "config-utf16",
        ["check", "{repo}"],
        1,
        r"config\.json: not valid JSON \(not UTF-8 text",
        repo(put("config.json", '{"model_type": "llava_vit"}'.encode("utf-16")), commit=False),
    ),
    Case(
        "config-latin1",
        ["sync", "{repo}"],
        1,
        r"config\.json: not valid JSON \(not UTF-8",
        repo(put("config.json", '{"n": "caf\xe9"}'.encode("latin-1")), commit=False),
    ),
    Case(
        "config-list",
        ["check", "{repo}"],
        1,
        r"config\.json: must hold a JSON object",
        repo(put("config.json", "[]"), commit=False),
    ),
    Case(
        "config-deep",
        ["sync", "{repo}"],
        1,
        r"config\.json: not valid JSON \(nested more than",
        repo(put("config.json", "[" * 100_000 + "]" * 100_000), commit=False),
        memory_mb=3072,
    ),
    Case(
        "config-path-with-newline",
        ["export", "out", "--config", "{repo}/a\nb.json"],
        2,
        r"cannot read config .*a\\nb\.json|a\\nb\.json",
        repo(commit=False),
    ),
    Case(
        "card-utf16",
        ["check", "{repo}"],
        1,
        r"README\.md: not UTF-8 text",
        repo(
            lambda at: (at.repo / "README.md").write_bytes((at.repo / "README.md").read_text().encode("utf-16")),
            commit=False,
        ),
    ),
    Case("check-path-with-newline", ["check", "{repo}/x\ny"], 1, r"x\\ny is not a folder", repo(commit=False)),
    # (6) check never runs code it has not proven
    Case(
        "check-forged-modeling",
        ["check", "{repo}"],
        1,
        r"modeling_llava_vit\.py: claims llava-vit \S+ but matches no recorded",
        repo(forged_modeling, commit=False),
    ),
    Case("check-planted-bytecode", ["check", "{repo}"], 0, r"^$", repo(planted_pyc, commit=False)),
    Case(
        "check-auto-map-to-evil",
        ["check", "{repo}"],
        1,
        r"config\.json: auto_map must be exactly",
        repo(
            put("evil.py", lambda at: RUNS_CODE.format(marker=str(at.marker)) + "class M: pass\n"),
            edit_json("config.json", lambda d: d["auto_map"].update(AutoModel="evil.M")),
            commit=False,
        ),
    ),
    # (7) one trust boundary: one reader that runs nothing the repo configures, one sniffer, one definition of
    # what can run, every judge on exactly what is pinned or pushed (issue 19)
    *[
        Case(
            f"reader-{name}-{argv[0]}",
            argv,
            code,
            message,
            repo(
                forged_modeling, commit_step(), git_config_runs(*keys, attributes=attributes), dirty_tree, commit=False
            ),
            cwd="repo" if argv is G else ".",
        )
        for name, keys, attributes in (
            ("fsmonitor", ("core.fsmonitor",), ""),
            ("filter", ("filter.evil.clean", "filter.evil.smudge", "filter.evil.process"), "*.json filter=evil\n"),
            ("textconv", ("diff.evil.textconv", "diff.evil.command"), "* diff=evil\n"),
            ("pager", ("core.pager", "pager.ls-tree", "pager.cat-file"), ""),
            ("worktree", ("core.worktree",), ""),
        )
        for argv, code, message in (
            (A, 1, r"modeling_llava_vit\.py: claims llava-vit \S+ but matches no recorded"),
            (G, 0, r"^$"),
        )
    ],
    Case(
        "reader-replace-ref",
        A,
        1,
        r"modeling_llava_vit\.py: claims llava-vit \S+ but matches no recorded",
        repo(forged_modeling, commit_step(), replace_blob, commit=False),
    ),
    Case(
        "reader-skip-worktree",
        A,
        1,
        r"modeling_llava_vit\.py: claims llava-vit \S+ but matches no recorded",
        repo(forged_modeling, commit_step(), hide_behind_skip_worktree, commit=False),
    ),
    Case(
        "reader-lfs-object-tampered-audit",
        A,
        1,
        r"model\.safetensors: .*does not match its oid",
        repo(tamper_lfs_object, commit=False),
    ),
    Case(
        "reader-lfs-object-tampered-guard",
        ["guard", "--range", "..HEAD"],
        1,
        r"model\.safetensors: .*does not match its oid",
        repo(tamper_lfs_object, commit=False),
        cwd="repo",
    ),
    Case(
        "guard-annotated-tag-message",
        G,
        1,
        r"tag v1:\d+: looks like a Hugging Face token",
        repo(annotated_tag(f"release notes {TOKEN}")),
        cwd="repo",
    ),
    Case(
        "guard-pushed-tag",
        ["guard", "--pushed"],
        1,
        r"tag v1:\d+: looks like a Hugging Face token",
        repo(annotated_tag(f"release {TOKEN}")),
        cwd="repo",
        env=(("PRE_COMMIT_FROM_REF", "HEAD~1"), ("PRE_COMMIT_TO_REF", "HEAD")),
    ),
    *[
        Case(
            f"guard-token-{name}", G, 1, r"notes\.(txt|json):1: looks like a Hugging Face token", repo(step), cwd="repo"
        )
        for name, step in (
            ("after-digit", put("notes.txt", f"id=1{TOKEN}\n")),
            ("after-percent20", put("notes.txt", f"url?k=%20{TOKEN}\n")),
            ("after-x20", put("notes.txt", f"k=\\x20{TOKEN}\n")),
            ("json-unicode-escape", put("notes.json", json.dumps({"k": TOKEN}).replace("hf_", "\\u0068\\u0066_"))),
            ("url-encoded", put("notes.txt", "k=" + "".join(f"%{ord(c):02x}" for c in TOKEN) + "\n")),
        )
    ],
    *[
        Case(f"guard-token-in-{name}", G, 1, r"notes\.\w+: holds a Hugging Face token .* in .*", repo(step), cwd="repo")
        for name, step in (
            ("gzip", put("notes.gz", gzip.compress(f"k={TOKEN}".encode()))),
            ("zip-member", put("notes.zip", lambda at: archive("zip", {"a/.env": f"HF_TOKEN={TOKEN}".encode()}))),
            ("tar-member", put("notes.tar", lambda at: archive("tar", {".env": f"HF_TOKEN={TOKEN}".encode()}))),
            ("xz", put("notes.xz", __import__("lzma").compress(f"k={TOKEN}".encode()))),
        )
    ],
    *[
        Case(
            f"guard-pickle-{name}",
            G,
            1,
            rf"{re.escape(path)}: pickle \(recognised by content\)",
            repo(put(path, data)),
            cwd="repo",
        )
        for name, path, data in (
            ("protocol2-headless", "notes.md", pickle.dumps({"a": [1, 2, 3]}, protocol=2)[2:]),
            ("protocol4-framed-headless", "notes.md", pickle.dumps({"a": list(range(50))}, protocol=4)[2:]),
            ("protocol0-text", "notes.txt", pickle.dumps({"a": 1}, protocol=0)),
            ("in-tar", "data.tar", archive("tar", {"x.pkl": pickle.dumps([1])})),
            ("in-tgz", "data.tgz", archive("tgz", {"x/state.bin": pickle.dumps({"k": 2})})),
            ("in-nested-zip", "data.zip", archive("zip", {"inner.zip": archive("zip", {"w.bin": pickle.dumps(3)})})),
            ("npz-objects", "arrays.npz", archive("zip", {"a.npy": npy_objects()})),
            ("torch-archive-as-md", "weights.md", torch_pickle()),
            ("joblib-zlib", "model.joblib", __import__("zlib").compress(pickle.dumps({"z": 1}))),
        )
    ],
    Case(
        "guard-zip-million-members",
        G,
        1,
        r"many\.zip: a zip archive with 1000000 members .*cannot prove it holds no pickle",
        repo(put("many.zip", zip_claiming_members(1_000_000))),
        cwd="repo",
        memory_mb=1200,
    ),
    Case(
        "guard-zip-bomb",
        G,
        1,
        r"bomb\.zip: .*beyond \d+ decompressed bytes: cannot prove it holds no pickle",
        repo(put("bomb.zip", zip_bomb)),
        cwd="repo",
        memory_mb=1200,
    ),
    Case(
        "export-index-names-a-shard-outside",
        ["export", "out", "--preset", "small", "--weights", "{repo}/ckpt"],
        1,
        r"not a readable safetensors index \(shard '\.\./\.\./outside/w\.safetensors' is not a \.safetensors file name",
        repo(
            put("ckpt/model.safetensors.index.json", json.dumps({"weight_map": {"w": "../../outside/w.safetensors"}})),
            commit=False,
        ),
    ),
    Case(
        "export-zip-million-members",
        ["export", "out", "--preset", "small", "--weights", "{repo}/many.pth"],
        1,
        r"many\.pth: a zip archive declaring 1000000 members",
        repo(put("many.pth", zip_claiming_members(1_000_000)), commit=False),
        memory_mb=1500,
    ),
    Case(
        "guard-pickle-npy-structured-objects",
        G,
        1,
        r"table\.npy: pickle \(recognised by content\)",
        repo(put("table.npy", lambda at: npy_structured_objects())),
        cwd="repo",
    ),
    Case(
        "guard-binary-with-text-suffix",
        G,
        1,
        r"notes\.md: binary file outside git-lfs",
        repo(put("notes.md", bytes(range(256)) * 8)),
        cwd="repo",
    ),
    Case(
        "audit-nested-auto-map-processor",
        A,
        1,
        r"processor_config\.json: image_processor\.auto_map .* makes transformers import code",
        repo(nested_auto_map),
    ),
    Case(
        "audit-cross-repo-processor-class",
        A,
        1,
        r"preprocessor_config\.json: image_processor_type names code in another repo",
        repo(edit_json("preprocessor_config.json", lambda d: d.update(image_processor_type="evil/repo--proc.P"))),
    ),
    Case(
        "audit-adapter-config",
        A,
        1,
        r"adapter_config\.json: a PEFT adapter config",
        repo(put("adapter_config.json", json.dumps({"base_model_name_or_path": "evil/base", "peft_type": "LORA"}))),
    ),
    Case(
        "audit-use-kernels",
        A,
        1,
        r"config\.json: use_kernels: asks for Hub kernels",
        repo(edit_json("config.json", lambda d: d.update(use_kernels=True))),
    ),
    Case("audit-repo-id-newline", ["audit", "acme/vit\n"], 2, r"neither a folder nor a Hub repo id", repo()),
    Case(
        "check-nested-auto-map",
        ["check", "{repo}"],
        1,
        r"processor_config\.json: image_processor\.auto_map .* makes transformers import code",
        repo(nested_auto_map, commit=False),
    ),
    Case(
        "check-extra-python",
        ["check", "{repo}"],
        1,
        r"helper\.py: Python file that is not llava-vit release code",
        repo(put("helper.py", RUNS_CODE), commit=False),
    ),
    Case(
        "check-custom-pipelines",
        ["check", "{repo}"],
        1,
        r"config\.json: custom_pipelines: custom pipelines run the repo's code",
        repo(edit_json("config.json", lambda d: d.update(custom_pipelines={"x": {"impl": "p.P"}})), commit=False),
    ),
    Case(
        "check-full-never-imports-unproven",
        ["check", "{repo}", "--full"],
        1,
        r"modeling_llava_vit\.py: claims llava-vit \S+ but matches no recorded",
        repo(forged_modeling, commit=False),
    ),
    Case(
        "check-full-judges-the-pushed-commit",
        ["check", "{repo}", "--full", "--pushed"],
        1,
        r"modeling_llava_vit\.py: claims llava-vit \S+ but matches no recorded",
        repo(
            forged_modeling,
            commit_step(),
            lambda at: (at.repo / "modeling_llava_vit.py").write_text(render_code_file("modeling_llava_vit.py")),
            commit=False,
        ),
        env=(("PRE_COMMIT_TO_REF", "HEAD"),),
    ),
    Case(
        "check-full-path-with-newline",
        ["check", "{repo}", "--full", "--commit", "HEAD"],
        1,
        r"modeling_llava_vit\.py: claims llava-vit",
        repo(forged_modeling, put("notes\nx.txt", "hello\n")),
    ),
    Case(
        "check-cache-is-a-symlink",
        ["check", "{repo}"],
        2,
        r"\.git/llava-vit is a symlink",
        repo(cache_links_outside, commit=False),
    ),
    Case(
        "verify-never-loads-unproven-code",
        ["verify", "{repo}"],
        1,
        r"code provenance: .*not loaded \(its code would run\)",
        repo(forged_modeling, commit=False),
    ),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with what it is (file digest, link target), to prove nothing changed there."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[rel] = "dir"
    return state


_LIMITED = """
import resource, sys
limit = int(sys.argv[1]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from llava_vit.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_the_table_covers_every_class_with_at_least_forty_cases() -> None:
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)
    prefixes = {case.id.split("-")[0] for case in CASES}
    assert {
        "audit",
        "guard",
        "sync",
        "export",
        "config",
        "check",
        "card",
        "safetensors",
        "reader",
        "verify",
    } <= prefixes


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_attack_is_refused(case: Case, made_repo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    at = Where(work=tmp_path / "work", outside=tmp_path / "outside", base=made_repo)
    at.work.mkdir()
    at.outside.mkdir()
    (at.outside / "target.py").write_text("# a file outside the repo\n")
    (at.outside / "config.json").write_text(json.dumps({"model_type": "llava_vit", "auto_map": AUTO_MAP}))
    case.setup(at)
    before = _snapshot(at.outside)
    argv = [arg.replace("{repo}", str(at.repo)).replace("{outside}", str(at.outside)) for arg in case.argv]
    cwd = at.work / case.cwd
    if case.memory_mb is not None:
        env = {**os.environ, **dict(case.env)}
        result = subprocess.run(
            [sys.executable, "-c", _LIMITED, str(case.memory_mb), *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        code, out, err = result.returncode, result.stdout, result.stderr
    else:
        monkeypatch.chdir(cwd)
        for key, value in case.env:
            monkeypatch.setenv(key, value)
        code = main(argv)
        captured = capsys.readouterr()
        out, err = captured.out, captured.err
    output = out + err
    assert code == case.code, output
    assert re.search(case.message, output), output
    assert "Traceback" not in output, output
    assert TOKEN not in output, "a guard message repeated the secret"
    if not argv[0] == "audit":  # audit's report is many lines on stdout; every error is one line on stderr
        assert all(line.startswith(f"llava-vit {argv[0]}") for line in err.splitlines()), err
    assert not at.marker.exists(), "hostile code ran"
    assert _snapshot(at.outside) == before, "something outside the work folder changed"


def test_audit_passes_the_untouched_repo_so_the_table_tests_the_attacks(made_repo: Path, tmp_path: Path, capsys):
    """The control: the same tiny repo, unchanged, passes (a refusal above is caused by its attack)."""
    copy = copy_repo(made_repo, tmp_path / "repo")
    assert main(["audit", str(copy)]) == 0, capsys.readouterr().out
