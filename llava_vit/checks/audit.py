"""`llava-vit audit`: what a model repo would run under `trust_remote_code=True`, judged without running it.

Everything here reads files as text (or through `ast`); nothing from the audited repo is imported or executed.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import LlavaViTError, UsageError
from ..repo_contract import AUTO_MAPS, CODE_FILES, MAX_PLAIN_BYTES, canonical_source, judge_code, strip_header

ALLOWED_IMPORTS = frozenset(
    {"torch", "transformers", "typing", "math", "dataclasses", "collections", "functools", "__future__", "warnings"}
    | {"numpy", "PIL"}  # what transformers itself needs (the processor's arrays and images)
)
OPTIONAL_IMPORTS = frozenset({"flash_attn", "av"})  # allowed only inside try/except (av: the processor's decoder)
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
    "torch.load": "loads a pickle (can run code)",
    "pickle.load": "loads a pickle (can run code)",
    "pickle.loads": "loads a pickle (can run code)",
    "os.system": "runs a shell command",
}
_CODE_MODULES = {name.removesuffix(".py") for name in CODE_FILES}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class Finding:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass
class AuditReport:
    target: str
    commit: str | None
    files: list[tuple[str, str]] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def file_role(path: Path) -> str:
    name = path.name
    if name in CODE_FILES or (name.endswith(".py") and name.startswith(("configuration_", "modeling_", "processing_"))):
        return "remote code (runs under trust_remote_code=True)"
    roles = {
        "config.json": "model config",
        "preprocessor_config.json": "image processor config",
        "processor_config.json": "processor config (AutoProcessor: video settings)",
        "model.safetensors.index.json": "weight shard index",
        "README.md": "model card",
        ".gitattributes": "git/LFS attributes",
        ".gitignore": "git ignore rules",
        ".pre-commit-config.yaml": "pre-commit hooks (maintainers only)",
        ".copier-answers.yml": "template answers (maintainers only)",
    }
    if name in roles:
        return roles[name]
    if name.endswith(".safetensors"):
        return "weights (safetensors: data only)"
    if name.endswith(PICKLE_SUFFIXES):
        return "pickle (runs code when loaded)"
    if name.endswith(".py"):
        return "script (not run by loading; run it only if you trust it)"
    return "other"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def scan_code(path: str, source: str) -> list[Finding]:
    """Imports outside torch/transformers, and calls that reach the network, processes, pickles or eval."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [Finding(path, error.lineno or 0, f"does not parse: {error.msg}")]
    guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for s in t.body for n in ast.walk(s)}
    findings = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        elif isinstance(node, ast.ImportFrom) and (node.module or "") not in _CODE_MODULES:
            names = ", ".join(alias.name for alias in node.names)
            findings.append(
                Finding(path, node.lineno, f"imports {node.module or names} from the repo (runs that code)")
            )
        for module in modules:
            top = module.split(".")[0]
            if top in ALLOWED_IMPORTS or (top in OPTIONAL_IMPORTS and id(node) in guarded):
                continue
            reason = RISKY_MODULES.get(top, "is outside torch/transformers")
            findings.append(Finding(path, node.lineno, f"imports {module} ({reason})"))
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in RISKY_CALLS or name.split(".")[0] in ("subprocess", "socket", "urllib", "requests"):
                findings.append(
                    Finding(path, node.lineno, f"calls {name} ({RISKY_CALLS.get(name, 'network/process')})")
                )
    return findings


def lfs_covered(folder: Path, paths: list[str]) -> set[str]:
    """The paths that the folder's .gitattributes sends through LFS, decided by git itself."""
    attributes = folder / ".gitattributes"
    if not attributes.is_file() or not paths:
        return set()
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["git", "init", "-q", scratch], check=True)
        (Path(scratch) / ".gitattributes").write_bytes(attributes.read_bytes())
        result = subprocess.run(
            ["git", "-C", scratch, "check-attr", "filter", "--stdin"],
            input="\n".join(paths),
            capture_output=True,
            text=True,
            check=True,
        )
    return {line.split(": filter: ")[0] for line in result.stdout.splitlines() if line.endswith(": filter: lfs")}


def _is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\0" in handle.read(8192)


def auto_map_findings(folder: Path) -> list[Finding]:
    """transformers imports whatever module an `auto_map` names, whatever the code files hold: config.json must map
    exactly the two llava-vit classes, processor_config.json (if it maps anything) exactly LlavaViTProcessor, and
    no other JSON file may map code at all (repo_contract.AUTO_MAPS)."""
    findings = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            if path.name == "config.json":
                findings.append(Finding(path.name, 0, f"not valid JSON ({error}); transformers cannot load it"))
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        expected = AUTO_MAPS.get(path.name)
        if expected is not None and auto_map != expected and (auto_map is not None or path.name == "config.json"):
            findings.append(
                Finding(
                    path.name, 0, f"auto_map is {auto_map!r}, not llava-vit's {expected!r}: it decides which code runs"
                )
            )
        elif expected is None and auto_map is not None:
            findings.append(
                Finding(path.name, 0, f"auto_map {auto_map!r} makes transformers import more of the repo's code")
            )
    return findings


def audit_folder(folder: Path, target: str, commit: str | None) -> AuditReport:
    report = AuditReport(target=target, commit=commit)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.relative_to(folder).parts)
    relative = [p.relative_to(folder).as_posix() for p in files]
    report.files = [(rel, file_role(p)) for rel, p in zip(relative, files, strict=True)]
    covered = lfs_covered(folder, relative)
    canonical_names = set(CODE_FILES)
    for rel, path in zip(relative, files, strict=True):
        if path.name.endswith(PICKLE_SUFFIXES):
            report.errors.append(Finding(rel, 0, "pickle file: loading it can run arbitrary code; ask for safetensors"))
        if rel not in covered and (path.stat().st_size > MAX_PLAIN_BYTES or _is_binary(path)):
            report.warnings.append(Finding(rel, 0, "binary or > 10 MB but not tracked by LFS in .gitattributes"))
        if path.suffix != ".py":
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        if path.name in canonical_names:
            body = strip_header(source)
            verdict = judge_code(path.name, source)
            if verdict.release:
                report.code[rel] = f"identical to llava-vit {verdict.release}"
            else:
                claimed = (
                    f" (header claims llava-vit {verdict.claimed})" if verdict.claimed else " (no provenance header)"
                )
                report.code[rel] = f"MODIFIED: matches no llava-vit release{claimed}"
                report.errors.append(Finding(rel, 0, "code differs from every llava-vit release; see the diff below"))
                report.diffs[rel] = "".join(
                    difflib.unified_diff(
                        canonical_source(path.name).splitlines(keepends=True),
                        body.splitlines(keepends=True),
                        fromfile=f"llava-vit {__version__}/{path.name}",
                        tofile=rel,
                    )
                )
        scan = scan_code(rel, source)
        if file_role(path).startswith("remote code"):
            report.errors.extend(scan)
        else:
            report.warnings.extend(scan)
    report.errors.extend(auto_map_findings(folder))
    missing = [name for name in CODE_FILES if name not in report.code]
    if missing:
        report.errors.append(
            Finding(".", 0, f"{', '.join(missing)} missing: not a complete llava-vit model repo, so not a release")
        )
    return report


def fetch(target: str, revision: str | None) -> tuple[Path, str | None]:
    """A local folder as is, or a Hub repo's files downloaded (never imported) at `revision`."""
    folder = Path(target)
    if folder.is_dir():
        commit = None
        if (folder / ".git").exists():
            result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
            commit = result.stdout.strip() or None
        return folder, commit
    if target.count("/") != 1 or folder.exists():
        raise UsageError(f"{target!r} is neither a folder nor a Hub repo id of the form ORG/NAME")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    where = f"{target}@{revision or 'main'} on {constants.ENDPOINT}"
    try:
        snapshot = Path(snapshot_download(target, revision=revision))
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise UsageError(
            f"{where} not found ({_first_line(error)}): check ORG/NAME and --revision; for a private repo set "
            "HF_TOKEN or run `hf auth login`"
        ) from None
    except (HfHubHTTPError, OSError) as error:
        raise LlavaViTError(
            f"could not download {where} ({_first_line(error)}): check the network or HF_ENDPOINT"
        ) from None
    return snapshot, snapshot.name


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def format_report(report: AuditReport) -> str:
    lines = [f"audit of {report.target}" + (f" at commit {report.commit}" if report.commit else ""), "", "files:"]
    lines += [f"  {rel:<40} {role}" for rel, role in report.files]
    lines += ["", "code:"] + [f"  {rel}: {verdict}" for rel, verdict in report.code.items()]
    for title, findings in (("problems", report.errors), ("warnings", report.warnings)):
        if findings:
            lines += ["", f"{title}:"] + [f"  {finding}" for finding in findings]
    for rel, diff in report.diffs.items():
        lines += ["", f"diff of {rel} against the installed llava-vit {__version__}:", diff.rstrip()]
    lines.append("")
    if report.ok:
        lines.append("verdict: unmodified llava-vit release code; nothing flagged.")
    else:
        lines.append("verdict: NOT an unmodified llava-vit release: read the problems above before trust_remote_code.")
    if report.commit:
        lines.append(f'pin it: AutoModel.from_pretrained(..., trust_remote_code=True, revision="{report.commit}")')
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    folder, commit = fetch(args.target, args.revision)
    report = audit_folder(folder, args.target, commit)
    print(format_report(report))
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit", help="judge a model repo's code without running it (before trust_remote_code=True)"
    )
    parser.add_argument("target", help="a model folder or a Hub repo id ORG/NAME")
    parser.add_argument("--revision", help="branch, tag or commit of a Hub repo")
    parser.set_defaults(handler=run)
