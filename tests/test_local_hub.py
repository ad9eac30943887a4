"""The local Hub (olah over git repos): lifecycle, and transformers loading a pushed repo from it like from the Hub."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from published_repos import ARCH, commit_all, export_repo, git, load_outputs, scaled_weights
from reference import architecture

from llava_vit import LlavaViTConfig
from llava_vit.errors import LlavaViTError, UsageError
from llava_vit.export import export_model
from llava_vit.hub.local_hub import STATE_FILE, LocalHub

pytestmark = pytest.mark.slow  # end-to-end through real tools: `python -m pytest -m 'not slow'` skips it

REPO_ID = "tiny-org/tiny-vit"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def hub(local_hub: LocalHub) -> LocalHub:
    return local_hub


@pytest.fixture(scope="module")
def pushed(hub: LocalHub, tmp_path_factory) -> dict[str, str]:
    """An exported model pushed to the hub twice: `first` (pinned later by revision) and `second` (main)."""
    work = tmp_path_factory.mktemp("src")
    source = work / "tiny-vit"
    first = export_repo(source, REPO_ID)
    hub.create_repo(REPO_ID)
    git(source, "remote", "add", "hub", hub.remote_url(REPO_ID))
    git(source, "push", "-q", "hub", "main")
    pinned = work / "pinned"
    git(work, "clone", "-q", str(source), str(pinned))
    halved = export_model(
        work / "halved", LlavaViTConfig(**architecture(ARCH)), scaled_weights(work, 0.5), repo_id=REPO_ID
    )
    shutil.copyfile(halved / "model.safetensors", source / "model.safetensors")
    second = commit_all(source, "Halve the weights")
    git(source, "push", "-q", "hub", "main")
    return {"source": str(source), "pinned": str(pinned), "first": first, "second": second}


def test_push_lands_lfs_objects_where_olah_reads_them(hub: LocalHub, pushed: dict[str, str]) -> None:
    repo = hub.repo_path(REPO_ID)
    pointer = git(repo, "show", f"{pushed['first']}:model.safetensors")
    oid = pointer.split("oid sha256:")[1].split()[0]
    assert (repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).is_file()
    info = _get_json(f"{hub.endpoint}/api/models/{REPO_ID}/revision/main")
    assert info["sha"] == pushed["second"]
    assert {"config.json", "model.safetensors", "modeling_llava_vit.py"} <= {s["rfilename"] for s in info["siblings"]}


def test_transformers_loads_from_the_hub_like_from_the_folder(
    hub: LocalHub, pushed: dict[str, str], clean_python: Path, tmp_path: Path
) -> None:
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf-home")}
    from_hub = load_outputs(clean_python, REPO_ID, env=env)
    from_folder = load_outputs(clean_python, pushed["source"], env=env)
    assert from_hub["module"].startswith("transformers_modules.")
    assert from_hub["processor_crop"] == from_folder["processor_crop"] == architecture(ARCH)["image_size"]
    assert torch.equal(from_hub["last_hidden_state"], from_folder["last_hidden_state"])

    pinned = load_outputs(clean_python, REPO_ID, revision=pushed["first"], env=env)
    pinned_folder = load_outputs(clean_python, pushed["pinned"], env=env)
    assert torch.equal(pinned["last_hidden_state"], pinned_folder["last_hidden_state"])
    assert not torch.equal(pinned["last_hidden_state"], from_hub["last_hidden_state"])
    snapshots = tmp_path / "hf-home" / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots"
    assert {p.name for p in snapshots.iterdir()} == {pushed["first"], pushed["second"]}


def test_audit_by_repo_id_reads_the_hub_and_names_the_commit_to_pin(
    hub: LocalHub, pushed: dict[str, str], tmp_path: Path
) -> None:
    """What the model card tells a cautious user to run before trust_remote_code=True, against a Hub."""
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf-home")}
    env.pop("HF_HUB_OFFLINE", None)
    for revision, commit in ((None, pushed["second"]), (pushed["first"], pushed["first"])):
        argv = [sys.executable, "-m", "llava_vit", "audit", REPO_ID, *(["--revision", revision] if revision else [])]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith(f"audit of {REPO_ID} at commit {commit}\n")
        assert "modeling_llava_vit.py: identical to llava-vit" in result.stdout
        assert f'revision="{commit}"' in result.stdout.splitlines()[-1]
    missing = subprocess.run(
        [sys.executable, "-m", "llava_vit", "audit", "tiny-org/no-such-vit"], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    assert missing.stderr.startswith("llava-vit audit: error: ") and len(missing.stderr.strip().splitlines()) == 1


def _head(url: str) -> tuple[int, str | None]:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-error-code")


def test_answers_like_the_hub_for_missing_files_revisions_and_repos(hub: LocalHub, pushed: dict[str, str]) -> None:
    base = f"{hub.endpoint}/{REPO_ID}/resolve"
    assert _head(f"{base}/main/config.json") == (200, None)
    assert _head(f"{base}/{pushed['first']}/config.json") == (200, None)
    assert _head(f"{base}/main/tokenizer_config.json") == (404, "EntryNotFound")
    tree = f"{hub.endpoint}/api/models/{REPO_ID}/tree/main"
    assert _head(f"{tree}/additional_chat_templates") == (404, "EntryNotFound")  # AutoProcessor lists it on 5.x
    assert _head(f"{base}/no-such-branch/config.json") == (404, "RevisionNotFound")
    assert _head(f"{hub.endpoint}/no-org/no-repo/resolve/main/config.json") == (401, "RepoNotFound")
    assert _get_json(f"{hub.endpoint}/api/models/{REPO_ID}")["sha"] == pushed["second"]


def test_create_repo_accepts_pushes_to_its_branch_and_is_idempotent(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path)
    repo = hub.create_repo("org/name")
    assert repo == tmp_path.resolve() / "models" / "org" / "name"
    assert git(repo, "config", "receive.denyCurrentBranch") == "updateInstead"
    (repo / "marker").write_text("kept")
    assert hub.create_repo("org/name") == repo and (repo / "marker").read_text() == "kept"
    assert hub.remote_url("org/name") == repo.as_uri()
    with pytest.raises(UsageError, match="is not a repo id"):
        hub.create_repo("../escape")
    with pytest.raises(UsageError, match="is not a repo id"):
        hub.create_repo("just-a-name")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llava_vit", *args], capture_output=True, text=True, timeout=120)


def test_cli_start_status_stop(tmp_path: Path) -> None:
    try:
        started = _cli("local-hub", "start", "--dir", str(tmp_path))
        assert started.returncode == 0, started.stderr
        state = json.loads((tmp_path / STATE_FILE).read_text())
        assert started.stdout.splitlines()[-1] == f"export HF_ENDPOINT=http://127.0.0.1:{state['port']}"
        assert _port_open(state["port"])
        # Served over the Hub API: an unknown repo is a 401, as on the Hub without a token.
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{state['port']}/api/models/no/such/revision/main", timeout=30)
        assert missing.value.code == 401
        status = _cli("local-hub", "status", "--dir", str(tmp_path))
        assert status.returncode == 0 and f"pid {state['pid']}" in status.stdout
    finally:
        stopped = _cli("local-hub", "stop", "--dir", str(tmp_path))
    assert stopped.returncode == 0, stopped.stderr
    assert not _port_open(state["port"])
    assert not (tmp_path / STATE_FILE).exists()
    assert LocalHub.find_running(tmp_path) is None


@pytest.mark.parametrize("pid", [-1, 0, 2**31, 10**30])
def test_a_state_file_naming_no_server_is_stale(tmp_path: Path, pid: int) -> None:
    """A damaged local-hub.json names a process group (0, -1: every process) or no possible PID: `stop` would
    signal that, so it is stale: removed, never trusted."""
    (tmp_path / STATE_FILE).write_text(json.dumps({"pid": pid, "port": 1, "dir": str(tmp_path)}))
    assert LocalHub.find_running(tmp_path) is None
    assert not (tmp_path / STATE_FILE).exists()


def test_start_refuses_a_busy_port_and_a_second_server(hub: LocalHub, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"port {hub.port} .* already in use"):
        LocalHub(tmp_path, port=hub.port).start()
    with pytest.raises(LlavaViTError, match="already serves"):
        LocalHub(hub.root).start()
    assert LocalHub.find_running(hub.root).pid == hub.pid
