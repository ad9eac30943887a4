"""`llava-vit audit`: an allowlist verdict on what a model repo would run under `trust_remote_code=True`.

Exit 0 only when every file that transformers or the Hub could execute is a byte-identical llava-vit release
file, judged at exactly the commit the report tells users to pin: every `*.py` anywhere in the repo (the
shipped code files must be a recorded release; the template's `example_usage.py` must be what the template
renders; any other Python file fails), every `auto_map` in every JSON file (only the contract's), no
`custom_pipelines`, no `trust_remote_code` hints, no compiled code, no pickle (found by content, not by suffix).
A denylist cannot be complete (`getattr(__builtins__, ...)`, `torch.hub.load`, aliases), so the AST scan
below only *explains* a difference; it never passes a file.

Nothing from the audited repo is imported or executed. A local git repo is read from git at HEAD (never the
working tree); a Hub repo is listed at its resolved commit and only code, JSON and text files are downloaded
(weights never; the first and last bytes of binary files are read with HTTP range requests). Symlinks are
never followed, FIFOs and devices never read, and every read is capped.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import stat
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import LlavaViTError, UsageError, one_line
from ..repo_contract import (
    AUTO_MAP,
    AUTO_MAPS,
    CODE_FILES,
    CONFIG_FILE,
    EXAMPLE_FILE,
    LFS_POINTER_MAX_BYTES,
    MAX_CODE_BYTES,
    MAX_JSON_BYTES,
    MAX_PLAIN_BYTES,
    SNIFF_BYTES,
    ZIP_MAGIC,
    UnsafeFile,
    canonical_source,
    is_repo_id,
    judge_code,
    looks_like_pickle,
    parse_json_bytes,
    parse_lfs_pointer,
    read_regular,
    strip_header,
    zip_member_names,
)

MAX_FILES = 10_000  # a model repo has a handful; more is refused rather than walked forever
COMPILED_SUFFIXES = (".pyc", ".pyo", ".pyd", ".so", ".dylib", ".dll")

# Explanations of a difference (never a reason to pass): imports and calls that reach beyond tensor maths.
ALLOWED_IMPORTS = frozenset(
    {"torch", "transformers", "typing", "math", "dataclasses", "collections", "functools", "__future__", "warnings"}
)
RISKY_MODULES = {
    "subprocess": "runs programs",
    "os": "can run programs and touch files",
    "socket": "opens network connections",
    "urllib": "opens network connections",
    "http": "opens network connections",
    "requests": "opens network connections",
    "httpx": "opens network connections",
    "pickle": "loads pickles (can run code)",
    "importlib": "imports code by name",
    "ctypes": "calls native code",
}
RISKY_CALLS = {
    "eval": "evaluates a string as code",
    "exec": "executes a string as code",
    "compile": "compiles a string as code",
    "__import__": "imports code by name",
    "getattr": "looks up names at run time",
    "torch.load": "loads a pickle (can run code)",
    "torch.hub.load": "downloads and runs code",
    "torch.ops.load_library": "loads native code",
    "pickle.load": "loads a pickle (can run code)",
    "pickle.loads": "loads a pickle (can run code)",
    "os.system": "runs a shell command",
}


@dataclass
class Finding:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        path = one_line(self.path)  # a file name holding a newline must not forge a report line
        return f"{path}:{self.line}: {self.message}" if self.line else f"{path}: {self.message}"


@dataclass
class AuditReport:
    target: str
    commit: str | None
    files: list[tuple[str, str]] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)
    explanations: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --- where the files come from ------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One path of the judged tree: `kind` is file, symlink, submodule or special (FIFO, socket, device)."""

    path: str
    kind: str
    size: int
    lfs: bool = False
    ref: str = ""  # the git blob or LFS object id


class Source(ABC):
    """The files of one judged tree, and the commit they are at (None: a plain folder, nothing to pin)."""

    commit: str | None = None
    notes: list[str]

    @abstractmethod
    def entries(self) -> list[Entry]:
        """Every path of the tree, symlinks and special files included, none followed."""

    @abstractmethod
    def read(self, entry: Entry, limit: int) -> bytes:
        """The whole content, at most `limit` bytes (UnsafeFile beyond)."""

    @abstractmethod
    def sniff(self, entry: Entry) -> tuple[bytes, bytes, list[str] | None] | None:
        """(head, tail, zip member names) of the real content, or None when it is not available here."""

    def lfs_covered(self, paths: list[str]) -> set[str]:
        """The paths .gitattributes sends through LFS, where the listing does not say it already."""
        return set()


def _sniff_handle(handle, size: int) -> tuple[bytes, bytes, list[str] | None]:  # type: ignore[no-untyped-def]
    head = handle.read(SNIFF_BYTES)
    tail, names = b"", None
    if head.startswith(ZIP_MAGIC):
        handle.seek(max(0, size - SNIFF_BYTES))
        tail = handle.read(SNIFF_BYTES)
        names = zip_member_names(handle)
    return head, tail, names


def _open_regular(path: Path):  # type: ignore[no-untyped-def]
    """A binary handle on the regular file `path`: no symlink followed, no FIFO or device opened for reading."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise UnsafeFile(f"{path} is not a regular file")
    return os.fdopen(descriptor, "rb")


class FolderSource(Source):
    """A plain folder (no git): walked without following symlinks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.notes = ["a plain folder (not a git repo): nothing pins it; judge a commit for a verdict to rely on"]

    def entries(self) -> list[Entry]:
        found: list[Entry] = []
        pending = [""]
        while pending:
            prefix = pending.pop()
            with os.scandir(self.root / prefix) as listing:
                for item in listing:
                    rel = f"{prefix}{item.name}"
                    if rel == ".git":
                        continue
                    info = item.stat(follow_symlinks=False)
                    if stat.S_ISLNK(info.st_mode):
                        found.append(Entry(rel, "symlink", 0))
                    elif stat.S_ISDIR(info.st_mode):
                        pending.append(rel + "/")
                    elif stat.S_ISREG(info.st_mode):
                        found.append(Entry(rel, "file", info.st_size))
                    else:
                        found.append(Entry(rel, "special", 0))
                    if len(found) > MAX_FILES:
                        raise LlavaViTError(f"{self.root} holds more than {MAX_FILES} files; not a model repo")
        return sorted(found, key=lambda entry: entry.path)

    def read(self, entry: Entry, limit: int) -> bytes:
        return read_regular(self.root / entry.path, limit)

    def sniff(self, entry: Entry) -> tuple[bytes, bytes, list[str] | None] | None:
        with _open_regular(self.root / entry.path) as handle:
            return _sniff_handle(handle, entry.size)

    def lfs_covered(self, paths: list[str]) -> set[str]:
        """The paths that the folder's .gitattributes sends through LFS, decided by git itself."""
        try:
            attributes = read_regular(self.root / ".gitattributes", MAX_PLAIN_BYTES)
        except (OSError, UnsafeFile):
            return set()
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run(["git", "init", "-q", "--", scratch], check=True)
            (Path(scratch) / ".gitattributes").write_bytes(attributes)
            result = subprocess.run(
                ["git", "-C", scratch, "check-attr", "-z", "--stdin", "filter"],
                input="\0".join(paths).encode() + b"\0",
                capture_output=True,
                check=True,
            )
        fields = result.stdout.decode("utf-8", "replace").split("\0")
        return {fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] == "lfs"}


def _git(root: Path, *args: str, data: bytes | None = None) -> bytes:
    result = subprocess.run(["git", "-C", str(root), *args], input=data, capture_output=True)
    if result.returncode:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LlavaViTError(f"`git {' '.join(args)}` failed in {root}: {message[-1] if message else 'no output'}")
    return result.stdout


class GitSource(Source):
    """A local git repo, read from git at HEAD (the commit users pin), never from the working tree."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.commit = _git(root, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()
        except LlavaViTError:
            raise UsageError(f"{root} is a git repo without a commit; commit the model repo, then audit it") from None
        common = Path(_git(root, "rev-parse", "--git-common-dir").decode().strip())
        self.media = (common if common.is_absolute() else root / common) / "lfs" / "objects"
        dirty = _git(root, "status", "--porcelain", "-z", "--untracked-files=no").strip(b"\0")
        self.notes = [f"judged at commit {self.commit} (git HEAD), not the working tree"]
        if dirty:
            self.notes.append("the working tree has uncommitted changes: they are NOT judged (commit, then re-run)")

    def entries(self) -> list[Entry]:
        listing = _git(self.root, "ls-tree", "-r", "-z", "--full-tree", "--long", self.commit).split(b"\0")
        found: list[Entry] = []
        small: dict[str, str] = {}
        for record in filter(None, listing):
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            path = raw_path.decode("utf-8", "surrogateescape")
            if mode == "120000":
                found.append(Entry(path, "symlink", 0, ref=oid))
            elif kind == "commit":
                found.append(Entry(path, "submodule", 0, ref=oid))
            else:
                found.append(Entry(path, "file", int(size), ref=oid))
                if int(size) <= LFS_POINTER_MAX_BYTES:
                    small[oid] = path
            if len(found) > MAX_FILES:
                raise LlavaViTError(f"{self.root} at {self.commit} holds more than {MAX_FILES} files")
        blobs = self._cat_batch(list(small))
        resolved = []
        for entry in found:
            pointer = parse_lfs_pointer(blobs.get(entry.ref, b"")) if entry.kind == "file" else None
            if pointer is not None:
                entry = Entry(entry.path, "file", pointer[1], lfs=True, ref=pointer[0])
            resolved.append(entry)
        return sorted(resolved, key=lambda entry: entry.path)

    def _cat_batch(self, oids: list[str]) -> dict[str, bytes]:
        """Contents of small blobs, in one `git cat-file --batch`."""
        if not oids:
            return {}
        output = _git(self.root, "cat-file", "--batch", data="\n".join(oids).encode() + b"\n")
        blobs, position = {}, 0
        for oid in oids:
            end = output.index(b"\n", position)
            _, _, size = output[position:end].decode().split()
            blobs[oid] = output[end + 1 : end + 1 + int(size)]
            position = end + 1 + int(size) + 1
        return blobs

    def _object(self, entry: Entry) -> Path:
        return self.media / entry.ref[:2] / entry.ref[2:4] / entry.ref

    def read(self, entry: Entry, limit: int) -> bytes:
        if entry.size > limit:
            raise UnsafeFile(f"{entry.path} is {entry.size} bytes, more than the {limit} this file may have")
        if entry.lfs:
            return read_regular(self._object(entry), limit)
        return _git(self.root, "cat-file", "blob", entry.ref)[: limit + 1]

    def sniff(self, entry: Entry) -> tuple[bytes, bytes, list[str] | None] | None:
        if entry.lfs:
            try:
                with _open_regular(self._object(entry)) as handle:
                    return _sniff_handle(handle, entry.size)
            except (FileNotFoundError, UnsafeFile):
                return None
        process = subprocess.Popen(["git", "-C", str(self.root), "cat-file", "blob", entry.ref], stdout=subprocess.PIPE)
        assert process.stdout is not None
        head = process.stdout.read(SNIFF_BYTES)
        tail = b""
        if head.startswith(ZIP_MAGIC):
            while chunk := process.stdout.read(1 << 20):
                tail = (tail + chunk)[-SNIFF_BYTES:]
        process.stdout.close()
        process.kill()
        process.wait()
        return head, tail, None


class HubSource(Source):
    """A Hub repo at one commit: listed with its LFS status, code/JSON/text downloaded, binaries only sniffed."""

    def __init__(self, repo_id: str, revision: str | None, scratch: Path) -> None:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        self.repo_id, self.scratch = repo_id, scratch
        where = f"{repo_id}@{revision or 'main'} on {constants.ENDPOINT}"
        try:
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        except (RepositoryNotFoundError, RevisionNotFoundError) as error:
            raise UsageError(
                f"{where} not found ({_first_line(error)}): check ORG/NAME and --revision; for a private repo set "
                "HF_TOKEN or run `hf auth login`"
            ) from None
        except (HfHubHTTPError, OSError) as error:
            raise LlavaViTError(
                f"could not reach {where} ({_first_line(error)}): check the network or HF_ENDPOINT"
            ) from None
        if not info.sha:
            raise LlavaViTError(f"{where} did not say which commit it is at; cannot pin a verdict")
        self.commit = info.sha
        self.siblings = info.siblings or []
        self.notes = [f"judged at commit {self.commit} (what {revision or 'main'} points to now)"]

    def entries(self) -> list[Entry]:
        if len(self.siblings) > MAX_FILES:
            raise LlavaViTError(f"{self.repo_id} holds more than {MAX_FILES} files; not a model repo")
        found = []
        for sibling in self.siblings:
            lfs = sibling.lfs
            size = sibling.size if sibling.size is not None else (getattr(lfs, "size", None) or 0)
            found.append(Entry(sibling.rfilename, "file", int(size), lfs=lfs is not None))
        return sorted(found, key=lambda entry: entry.path)

    def read(self, entry: Entry, limit: int) -> bytes:
        from huggingface_hub import hf_hub_download

        if entry.size > limit or entry.path.endswith(".safetensors"):
            raise UnsafeFile(f"{entry.path} is {entry.size} bytes, more than the {limit} this file may have")
        local = hf_hub_download(
            self.repo_id, entry.path, revision=self.commit, local_dir=self.scratch / "files", repo_type="model"
        )
        return read_regular(Path(local), limit)

    def sniff(self, entry: Entry) -> tuple[bytes, bytes, list[str] | None] | None:
        head = self._range(entry, f"bytes=0-{SNIFF_BYTES - 1}")
        if head is None:
            return None
        tail = b""
        if head.startswith(ZIP_MAGIC) and entry.size > SNIFF_BYTES:
            tail = self._range(entry, f"bytes=-{SNIFF_BYTES}") or b""
        return head, tail, None

    def _range(self, entry: Entry, byte_range: str) -> bytes | None:
        """At most SNIFF_BYTES of a file through one HTTP range request (never the whole file)."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session

        url = hf_hub_url(self.repo_id, entry.path, revision=self.commit)
        headers = {**build_hf_headers(), "Range": byte_range}
        session = get_session()
        try:
            if callable(getattr(session, "stream", None)):  # httpx (huggingface_hub >= 1.0); requests: a flag
                with session.stream("GET", url, headers=headers, follow_redirects=True, timeout=60) as response:
                    return _capped(response.status_code, response.iter_bytes(), byte_range)
            with session.get(url, headers=headers, stream=True, timeout=60) as response:  # requests
                return _capped(response.status_code, response.iter_content(65536), byte_range)
        except OSError:
            return None
        except Exception as error:  # the transport's own errors (requests or httpx): content unavailable
            if type(error).__module__.split(".")[0] in ("requests", "httpx", "httpx2", "urllib3", "huggingface_hub"):
                return None
            raise


def _capped(status: int, chunks: Iterator[bytes], byte_range: str) -> bytes | None:
    if status == 200 and byte_range.startswith("bytes=-"):
        return None  # the server ignored the range: the tail would need the whole file
    if status not in (200, 206):
        return None
    data = b""
    for chunk in chunks:
        data += chunk
        if len(data) >= SNIFF_BYTES:
            break
    return data[:SNIFF_BYTES]


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


# --- the verdict --------------------------------------------------------------------------------------
def file_role(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    if path in CODE_FILES:
        return "remote code (runs under trust_remote_code=True)"
    if path == EXAMPLE_FILE:
        return "example script (not run by loading; passes only as the template renders it)"
    roles = {
        "config.json": "model config",
        "preprocessor_config.json": "image processor config",
        "model.safetensors.index.json": "weight shard index",
        "README.md": "model card",
        ".gitattributes": "git/LFS attributes",
        ".gitignore": "git ignore rules",
        ".pre-commit-config.yaml": "pre-commit hooks (maintainers only)",
        ".copier-answers.yml": "template answers (maintainers only)",
    }
    if path in roles:
        return roles[path]
    if lower.endswith(".py"):
        return "Python code that is not llava-vit's (fails the verdict)"
    if lower.endswith(COMPILED_SUFFIXES):
        return "compiled code (fails the verdict)"
    if lower.endswith(".safetensors"):
        return "weights (safetensors: data only)"
    if lower.endswith(".json"):
        return "JSON (auto_map checked)"
    return "other"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def scan_code(path: str, source: str) -> list[Finding]:
    """What a differing Python file reaches for: imports beyond torch/transformers, calls into processes, the
    network, pickles or eval. An explanation of a diff only: a clean scan never makes code trusted."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return [Finding(path, getattr(error, "lineno", 0) or 0, f"does not parse ({type(error).__name__})")]
    findings = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        elif isinstance(node, ast.ImportFrom):
            names = ", ".join(alias.name for alias in node.names)
            findings.append(
                Finding(path, node.lineno, f"imports {node.module or names} from the repo (runs that code)")
            )
        for module in modules:
            top = module.split(".")[0]
            if top not in ALLOWED_IMPORTS:
                reason = RISKY_MODULES.get(top, "is outside torch/transformers")
                findings.append(Finding(path, node.lineno, f"imports {module} ({reason})"))
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in RISKY_CALLS or name.split(".")[0] in ("subprocess", "socket", "urllib", "requests"):
                findings.append(
                    Finding(path, node.lineno, f"calls {name} ({RISKY_CALLS.get(name, 'network/process')})")
                )
    return findings


def _template_example() -> str | None:
    """The template's example_usage.py source (Jinja), or None when this install has no template."""
    from ..scaffold.new import template_path

    try:
        return (template_path() / "template" / f"{EXAMPLE_FILE}.jinja").read_text(encoding="utf-8")
    except (LlavaViTError, OSError):
        return None


def rendered_example(text: str) -> str | None:
    """What the template renders for the repo id this example_usage.py names, or None when it names none."""
    import jinja2

    template = _template_example()
    if template is None or "{{ repo_id }}" not in template:
        return None
    prefix = template.split("{{ repo_id }}", 1)[0]
    if not text.startswith(prefix):
        return None
    repo_id = text[len(prefix) :].split(None, 1)[0] if text[len(prefix) :].strip() else ""
    if not is_repo_id(repo_id):
        return None
    environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        return environment.from_string(template).render(repo_id=repo_id)
    except jinja2.TemplateError:
        return None


def _diff(before: str, after: str, fromfile: str, tofile: str) -> str:
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True), fromfile=fromfile, tofile=tofile)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _judge_python(report: AuditReport, source: Source, entry: Entry) -> None:
    rel = entry.path
    try:
        text = source.read(entry, MAX_CODE_BYTES).decode("utf-8")
    except (UnsafeFile, OSError) as error:
        report.errors.append(Finding(rel, 0, f"Python file that cannot be read as a llava-vit file ({error})"))
        return
    except UnicodeDecodeError:
        report.errors.append(Finding(rel, 0, "Python file that is not UTF-8 text: not llava-vit release code"))
        return
    if rel in CODE_FILES:
        verdict = judge_code(rel, text)
        if verdict.problem is None:
            report.code[rel] = f"identical to llava-vit {verdict.release}"
            return
        claimed = f" (header claims llava-vit {verdict.claimed})" if verdict.claimed else " (no provenance header)"
        report.code[rel] = f"MODIFIED: matches no llava-vit release{claimed}"
        report.errors.append(Finding(rel, 0, f"{verdict.problem}; see the diff below"))
        report.diffs[rel] = _diff(canonical_source(rel), strip_header(text), f"llava-vit {__version__}/{rel}", rel)
    elif rel == EXAMPLE_FILE:
        expected = rendered_example(text)
        if expected == text:
            report.code[rel] = f"identical to the llava-vit {__version__} template's rendering (not run by loading)"
            return
        report.code[rel] = "MODIFIED: not what the llava-vit template renders"
        report.errors.append(
            Finding(
                rel,
                0,
                "differs from what the llava-vit template renders: the card tells users to run it; "
                "re-render it with `copier update` (or delete it) and commit",
            )
        )
        if expected is not None:
            report.diffs[rel] = _diff(expected, text, f"llava-vit {__version__} template/{rel}", rel)
    else:
        report.code[rel] = "NOT llava-vit code"
        report.errors.append(
            Finding(
                rel,
                0,
                "Python file that is not llava-vit release code: transformers runs any module an auto_map or a "
                "relative import names, so audit passes none but the release files; delete it",
            )
        )
    report.explanations.extend(scan_code(rel, text))


def _walk_json(value: object, path: str = "") -> Iterator[tuple[str, str, object]]:
    """(key path, key, value) of every object member, at any depth."""
    stack = [(path, value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                here = f"{where}.{key}" if where else str(key)
                yield here, str(key), item
                stack.append((here, item))
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(node))


def _judge_json(report: AuditReport, source: Source, entry: Entry) -> None:
    rel = entry.path
    try:
        data = parse_json_bytes(source.read(entry, MAX_JSON_BYTES))
    except (UnsafeFile, OSError, ValueError, RecursionError, MemoryError) as error:
        report.errors.append(
            Finding(rel, 0, f"JSON that cannot be judged ({_first_line(error)}): cannot prove it maps no code")
        )
        return
    allowed = AUTO_MAPS.get(rel)
    top = data.get("auto_map") if isinstance(data, dict) else None
    if rel == CONFIG_FILE and top != AUTO_MAP:
        report.errors.append(
            Finding(rel, 0, f"auto_map is {top!r}, not llava-vit's {AUTO_MAP!r}: it decides which code runs")
        )
    for where, key, value in _walk_json(data):
        if key == "auto_map":
            top_level = where == "auto_map"
            if top_level and value == allowed:
                continue
            if not (top_level and rel == CONFIG_FILE):  # config.json's own is judged above
                report.errors.append(
                    Finding(rel, 0, f"{where} {value!r} makes transformers import code the contract does not ship")
                )
            remote = [text for text in _strings(value) if "--" in text]
            if remote:
                report.errors.append(
                    Finding(rel, 0, f"{where} names code in another repo ({', '.join(remote[:3])}): it would run it")
                )
        elif key in ("attn_implementation", "_attn_implementation") and isinstance(value, str) and "/" in value:
            report.errors.append(Finding(rel, 0, f"{where} {value!r} names a Hub kernel repo: code downloaded and run"))
        elif key == "auto_mapping":  # peft's adapter_config.json: a class to import by name
            report.errors.append(Finding(rel, 0, f"{where} {value!r} names classes to import by name"))
        elif key == "custom_pipelines":
            report.errors.append(Finding(rel, 0, f"{where}: custom pipelines run the repo's code"))
        elif key == "trust_remote_code":
            report.errors.append(Finding(rel, 0, f"{where}: asks for trust_remote_code, which llava-vit never sets"))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _judge_other(report: AuditReport, source: Source, entry: Entry, covered: set[str]) -> None:
    rel = entry.path
    try:
        sniffed = source.sniff(entry)
    except (UnsafeFile, OSError) as error:
        report.errors.append(Finding(rel, 0, f"cannot be read ({_first_line(error)}): cannot prove it is no pickle"))
        return
    if sniffed is None:
        message = "content not available here (LFS object not fetched): not inspected"
        if rel.lower().endswith(".safetensors"):
            report.warnings.append(Finding(rel, 0, message))
        else:
            report.errors.append(Finding(rel, 0, f"{message}; cannot prove it is no pickle (`git lfs fetch`)"))
        return
    head, tail, names = sniffed
    if looks_like_pickle(head, tail, names):
        report.errors.append(
            Finding(rel, 0, "pickle (recognised by content): loading it can run arbitrary code; ask for safetensors")
        )
        return
    if not (entry.lfs or rel in covered) and (entry.size > MAX_PLAIN_BYTES or b"\0" in head[:8192]):
        report.warnings.append(Finding(rel, 0, "binary or > 10 MB but not tracked by LFS in .gitattributes"))


def audit_source(source: Source, target: str) -> AuditReport:
    report = AuditReport(target=target, commit=source.commit)
    entries = source.entries()
    report.files = [(entry.path, file_role(entry.path)) for entry in entries]
    covered = source.lfs_covered([entry.path for entry in entries if entry.kind == "file"])
    for entry in entries:
        rel, lower = entry.path, entry.path.lower()
        if entry.kind == "symlink":
            report.errors.append(Finding(rel, 0, "symlink: never followed; a model repo holds regular files only"))
        elif entry.kind == "submodule":
            report.errors.append(Finding(rel, 0, "git submodule: code from elsewhere; a model repo has none"))
        elif entry.kind == "special":
            report.errors.append(Finding(rel, 0, "not a regular file (FIFO, socket or device): not read"))
        elif lower.endswith(".py"):
            _judge_python(report, source, entry)
        elif lower.endswith(COMPILED_SUFFIXES):
            report.errors.append(Finding(rel, 0, "compiled code: not llava-vit release code; delete it"))
        elif lower.endswith(".json"):
            _judge_json(report, source, entry)
        else:
            _judge_other(report, source, entry, covered)
    missing = [name for name in CODE_FILES if name not in report.code]
    if missing:
        report.errors.append(
            Finding(".", 0, f"{', '.join(missing)} missing: not a complete llava-vit model repo, so not a release")
        )
    if CONFIG_FILE not in {entry.path for entry in entries}:
        report.errors.append(Finding(".", 0, "config.json missing: not a llava-vit model repo"))
    report.warnings[:0] = [Finding(".", 0, note) for note in source.notes]
    return report


def audit_folder(folder: Path, target: str | None = None) -> AuditReport:
    """The verdict on a local folder: at git HEAD when it is the top of a git repo, else the files as they are."""
    is_git = (folder / ".git").exists() and not (folder / ".git").is_symlink()
    source: Source = GitSource(folder) if is_git else FolderSource(folder)
    return audit_source(source, target or str(folder))


def audit_target(target: str, revision: str | None) -> AuditReport:
    """The verdict on a local folder or on a Hub repo id (at `revision`, resolved to a commit)."""
    folder = Path(target)
    if folder.is_dir() and not folder.is_symlink():
        if revision is not None:
            raise UsageError("--revision is for Hub repos; for a local repo check out the commit and audit it")
        return audit_folder(folder, target)
    if folder.is_symlink():
        raise UsageError(f"{target} is a symlink; audit the folder it points to by its real path")
    if not is_repo_id(target) or folder.exists():
        raise UsageError(f"{target!r} is neither a folder nor a Hub repo id of the form ORG/NAME")
    with tempfile.TemporaryDirectory(prefix="llava-vit-audit-") as scratch:
        return audit_source(HubSource(target, revision, Path(scratch)), target)


def format_report(report: AuditReport) -> str:
    lines = [f"audit of {report.target}" + (f" at commit {report.commit}" if report.commit else ""), "", "files:"]
    lines += [f"  {one_line(rel):<40} {role}" for rel, role in report.files]
    lines += ["", "code:"] + [f"  {one_line(rel)}: {verdict}" for rel, verdict in report.code.items()]
    for title, findings in (("problems", report.errors), ("notes", report.warnings)):
        if findings:
            lines += ["", f"{title}:"] + [f"  {finding}" for finding in findings]
    for rel, diff in report.diffs.items():
        lines += ["", f"diff of {rel} against llava-vit {__version__}:", diff.rstrip()]
    if report.explanations:
        lines += ["", "what the differing code reaches for (an explanation, never a reason to trust it):"]
        lines += [f"  {finding}" for finding in report.explanations]
    lines.append("")
    if report.ok:
        lines.append("verdict: every file transformers or the Hub could run is unmodified llava-vit release code.")
    else:
        lines.append("verdict: NOT an unmodified llava-vit release: read the problems above before trust_remote_code.")
    if report.commit:
        lines.append(f'pin it: AutoModel.from_pretrained(..., trust_remote_code=True, revision="{report.commit}")')
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = audit_target(args.target, args.revision)
    print(format_report(report))
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit", help="judge a model repo's code without running it (before trust_remote_code=True)"
    )
    parser.add_argument("target", help="a model folder (judged at git HEAD) or a Hub repo id ORG/NAME")
    parser.add_argument("--revision", help="branch, tag or commit of a Hub repo (the verdict names the commit)")
    parser.set_defaults(handler=run)
