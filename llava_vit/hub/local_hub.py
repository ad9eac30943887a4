"""A local Hugging Face Hub for rehearsals: `olah` serving plain git repos through the Hub's HTTP API.

The Hub cannot always be reached (tests, demos, air-gapped machines). `olah` answers the Hub API from git
repos under `<dir>/models/<org>/<name>`, so the real `huggingface_hub` client and transformers' remote-code
loader download from it when `HF_ENDPOINT` points at it (_olah_server.py makes its answers for missing files
and revisions the Hub's 404s). It serves reads only: publishing to it is a `git push`
into the repo folder. olah needs a newer huggingface_hub than transformers 4.57 accepts, so it lives in its
own virtual environment, created on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..errors import LlavaViTError, UsageError
from ..repo_files import write_atomic
from .access import validate_repo_id

OLAH_REQUIREMENT = "olah>=0.5.4,<0.6"
STATE_FILE = "local-hub.json"
# Run by olah's interpreter: olah plus Hub-like 404s for missing files (see the script).
SERVER_SCRIPT = Path(__file__).resolve().parent / "_olah_server.py"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llava-vit"


def default_hub_dir() -> Path:
    """Where `local-hub` and `publish --local-hub` keep repos unless told otherwise."""
    return cache_dir() / "local-hub"


def olah_venv_dir() -> Path:
    """olah's virtual environment: `LLAVA_VIT_OLAH_VENV`, else one in the user's cache."""
    given = os.environ.get("LLAVA_VIT_OLAH_VENV")
    return Path(given).expanduser() if given else cache_dir() / "olah-venv"


def _venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _has_olah(python: Path) -> bool:
    probe = [str(python), "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('olah') is None)"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def ensure_olah(folder: Path | None = None) -> Path:
    """The interpreter of a venv that has olah, building the venv first if it does not exist.

    The venv is built in a temporary sibling folder and renamed into place, so an interrupted install never
    leaves a half-built environment behind (olah is run through its `python`, which survives the rename).
    """
    folder = folder or olah_venv_dir()
    python = _venv_python(folder)
    if python.exists() and _has_olah(python):
        return python
    if folder.exists():
        raise LlavaViTError(
            f"{folder} exists but is not a virtual environment with olah; remove it, or set LLAVA_VIT_OLAH_VENV "
            "to another folder"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(staging)
        install = subprocess.run(
            [str(_venv_python(staging)), "-m", "pip", "install", "-q", "--disable-pip-version-check", OLAH_REQUIREMENT],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            reason = (install.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise LlavaViTError(f"could not install {OLAH_REQUIREMENT} into a new venv: {reason}")
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return python


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _is_olah_process(pid: int) -> bool:
    """Whether `pid` is alive and (where /proc tells) still an olah server, not a recycled PID. Zero and negative
    numbers name process groups (-1: every process), never a server: a state file holding one is stale."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, OverflowError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True
    try:
        text = cmdline.read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"olah" in text and status.split(") ", 1)[-1][:1] != "Z"


def _git(*args: str, cwd: Path) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise LlavaViTError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass
class LocalHub:
    """An olah server on 127.0.0.1 serving the git repos under `root/models/<org>/<name>`.

    Use it as a context manager (tests) or start it detached and find it again through the state file
    `root/local-hub.json` (the CLI: `llava-vit local-hub start|stop|status`).
    """

    root: Path = field(default_factory=default_hub_dir)
    port: int | None = None
    pid: int | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise LlavaViTError(f"the local hub in {self.root} has no port; start it first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.root / ".olah" / "server.log"

    @classmethod
    def find_running(cls, root: Path | None = None) -> LocalHub | None:
        """The hub a state file in `root` describes, if its process is still alive; stale state is removed."""
        hub = cls(root or default_hub_dir())
        try:
            state = json.loads(hub.state_file.read_text())
            pid, port = int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if _is_olah_process(pid):
            hub.port, hub.pid = port, pid
            return hub
        hub.state_file.unlink(missing_ok=True)
        return None

    def _write_config(self, port: int) -> Path:
        work = self.root / ".olah"
        work.mkdir(parents=True, exist_ok=True)
        config = work / "olah.toml"
        write_atomic(
            config,
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {port}\n"
            f"repos-path = {json.dumps(str(work / 'cache'))}\n"
            f"mirrors-path = [{json.dumps(str(self.root))}]\n"
            f'mirror-netloc = "127.0.0.1:{port}"\n'
            f'mirror-lfs-netloc = "127.0.0.1:{port}"\n'
            "metadata-cache-ttl = 0\n"
            "\n[accessibility]\n"
            "offline = true\n",
        )
        return config

    def start(self, timeout: float = 60.0) -> LocalHub:
        """Start olah detached (its own session, so the CLI can return) and wait until it accepts connections."""
        running = LocalHub.find_running(self.root)
        if running is not None:
            raise LlavaViTError(
                f"a local hub already serves {self.root} at {running.endpoint} (pid {running.pid}); "
                f"stop it with `llava-vit local-hub stop --dir {self.root}`"
            )
        port = self.port or free_port()
        if _port_open(port):
            raise UsageError(f"port {port} on 127.0.0.1 is already in use; pick another with --port or leave it out")
        python = ensure_olah()
        (self.root / "models").mkdir(parents=True, exist_ok=True)
        config = self._write_config(port)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [str(python), str(SERVER_SCRIPT), "--config", str(config), "--log-path", str(config.parent / "logs")],
                cwd=config.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._process, self.pid, self.port = process, process.pid, port
        deadline = time.monotonic() + timeout
        while not _port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise LlavaViTError(f"olah did not start on 127.0.0.1:{port} (log {self.log_file}): {tail[0]}")
            time.sleep(0.2)
        write_atomic(self.state_file, json.dumps({"pid": self.pid, "port": port, "dir": str(self.root)}))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by its PID (TERM, then KILL) and forget it."""
        if self.pid is not None and (self._process is not None or _is_olah_process(self.pid)):
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._alive():
                os.kill(self.pid, signal.SIGKILL)
                if self._process is not None:
                    self._process.wait()
        self.state_file.unlink(missing_ok=True)
        self._process, self.pid = None, None

    def _alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self.pid is not None and _is_olah_process(self.pid)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def repo_path(self, repo_id: str) -> Path:
        return self.root / "models" / validate_repo_id(repo_id)

    def remote_url(self, repo_id: str) -> str:
        """A `file://` URL: git-lfs pushes objects to a local remote only through a URL or a named remote."""
        return self.repo_path(repo_id).as_uri()

    def create_repo(self, repo_id: str) -> Path:
        """An empty non-bare repo that accepts pushes to its checked-out branch (olah reads its .git/lfs)."""
        path = self.repo_path(repo_id)
        if (path / ".git").is_dir():
            return path
        path.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", "-b", "main", cwd=path)
        _git("config", "receive.denyCurrentBranch", "updateInstead", cwd=path)
        return path


def _start(args: argparse.Namespace) -> int:
    running = LocalHub.find_running(args.dir)
    if running is not None:
        print(f"local hub already running: {running.endpoint} (pid {running.pid}) serving {running.root}")
    else:
        running = LocalHub(args.dir or default_hub_dir(), port=args.port).start()
        print(f"local hub started: {running.endpoint} (pid {running.pid}) serving {running.root}")
    print(f"export HF_ENDPOINT={running.endpoint}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    running = LocalHub.find_running(args.dir)
    if running is None:
        print(f"no local hub running for {Path(args.dir or default_hub_dir()).resolve()}")
        return 0
    pid = running.pid
    running.stop()
    print(f"local hub stopped (pid {pid}) for {running.root}")
    return 0


def _status(args: argparse.Namespace) -> int:
    running = LocalHub.find_running(args.dir)
    if running is None:
        print(f"no local hub running for {Path(args.dir or default_hub_dir()).resolve()}")
        return 1
    repos = sorted(p.relative_to(running.root / "models").as_posix() for p in running.root.glob("models/*/*"))
    print(f"local hub running: {running.endpoint} (pid {running.pid}) serving {running.root}")
    print(f"repos: {', '.join(repos) if repos else '(none)'}")
    return 0


def _install(args: argparse.Namespace) -> int:
    print(f"olah ready: {ensure_olah()}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "local-hub", help="run a local Hub (olah over git repos) to rehearse publishing and loading"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, handler, text in (
        ("start", _start, "start serving DIR/models/<org>/<name> on 127.0.0.1 (detached)"),
        ("stop", _stop, "stop the local hub serving DIR"),
        ("status", _status, "say whether a local hub serves DIR (exit 1 when none)"),
        ("install", _install, f"create olah's venv ({olah_venv_dir()}, or $LLAVA_VIT_OLAH_VENV) if missing"),
    ):
        action = actions.add_parser(name, help=text)
        action.set_defaults(handler=handler)
        if name != "install":
            action.add_argument("--dir", type=Path, default=None, help=f"hub folder (default {default_hub_dir()})")
        if name == "start":
            action.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
