"""Bad input at every entry point ends in one clear message, a non-zero exit and no partial writes.

The corpus is a table: one `Case` per line. Each runs `llava-vit ARGV` in a fresh folder (in-process through
`llava_vit.cli.main`, or as a real process where the case needs one: resource limits), after `setup` has
made its inputs there. It must exit with `code`, print `message` (a regex) on stderr without a traceback,
and leave none of `absent` (nor any `.NAME.tmp-*` staging folder) behind. `llava-vit audit` prints its
findings as a report on stdout: its cases say `report=True`.

Covered elsewhere, not repeated here: checkpoint key/shape/dtype mismatches, weights-only pickles that name a
class, unknown presets, bad sizes/dtypes/repo ids, a non-empty OUT and Ctrl-C during export (test_export.py);
NaN/Inf weights (export warns: test_export.py; the full check and verify fail: test_hooks.py); model inputs
(pixel_values shape, visible_indices dtype/shape/range/empty, patch_positions shape/negative: test_model.py);
uncommitted changes, no git repo, an unreachable Hub, no token (test_publish.py, test_upload.py); a busy port
(test_local_hub.py).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from published_repos import export_repo
from reference import REFERENCE, architecture, weights_path
from safetensors.torch import load_file

from llava_vit import LlavaViTConfig
from llava_vit.cli import main
from llava_vit.export import export_model

ARCH = "tiny_ln_p14"
CONFIG = str(REFERENCE / ARCH / "architecture.json")
WEIGHTS = str(weights_path(ARCH))
MARKER = "pwned"


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def truncated(folder: Path) -> None:
    (folder / "w.safetensors").write_bytes(Path(WEIGHTS).read_bytes()[:5000])


class RunsCode:
    """A pickle that runs a shell command when unpickled without weights_only (it must never be)."""

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {MARKER}",)


def code_pickle(folder: Path) -> None:
    torch.save({"model": RunsCode()}, folder / "evil.pth")


def pickle_of(value: object) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        torch.save(value, folder / "w.pth")

    return setup


def config(**fields: object) -> Callable[[Path], None]:
    return write("c.json", json.dumps({**architecture(ARCH), **fields}))


def exported(damage: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """A good export of the tiny model in `repo`, then `damage` done to it."""

    def setup(folder: Path) -> None:
        export_model(folder / "repo", LlavaViTConfig(**architecture(ARCH)), WEIGHTS, max_shard_size="100KB")
        if damage is not None:
            damage(folder / "repo")

    return setup


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(repo: Path) -> None:
        data = json.loads((repo / name).read_text())
        change(data)
        (repo / name).write_text(json.dumps(data))

    return damage


def shard(repo: Path, number: int) -> Path:
    return next(repo.glob(f"model-{number:05d}-of-*.safetensors"))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def drop_geometry(data: dict) -> None:
    for key in ("hidden_size", "intermediate_size", "num_attention_heads"):
        del data[key]


def committed_repo(folder: Path) -> None:
    export_repo(folder / "repo", "acme/tiny")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(folder / "remote.git")], check=True)


def no_git_lfs_path(folder: Path) -> None:
    """A bin folder with git and python only: git-lfs is "not installed"."""
    committed_repo(folder)
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for tool in ("git", "python3", "sh"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    code: int
    message: str
    setup: Callable[[Path], None] | None = None
    absent: tuple[str, ...] = ("out",)
    env: dict[str, str] = field(default_factory=dict)  # `{tmp}` in values and in argv is the case's folder
    mount: str | None = None  # tmpfs options for a folder `mnt` (root only; skipped where mount is refused)
    file_size_limit: int | None = None  # RLIMIT_FSIZE in bytes (runs as a real process)
    report: bool = False  # the message is part of the command's report on stdout (audit), not an error line


E = ["export", "out", "--config", CONFIG, "--weights"]
CASES = [
    # export: weights files
    Case(
        "truncated-safetensors",
        [*E, "w.safetensors"],
        1,
        r"w\.safetensors: not a readable safetensors file .*truncated",
        truncated,
    ),
    Case(
        "garbage-safetensors",
        [*E, "w.safetensors"],
        1,
        r"not a readable safetensors file",
        write("w.safetensors", "hello"),
    ),
    Case("index-not-json", [*E, "m.index.json"], 1, r"not a readable safetensors index", write("m.index.json", "{")),
    Case("index-without-map", [*E, "m.index.json"], 1, r"needs a 'weight_map'", write("m.index.json", "{}")),
    Case(
        "index-missing-shard",
        [*E, "m.index.json"],
        1,
        r"lists shards that are not there: .*gone\.safetensors",
        write("m.index.json", '{"weight_map": {"a": "gone.safetensors"}}'),
    ),
    Case(
        "folder-without-weights",
        [*E, "empty"],
        2,
        r"folder without model\.safetensors\.index\.json",
        write("empty/notes.txt", ""),
    ),
    Case("pth-not-a-state-dict", [*E, "w.pth"], 1, r"expected a state dict .* found a list", pickle_of([1, 2])),
    Case("pth-non-tensors", [*E, "w.pth"], 1, r"1 entries that are not tensors: lr", pickle_of({"lr": 0.1})),
    Case(
        "pth-not-torch", [*E, "w.pth"], 1, r"is not a torch checkpoint .*git lfs pull", write("w.pth", "not a pickle")
    ),
    Case(
        "pickle-runs-code",
        [*E, "evil.pth"],
        1,
        r"not a plain weights file: .*refused it \(.*posix\.system.*does not run arbitrary pickled code",
        code_pickle,
        ("out", MARKER),
    ),
    Case("unknown-suffix", [*E, "w.npz"], 2, r"unknown format '\.npz'", write("w.npz", "x")),
    # export: config files and geometry
    Case(
        "config-not-json",
        ["export", "out", "--config", "c.json"],
        2,
        r"c\.json is not valid JSON",
        write("c.json", "{"),
    ),
    Case(
        "config-not-object",
        ["export", "out", "--config", "c.json"],
        2,
        r"must hold a JSON object .* found list",
        write("c.json", "[]"),
    ),
    Case(
        "config-other-model",
        ["export", "out", "--config", "c.json"],
        2,
        r"model_type 'bert'",
        config(model_type="bert"),
    ),
    Case(
        "heads-do-not-divide",
        ["export", "out", "--config", "c.json"],
        2,
        r"hidden_size \(128\) must be divisible by num_attention_heads \(3\)",
        config(num_attention_heads=3),
    ),
    Case(
        "head-dim-not-32",
        ["export", "out", "--config", "c.json"],
        2,
        r"head_dim .* = 16 must be divisible by 32",
        config(num_attention_heads=8),
    ),
    Case(
        "image-not-divisible",
        ["export", "out", "--config", "c.json"],
        2,
        r"image_size \(30\) must be divisible by patch_size \(14\)",
        config(image_size=30),
    ),
    Case(
        "negative-size",
        ["export", "out", "--config", "c.json"],
        2,
        r"num_hidden_layers must be a positive integer, got -1",
        config(num_hidden_layers=-1),
    ),
    Case(
        "string-size",
        ["export", "out", "--config", "c.json"],
        2,
        r"hidden_size must be a positive integer, got '128'",
        config(hidden_size="128"),
    ),
    Case("zero-shard-size", ["export", "out", "--preset", "small", "--max-shard-size", "0"], 2, r"must be positive"),
    Case(
        "repo-id-characters",
        ["export", "out", "--preset", "small", "--repo-id", "acme/my vit!"],
        2,
        r"invalid --repo-id 'acme/my vit!'",
    ),
    Case("repo-id-three-parts", ["export", "out", "--preset", "small", "--repo-id", "a/b/c"], 2, r"invalid --repo-id"),
    Case(
        "repo-id-double-dash", ["export", "out", "--preset", "small", "--repo-id", "acme--x/y"], 2, r"no '--' or '\.\.'"
    ),
    Case("verify-repo-id-trailing-dot", ["verify", "acme/vit."], 2, r"neither an existing folder nor a Hub repo id"),
    # export: destinations
    Case(
        "destination-is-a-file",
        ["export", "out", "--config", CONFIG],
        2,
        r"out exists and is not a folder",
        write("out", "x"),
        (),
    ),
    Case(
        "destination-under-a-file",
        ["export", "f/out", "--config", CONFIG],
        2,
        r"f is a file, so .*out cannot be created",
        write("f", "x"),
        ("f/out",),
    ),
    Case(
        "destination-not-permitted",
        ["export", "/sys/kernel/llava-vit-out", "--config", CONFIG],
        1,
        r"/sys/kernel/\.llava-vit-out\.tmp-.*(Operation not permitted; .*writable|Permission denied; .*permissions)",
        absent=("/sys/kernel/llava-vit-out",),
    ),
    Case(
        "destination-read-only",
        ["export", "mnt/out", "--config", CONFIG],
        1,
        r"Read-only file system; the file system is read-only",
        absent=("mnt/out",),
        mount="ro,size=1m",
    ),
    Case(
        "disk-full",
        ["export", "mnt/out", "--config", CONFIG, "--weights", WEIGHTS],
        1,
        r"export to .*mnt/out failed, nothing was written: .*No space left on device; the disk is full",
        absent=("mnt/out",),
        mount="size=64k",
    ),
    Case(
        "file-size-limit",
        [*E, WEIGHTS],
        1,
        r"export to .*out failed, nothing was written: File too large; .*ulimit -f",
        file_size_limit=100_000,
    ),
    # sync and check
    Case("sync-not-a-folder", ["sync", "afile"], 2, r"afile is not a folder", write("afile", "x"), ()),
    Case(
        "sync-config-not-json",
        ["sync", "r"],
        1,
        r"r/config\.json: not valid JSON",
        write("r/config.json", "{"),
        ("r/modeling_llava_vit.py",),
    ),
    Case(
        "sync-config-not-object",
        ["sync", "r"],
        1,
        r"r/config\.json: must hold a JSON object",
        write("r/config.json", "[1]"),
        ("r/modeling_llava_vit.py",),
    ),
    Case("check-not-a-folder", ["check", "nowhere"], 1, r"nowhere is not a folder"),
    Case(
        "check-bad-geometry",
        ["check", "repo"],
        1,
        r"config\.json: hidden_size \(128\) must be divisible by num_attention_heads \(3\)",
        exported(edit_json("config.json", lambda d: d.update(num_attention_heads=3))),
    ),
    Case(
        "check-config-lacks-fields",
        ["check", "repo"],
        1,
        r"wrong shapes .*config\.json and the weights disagree",
        exported(edit_json("config.json", drop_geometry)),
    ),
    Case(
        "check-truncated-shard",
        ["check", "repo"],
        1,
        r"model-00001-of-\d+\.safetensors: is truncated",
        exported(lambda r: truncate(shard(r, 1))),
    ),
    Case(
        "check-index-missing-shard",
        ["check", "repo"],
        1,
        r"model-00002-of-\d+\.safetensors: listed in model\.safetensors\.index\.json but missing",
        exported(lambda r: shard(r, 2).unlink()),
    ),
    Case(
        "check-index-not-json",
        ["check", "repo"],
        1,
        r"model\.safetensors\.index\.json: not a valid index",
        exported(lambda r: (r / "model.safetensors.index.json").write_text("{")),
    ),
    # verify, audit, guard
    Case("verify-bad-target", ["verify", "acme/my vit"], 2, r"neither an existing folder nor a Hub repo id"),
    Case("audit-bad-repo-id", ["audit", "a/b/c"], 2, r"neither a folder nor a Hub repo id"),
    Case(
        "audit-no-code-files",
        ["audit", "r"],
        1,
        r"configuration_llava_vit\.py, modeling_llava_vit\.py, processing_llava_vit\.py missing",
        write("r/config.json", "{}"),
        report=True,
    ),
    Case("guard-outside-repo", ["guard"], 2, r"not the root of a git repository"),
    # publish
    Case("publish-not-a-folder", ["publish", "nowhere"], 2, r"nowhere is not a folder"),
    Case(
        "publish-bad-local-hub-id",
        ["publish", "repo", "--local-hub", "--hub-dir", "hub", "--repo-id", "../x"],
        2,
        r"'\.\./x' is not a repo id",
        committed_repo,
        ("hub/models",),
    ),
    Case(
        "publish-without-git-lfs",
        ["publish", "repo", "--remote", "file://{tmp}/remote.git"],
        1,
        r"git-lfs is not installed: install it .*\n.*full check failed .*nothing was pushed",
        no_git_lfs_path,
        ("remote.git/refs/heads/main",),
        {"PATH": "{tmp}/bin"},
    ),
    # local hub: olah's environment
    Case(
        "olah-venv-broken",
        ["local-hub", "start", "--dir", "hub"],
        1,
        r"olah-venv exists but is not a virtual environment with olah; remove it",
        write("olah-venv/bin/README", "no python here"),
        ("hub/local-hub.json",),
        {"LLAVA_VIT_OLAH_VENV": "{tmp}/olah-venv"},
    ),
    # copier questions (through `llava-vit new`, which runs the template's validators)
    Case(
        "new-bad-repo-id",
        ["new", "out", "--repo-id", "acme/my vit"],
        1,
        r"Validation error for question 'repo_id': 'acme/my vit' is not a Hub repo id",
    ),
    Case(
        "new-image-not-divisible",
        ["new", "out", "--repo-id", "a/b", "--preset", "small", "--image-size", "100"],
        1,
        r"question 'image_size': image_size \(100\) must be divisible by patch_size \(16\)",
    ),
    Case(
        "new-head-dim",
        [
            "new",
            "out",
            "--repo-id",
            "a/b",
            "--preset",
            "custom",
            "--answer",
            "hidden_size=96",
            "--answer",
            "num_attention_heads=2",
        ],
        1,
        r"question 'num_attention_heads': head_dim = .* = 48 must be divisible by 32",
    ),
    Case(
        "new-missing-weights",
        ["new", "out", "--repo-id", "a/b", "--answer", "weights=nope.pth"],
        1,
        r"question 'weights': nope\.pth: no such checkpoint",
    ),
    Case(
        "new-bad-license",
        ["new", "out", "--repo-id", "a/b", "--license", "My License"],
        1,
        r"question 'license': 'My License' is not a Hub license id",
    ),
    Case(
        "new-dest-is-a-file",
        ["new", "out", "--repo-id", "a/b"],
        2,
        r"out already exists and is not empty",
        write("out", "x"),
        (),
    ),
]


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _substitute(value: str, folder: Path) -> str:
    """`{tmp}` in arguments and environment values is the case's folder."""
    return value.replace("{tmp}", str(folder))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if case.mount is not None:
        _mount_tmpfs(tmp_path / "mnt", case.mount)
    try:
        if case.setup is not None:
            case.setup(tmp_path)
        before = sorted(os.listdir(tmp_path))
        argv = [_substitute(arg, tmp_path) for arg in case.argv]
        for key, value in case.env.items():
            monkeypatch.setenv(key, _substitute(value, tmp_path))
        if case.file_size_limit is None:
            code = main(argv)
            out, err = capsys.readouterr()
        else:
            process = subprocess.run(
                [sys.executable, "-m", "llava_vit", *argv],
                capture_output=True,
                text=True,
                preexec_fn=_limit_file_size(case.file_size_limit),
            )
            code, out, err = process.returncode, process.stdout, process.stderr
        assert code == case.code, out + err
        assert re.search(case.message, out if case.report else err), out + err
        assert "Traceback" not in err, err
        assert len([line for line in err.splitlines() if ": error: " in line]) <= 1, err
        for name in case.absent:
            assert not (tmp_path / name).exists(), f"{name} was left behind"
        staging = [name for name in os.listdir(tmp_path) if ".tmp-" in name]
        assert not staging and sorted(os.listdir(tmp_path)) == before, "nothing created next to the inputs"
    finally:
        if case.mount is not None:
            leftovers = os.listdir(tmp_path / "mnt")
            subprocess.run(["umount", str(tmp_path / "mnt")], check=True)
            assert leftovers == [], f"the full or read-only folder kept {leftovers}"


def test_corpus_ids_are_unique() -> None:
    assert len({case.id for case in CASES}) == len(CASES)


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch) -> None:
    """--debug is the way to see where an error came from: the exception propagates."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(Exception, match="not valid JSON"):
        main(["--debug", "export", "out", "--config", "c.json"])


def test_weights_survive_a_refused_export(tmp_path: Path, capsys) -> None:
    """--force over the checkpoint's own folder is refused before anything is read or written."""
    out = export_model(tmp_path / "out", LlavaViTConfig(**architecture(ARCH)), WEIGHTS)
    before = (out / "model.safetensors").read_bytes()
    (tmp_path / "c.json").write_text(json.dumps(architecture(ARCH)))
    assert main(["export", str(out), "--config", str(tmp_path / "c.json"), "--weights", str(out), "--force"]) == 2
    assert f"{out} is the input {out}: replacing it could delete that input" in capsys.readouterr().err
    inner = out / "config.json"
    assert main(["export", str(tmp_path), "--config", str(inner), "--force"]) == 2
    assert f"{tmp_path} holds the input {inner}" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    assert set(load_file(out / "model.safetensors")) == set(load_file(WEIGHTS))


def test_sync_on_a_read_only_repo_is_one_line_and_changes_nothing(tmp_path: Path, capsys) -> None:
    """An OSError that no command anticipates (here EROFS under sync) still ends in one line from the CLI."""
    _mount_tmpfs(tmp_path / "mnt", "size=1m")
    try:
        repo = tmp_path / "mnt" / "repo"
        repo.mkdir()
        (repo / "config.json").write_text("{}")
        (repo / "modeling_llava_vit.py").write_text("# an old copy\n")
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "mnt")], check=True)
        assert main(["sync", str(repo)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("llava-vit sync: error: ") and len(err.strip().splitlines()) == 1, err
        assert "Read-only file system; the file system is read-only: choose a writable destination" in err
        assert sorted(os.listdir(repo)) == ["config.json", "modeling_llava_vit.py"]
        assert (repo / "modeling_llava_vit.py").read_text() == "# an old copy\n"
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], check=True)
