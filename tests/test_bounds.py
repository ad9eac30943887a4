"""Bounded, one line, nothing written outside: hostile sizes are refused before anything is allocated.

Each case runs the real command in a fresh process under a memory limit (RLIMIT_AS, or its peak resident memory
compared with a normal run), and asserts the refusal, its one line (the problem and the fix), no traceback, that
nothing outside the work folder changed and, where the input could name code, that nothing ran (a marker file).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickletools
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from reference import REFERENCE, weights_path
from safetensors.torch import load_file
from template_repos import copy_repo
from video_clips import clip_frames, write_clip

from llava_vit import LlavaViTConfig
from llava_vit.checks.answers import template_source_problems
from llava_vit.model.configuration_llava_vit import MAX_LABEL_CHARS, MAX_LABELS
from llava_vit.model.processing_llava_vit import MAX_FRAME_PIXELS, MAX_VIDEO_BYTES, LlavaViTProcessor
from llava_vit.repo_contract import ANSWERS_FILE, is_repo_id
from llava_vit.scaffold.new import template_path

ARCH = "tiny_ln_p14"
CONFIG = str(REFERENCE / ARCH / "architecture.json")
GiB = 1024**3
MEMORY_LIMIT = 4 * GiB  # address space for a whole llava-vit process (torch and transformers imported: ~1-2 GiB)
MARKER = "pwned"


# --- running a command, and what it may touch --------------------------------------------------------------
def _limit_memory(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_limited(args: list[str], cwd: Path, home: Path, limit: int = MEMORY_LIMIT) -> tuple[int, str, str, int]:
    """`args` in a fresh process (and its children) under RLIMIT_AS `limit`, HOME and caches in `home`: exit code,
    stdout, stderr and peak resident memory in bytes."""
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("LLAVA_VIT_DEBUG", None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err, preexec_fn=_limit_memory(limit))
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss * 1024


def llava_vit(*argv: str, cwd: Path, home: Path, limit: int = MEMORY_LIMIT) -> tuple[int, str, str]:
    code, out, err, _ = run_limited([sys.executable, "-m", "llava_vit", *argv], cwd, home, limit)
    return code, out, err


def tree(folder: Path) -> dict[str, str]:
    """Every path under `folder` with a digest of its content (symlinks by target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[str(path.relative_to(folder))] = "dir"
    return found


class Workspace:
    """`work` (the command's folder: it may change), and beside it `inputs` and `home`, which must not."""

    def __init__(self, root: Path) -> None:
        self.work, self.inputs, self.home = root / "work", root / "inputs", root / "home"
        for folder in (self.work, self.inputs, self.home):
            folder.mkdir()
        self.root = root
        self._before: dict[str, str] | None = None

    def freeze(self) -> None:
        self._before = self._outside()

    def _outside(self) -> dict[str, str]:
        return {name: digest for name, digest in tree(self.root).items() if not name.startswith("work")}

    def assert_nothing_outside_changed(self) -> None:
        assert self._before is not None
        assert self._outside() == self._before, "a file outside the work folder was written or changed"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def assert_one_line(err: str, *expected: str) -> str:
    """stderr holds exactly one line, with every `expected` text in it, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], err
    return lines[0]


@pytest.fixture
def repo(made_repo: Path, space: Workspace) -> Path:
    """A copy, in the work folder, of the session's tiny repo made by `llava-vit new` (a git repo: check's probe
    cache stays in its .git, inside the work folder)."""
    return copy_repo(made_repo, space.work / "repo")


def edit_config(repo: Path, **fields: object) -> None:
    data = json.loads((repo / "config.json").read_text())
    data.update(fields)
    (repo / "config.json").write_text(json.dumps(data))


# --- 1. config fields transformers allocates from ------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_labels": 10**9}, f"num_labels = 1000000000 is more than any LlavaViT head needs (at most {MAX_LABELS})"),
        (
            {"id2label": {str(i): f"L{i}" for i in range(MAX_LABELS + 1)}},
            f"id2label has {MAX_LABELS + 1} entries, more than any LlavaViT head needs (at most {MAX_LABELS})",
        ),
        (
            {"label2id": {f"L{i}": i for i in range(MAX_LABELS + 1)}},
            f"label2id has {MAX_LABELS + 1} entries",
        ),
        (
            {"id2label": {"0": "x" * 100_000}},
            f"id2label holds a label of 100000 characters (at most {MAX_LABEL_CHARS})",
        ),
        ({"num_labels": -1}, "num_labels must be a non-negative integer, got -1"),
    ],
    ids=["num_labels", "id2label", "label2id", "long-label", "negative"],
)
def test_check_refuses_label_fields_over_the_limits(space: Workspace, repo: Path, fields: dict, message: str) -> None:
    edit_config(repo, **fields)
    space.freeze()
    code, _, err = llava_vit("check", str(repo), cwd=space.work, home=space.home)
    assert code == 1, err
    line = assert_one_line(err, f"config.json: {message}", "fix the value or re-create it with `llava-vit export`")
    assert line.startswith("llava-vit check: ")
    space.assert_nothing_outside_changed()


def test_check_accepts_labels_within_the_limits(space: Workspace, repo: Path) -> None:
    edit_config(repo, id2label={str(i): f"class {i}" for i in range(1000)})
    code, _, err = llava_vit("check", str(repo), cwd=space.work, home=space.home)
    assert code == 0, err


@pytest.mark.parametrize("field", ["num_labels", "id2label", "label2id"])
def test_config_class_refuses_labels_before_transformers_allocates_them(field: str) -> None:
    over = MAX_LABELS + 1
    value = {"num_labels": over, "id2label": dict.fromkeys(range(over), "x"), "label2id": dict.fromkeys(range(over), 0)}
    with pytest.raises(ValueError, match=rf"^{field} .*at most {MAX_LABELS}\)$"):
        LlavaViTConfig(**{field: value[field]})
    config = LlavaViTConfig(num_labels=MAX_LABELS)
    assert config.num_labels == MAX_LABELS
    assert LlavaViTConfig.from_dict(config.to_dict()).num_labels == MAX_LABELS


def test_a_billion_labels_cost_no_memory_in_the_config_class(space: Workspace) -> None:
    """The config class alone, in a process whose address space could not hold a billion-entry dict."""
    script = (
        "from llava_vit import LlavaViTConfig\n"
        "try:\n    LlavaViTConfig.from_dict({'num_labels': 10**9})\n"
        "except ValueError as error:\n    print(error)\n"
    )
    code, out, err, _ = run_limited([sys.executable, "-c", script], space.work, space.home)
    assert code == 0, err
    assert out.strip() == f"num_labels = 1000000000 is more than any LlavaViT head needs (at most {MAX_LABELS})"


# --- 2. video budgets ----------------------------------------------------------------------------------------
_VIDEO_SCRIPT = """
import json, sys
from transformers import CLIPImageProcessor
from llava_vit.model.processing_llava_vit import LlavaViTProcessor
processor = LlavaViTProcessor(CLIPImageProcessor(), patch_size=14)
try:
    out = processor(videos=sys.argv[1], num_frames=int(sys.argv[2]))
    print(json.dumps({"shape": list(out["pixel_values"].shape)}))
except ValueError as error:
    print(json.dumps({"error": str(error)}))
"""


def _write_big_clip(path: Path, side: int) -> None:
    """One black side x side H.264 frame, written in a separate process (the pixels never enter this one)."""
    script = (
        "import av, sys\n"
        "with av.open(sys.argv[1], 'w') as c:\n"
        "    s = c.add_stream('libx264', rate=1)\n"
        "    s.width = s.height = int(sys.argv[2])\n"
        "    s.pix_fmt = 'yuv420p'\n"
        "    s.options = {'preset': 'ultrafast'}\n"
        "    f = av.VideoFrame(s.width, s.height, 'yuv420p')\n"
        "    for p in f.planes:\n        p.update(bytes(p.buffer_size))\n"
        "    c.mux(s.encode(f))\n    c.mux(s.encode())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path), str(side)], check=True)


def test_a_video_of_huge_frames_is_refused_before_decoding(space: Workspace) -> None:
    """An 8448 x 8448 video (71 megapixels a frame; decoding and converting one frame would take over 1 GB) is
    refused from its stream's metadata: the process peaks where a small clip's does."""
    big, small = space.inputs / "big.mp4", space.inputs / "small.mp4"
    _write_big_clip(big, 8448)
    write_clip(small, clip_frames(4))
    space.freeze()
    run = [sys.executable, "-c", _VIDEO_SCRIPT]
    code, out, err, normal_peak = run_limited([*run, str(small), "1"], space.work, space.home)
    assert code == 0 and json.loads(out)["shape"] == [1, 3, 1, 224, 224], err
    code, out, err, peak = run_limited([*run, str(big), "1"], space.work, space.home)
    assert code == 0, err
    message = json.loads(out)["error"]
    assert message == (
        f"{big}: the video: a frame of 8448x8448 pixels is over the budget of {MAX_FRAME_PIXELS} pixels; pass a "
        "smaller video, or raise max_frame_pixels if this machine has the memory"
    )
    assert peak < normal_peak + 400 * 2**20, (peak, normal_peak)
    space.assert_nothing_outside_changed()


@pytest.fixture(scope="module")
def image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor()


def test_decoded_bytes_over_the_budget_are_refused_before_decoding(image_processor, tmp_path: Path) -> None:
    """16 sampled 64x64 frames are 196608 bytes: within a budget of that, refused under it, before decoding."""
    clip = write_clip(tmp_path / "clip.mp4", clip_frames(24))
    assert (
        LlavaViTProcessor(image_processor, max_video_bytes=16 * 64 * 64 * 3)(videos=clip)["pixel_values"].shape[2] == 16
    )
    tight = LlavaViTProcessor(image_processor, max_video_bytes=16 * 64 * 64 * 3 - 1)
    with pytest.raises(ValueError) as caught:
        tight(videos=clip)
    assert str(caught.value) == (
        f"{clip}: the video: 16 frames of 64x64 decode to 0 MiB, over the budget of 0 MiB; sample fewer frames, "
        "or raise max_video_bytes"
    )
    assert tight(videos=clip, num_frames=15)["pixel_values"].shape[2] == 15
    with pytest.raises(ValueError, match=r"16 frames of 64x64 decode to 0 MiB after the batch's other clips' 0 MiB, "):
        LlavaViTProcessor(image_processor, max_video_bytes=2 * 16 * 64 * 64 * 3 - 1)(videos=[clip, clip])
    pair = LlavaViTProcessor(image_processor, max_video_bytes=2 * 16 * 64 * 64 * 3)(videos=[clip, clip])
    assert pair["pixel_values"].shape[:3] == (2, 3, 16)


def test_fps_sampling_of_a_long_clip_is_bounded_by_the_budget(image_processor, tmp_path: Path) -> None:
    """fps sampling counts the frames first: 24 frames at 8 fps sampled at 8 fps, over a 10-frame budget."""
    clip = write_clip(tmp_path / "clip.mp4", clip_frames(24), fps=8)
    processor = LlavaViTProcessor(image_processor, max_video_bytes=10 * 64 * 64 * 3)
    with pytest.raises(ValueError, match=r"the video: 24 frames of 64x64 decode to .*raise max_video_bytes$"):
        processor(videos=clip, fps=8)
    assert processor(videos=clip, fps=3)["pixel_values"].shape[2] == 9


def test_the_budgets_come_from_processor_config_json(image_processor, tmp_path: Path) -> None:
    folder = tmp_path / "proc"
    LlavaViTProcessor(image_processor, max_frame_pixels=1000).save_pretrained(folder)
    saved = json.loads((folder / "processor_config.json").read_text())
    assert saved["max_frame_pixels"] == 1000
    loaded = LlavaViTProcessor.from_pretrained(folder)
    assert (loaded.max_frame_pixels, loaded.max_video_bytes) == (1000, MAX_VIDEO_BYTES)
    with pytest.raises(ValueError, match=r"^a video: a frame of 64x64 pixels is over the budget of 1000 pixels; "):
        loaded(videos=clip_frames(4), num_frames=4)
    with pytest.raises(ValueError, match="max_video_bytes must be a positive integer, got 0"):
        LlavaViTProcessor(image_processor, max_video_bytes=0)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds no pixels (PIL opens it lazily: the size is all it reads)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


_ARRAY_SCRIPT = """
import json, sys
import numpy as np
from PIL import Image
from transformers import CLIPImageProcessor
from llava_vit.model.processing_llava_vit import LlavaViTProcessor
processor = LlavaViTProcessor(CLIPImageProcessor())
views = {
    # 64 frames of 20000 x 20000 that take no memory until something copies them (77 GB if it did)
    "array": np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (64, 20000, 20000, 3)),
    # 16 frames of 3000 x 3000 (27 MB each as views; 432 MB decoded: over a 256 MiB budget)
    "frames": [np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (3000, 3000, 3))] * 16,
    # PIL images that declare 9000 x 9000 and were never decoded
    "pil": [Image.open(sys.argv[1])] * 2,
}
budget = {"frames": 256 * 2**20}
results = {}
for name, video in views.items():
    tight = LlavaViTProcessor(CLIPImageProcessor(), max_video_bytes=budget[name]) if name in budget else processor
    try:
        tight(videos=video, num_frames=2 if name == "pil" else 16)
        results[name] = "accepted"
    except ValueError as error:
        results[name] = str(error)
print(json.dumps(results))
"""


def test_frames_and_arrays_over_the_budget_are_refused_before_they_are_copied(space: Workspace) -> None:
    png = space.inputs / "huge.png"
    png.write_bytes(_png_header(9000, 9000))
    space.freeze()
    code, out, err, _ = run_limited([sys.executable, "-c", _ARRAY_SCRIPT, str(png)], space.work, space.home)
    assert code == 0, err
    results = json.loads(out)
    assert results["array"] == (
        f"a video: a frame of 20000x20000 pixels is over the budget of {MAX_FRAME_PIXELS} pixels; pass a smaller "
        "video, or raise max_frame_pixels if this machine has the memory"
    )
    assert results["frames"] == (
        "a video: 16 frames of 3000x3000 decode to 412 MiB, over the budget of 256 MiB; sample fewer frames, or raise "
        "max_video_bytes"
    )
    assert results["pil"].startswith("a video: a frame of 9000x9000 pixels is over the budget")
    space.assert_nothing_outside_changed()


# --- 3. legacy .pth checkpoints --------------------------------------------------------------------------------
def _legacy_pth(path: Path) -> bytes:
    """The tiny reference weights as a legacy (non-zip) torch checkpoint."""
    import torch

    torch.save(load_file(weights_path(ARCH)), path, _use_new_zipfile_serialization=False)
    return path.read_bytes()


def _pickle_ends(data: bytes, count: int) -> list[int]:
    """Where each of the first `count` pickles of a legacy file ends."""
    import io

    stream, ends = io.BytesIO(data), []
    for _ in range(count):
        for _ in pickletools.genops(stream):
            pass
        ends.append(stream.tell())
    return ends


def claim_storage_bytes(data: bytes, nbytes: int) -> bytes:
    """The first storage's element count in the main pickle rewritten to claim `nbytes` (float32 elements)."""
    import io

    start = _pickle_ends(data, 3)[2]
    ops = list(pickletools.genops(io.BytesIO(data[start:])))
    persid = next(i for i, (op, _, _) in enumerate(ops) if op.name == "BINPERSID")
    back = persid - 1 - (ops[persid - 1][0].name in ("BINPUT", "LONG_BINPUT"))
    assert [op.name for op, _, _ in ops[back - 1 : back + 1]] == ["NONE", "TUPLE"]
    numel_op, _, numel_at = ops[back - 2]
    assert numel_op.name.startswith("BININT")
    end = ops[back - 1][2]
    count = (nbytes // 4).to_bytes(8, "little")
    patched = b"\x8a\x08" + count  # LONG1 with 8 bytes
    return data[: start + numel_at] + patched + data[start + end :]


def binbytes_claim(data: bytes) -> bytes:
    """The main pickle replaced by one that claims a 16 GiB byte string (a reader must not allocate it)."""
    start = _pickle_ends(data, 3)[2]
    return data[:start] + b"\x80\x02\x8e" + struct.pack("<Q", 16 * GiB) + b"xx"


LEGACY_CASES = {
    "claims-64-GB": (
        lambda data: claim_storage_bytes(data, 64 * 10**9),
        "its storages claim 64.0 GB but the file holds",
    ),
    # within this machine's memory but not the process's limit: a reader that allocated first would fail
    "claims-3-GiB": (lambda data: claim_storage_bytes(data, 3 * GiB), "its storages claim 3.2 GB but the file holds"),
    "truncated-data": (lambda data: data[:-1000], "truncated legacy torch checkpoint (storage"),
    "truncated-pickle": (lambda data: data[: _pickle_ends(data, 3)[2] + 200], "truncated or damaged legacy torch"),
    "claims-16-GiB-bytes": (binbytes_claim, "truncated or damaged legacy torch checkpoint"),
}


@pytest.mark.parametrize("case", list(LEGACY_CASES))
def test_export_of_a_hostile_legacy_checkpoint_is_one_line(space: Workspace, case: str) -> None:
    damage, message = LEGACY_CASES[case]
    good = _legacy_pth(space.inputs / "good.pth")
    bad = space.inputs / "bad.pth"
    bad.write_bytes(damage(good))
    space.freeze()
    out = space.work / "out"
    code, _, err = llava_vit(
        "export", str(out), "--config", CONFIG, "--weights", str(bad), cwd=space.work, home=space.home
    )
    assert code == 1, err
    assert_one_line(err, str(bad), message, "re-save it")
    assert not out.exists() and os.listdir(space.work) == []
    space.assert_nothing_outside_changed()


def test_a_good_legacy_checkpoint_exports_under_the_same_limit(space: Workspace) -> None:
    good = space.inputs / "good.pth"
    _legacy_pth(good)
    out = space.work / "out"
    code, _, err = llava_vit(
        "export", str(out), "--config", CONFIG, "--weights", str(good), cwd=space.work, home=space.home
    )
    assert code == 0, err
    exported = load_file(out / "model.safetensors")
    reference = load_file(weights_path(ARCH))
    assert set(exported) == set(reference)
    assert all(exported[name].float().equal(reference[name].float()) for name in reference)


# --- 4. repo ids match in full ----------------------------------------------------------------------------------
def test_is_repo_id_matches_in_full() -> None:
    assert is_repo_id("org/name")
    for bad in ("org/name\n", "org/name\r\n", "\norg/name", "org/na\nme"):
        assert not is_repo_id(bad), repr(bad)


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "org/name\n"],
        ["export", "out", "--config", CONFIG, "--repo-id", "org/name\n"],
        ["audit", "org/name\n"],
    ],
    ids=["verify", "export", "audit"],
)
def test_a_repo_id_with_a_trailing_newline_is_refused(space: Workspace, argv: list[str]) -> None:
    space.freeze()
    code, out, err = llava_vit(*argv, cwd=space.work, home=space.home)
    assert code == 2, out + err
    assert_one_line(err, "org/name")
    assert os.listdir(space.work) == []
    space.assert_nothing_outside_changed()


# --- 5. .copier-answers.yml names the llava-vit template ------------------------------------------------------
def _answers(repo: Path, source: object) -> None:
    (repo / ANSWERS_FILE).write_text(yaml.safe_dump({"_commit": "v1.0.0", "_src_path": source, "repo_id": "acme/tiny"}))


def evil_template(folder: Path, marker: Path) -> Path:
    """A copier template whose task writes `marker`: what `copier update` would run."""
    folder.mkdir()
    (folder / "copier.yml").write_text(yaml.safe_dump({"_tasks": [f"touch {marker}"], "repo_id": {"type": "str"}}))
    return folder


def tampered_template(folder: Path, marker: Path) -> Path:
    """llava-vit's own template with one task added."""
    shutil.copytree(template_path() / "template", folder / "template")
    text = (template_path() / "copier.yml").read_text()
    (folder / "copier.yml").write_text(text.replace("_tasks:\n", f"_tasks:\n  - touch {marker}\n", 1))
    return folder


def test_check_reports_answers_that_name_another_template(space: Workspace, repo: Path) -> None:
    marker = space.work / MARKER
    template = evil_template(space.inputs / "evil", marker)
    _answers(repo, str(template))
    space.freeze()
    code, _, err = llava_vit("check", str(repo), cwd=space.work, home=space.home)
    assert code == 1, err
    assert_one_line(
        err,
        f"llava-vit check: .copier-answers.yml: _src_path '{template}' does not hold the installed llava-vit's "
        "template",
        "`copier update` would run that template's tasks",
        "point _src_path at a llava-vit checkout",
    )
    assert not marker.exists()
    space.assert_nothing_outside_changed()
    _answers(repo, str(template_path()))
    code, _, err = llava_vit("check", str(repo), cwd=space.work, home=space.home)
    assert code == 0, err


@pytest.mark.parametrize(
    ("source", "passes"),
    [
        ("installed", True),
        ("relative", True),
        ("file-url", True),
        ("tampered", False),
        ("evil", False),
        ("missing", False),
        ("copier-yaml-beside", False),
        ("gh:evil/llava-vit", False),
        ("https://example.com/evil/llava-vit.git", False),
        ("git@github.com:evil/llava-vit.git", False),
        (17, False),
        ("", False),
    ],
)
def test_answers_rule(tmp_path: Path, source: object, passes: bool) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    marker = tmp_path / MARKER
    installed = template_path()
    if source == "copier-yaml-beside":
        beside = shutil.copytree(installed / "template", tmp_path / "beside" / "template")
        shutil.copy(installed / "copier.yml", beside.parent / "copier.yml")
        (beside.parent / "copier.yaml").write_text(f"_tasks: ['touch {marker}']\n")
    named = {
        "installed": str(installed),
        "relative": os.path.relpath(installed, repo),
        "file-url": installed.as_uri(),
        "tampered": str(tampered_template(tmp_path / "tampered", marker)) if source == "tampered" else "",
        "evil": str(evil_template(tmp_path / "evil", marker)) if source == "evil" else "",
        "missing": str(tmp_path / "nowhere"),
        "copier-yaml-beside": str(tmp_path / "beside"),
    }
    _answers(repo, named.get(source, source) if isinstance(source, str) else source)
    problems = template_source_problems(repo)
    assert problems == [] if passes else (len(problems) == 1 and "\n" not in problems[0]), problems
    if not passes:
        assert problems[0].startswith(".copier-answers.yml: _src_path ")
        assert "delete it" in problems[0]
    assert not marker.exists()


def test_answers_without_a_source_or_unreadable(tmp_path: Path) -> None:
    assert template_source_problems(tmp_path) == []
    (tmp_path / ANSWERS_FILE).write_text("repo_id: acme/tiny\n")
    assert template_source_problems(tmp_path) == []
    (tmp_path / ANSWERS_FILE).write_text("a: &x [1]\nb: *x\n")
    (problem,) = template_source_problems(tmp_path)
    assert problem.startswith(".copier-answers.yml: cannot be read (uses a YAML alias")
    (tmp_path / ANSWERS_FILE).unlink()
    (tmp_path / ANSWERS_FILE).symlink_to(tmp_path / "elsewhere.yml")
    (problem,) = template_source_problems(tmp_path)
    assert "symlink" in problem


def test_the_video_budgets_match_the_processor_and_a_repo_cannot_raise_them(tmp_path: Path) -> None:
    """check refuses a processor_config.json that raises a budget above the processor's own default (a hostile
    repo switching off the protection); the contract's ceilings are the shipped processor's defaults."""
    from llava_vit.checks.check import processor_config_problems
    from llava_vit.model import processing_llava_vit
    from llava_vit.repo_contract import VIDEO_BUDGETS, processor_config

    assert VIDEO_BUDGETS == {
        "max_frame_pixels": processing_llava_vit.MAX_FRAME_PIXELS,
        "max_video_bytes": processing_llava_vit.MAX_VIDEO_BYTES,
    }
    for key, ceiling in VIDEO_BUDGETS.items():
        for value, ok in ((ceiling, True), (ceiling // 2, True), (ceiling + 1, False), (0, False), ("1", False)):
            (tmp_path / "processor_config.json").write_text(json.dumps({**processor_config(14), key: value}))
            problems = processor_config_problems(tmp_path, 14)
            assert (not problems) == ok, (key, value, problems)
