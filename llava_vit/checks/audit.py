"""`llava-vit audit`: an allowlist verdict on what a model repo would run under `trust_remote_code=True`.

Exit 0 only when everything that transformers or the Hub could execute (the one definition in
`llava_vit.trust.runnable`) is byte-identical llava-vit release code, judged at exactly the commit the report
tells users to pin. A denylist cannot be complete (`getattr(__builtins__, ...)`, `torch.hub.load`, aliases), so the
AST scan below only *explains* a difference; it never passes a file.

Nothing from the audited repo is imported or executed, and nothing its git configuration names runs: a local
git repo is read from its object database at HEAD (never the working tree, its config or its attributes); a Hub
repo is listed at its 40-hex commit and only small files are streamed, each under a cap, the whole audit under
a time budget (weights never; large and LFS files are read at both ends with HTTP range requests).
"""

from __future__ import annotations

import argparse
import ast
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import Problem, UsageError, one_line
from ..repo_contract import CODE_FILES, canonical_source, is_repo_id, repo_file, strip_header
from ..trust.gitdb import find_git_dir
from ..trust.reader import CommitSource, Entry, FolderSource, HubSource, Source, time_budget
from ..trust.runnable import COMPILED_SUFFIXES, judge_entries

DEFAULT_TIMEOUT = 300  # seconds an audit by repo id may take, all requests together

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
class AuditReport:
    target: str
    commit: str | None
    files: list[tuple[str, str]] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)
    explanations: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --- the verdict --------------------------------------------------------------------------------------
def file_role(path: str) -> str:
    row = repo_file(path)
    if row is not None:
        return row.describe
    lower = path.lower()
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


def scan_code(path: str, source: str) -> list[Problem]:
    """What a differing Python file reaches for: imports beyond torch/transformers, calls into processes, the
    network, pickles or eval. An explanation of a diff only: a clean scan never makes code trusted."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return [Problem(path, getattr(error, "lineno", 0) or 0, f"does not parse ({type(error).__name__})")]
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
                Problem(path, node.lineno, f"imports {node.module or names} from the repo (runs that code)")
            )
        for module in modules:
            top = module.split(".")[0]
            if top not in ALLOWED_IMPORTS:
                reason = RISKY_MODULES.get(top, "is outside torch/transformers")
                findings.append(Problem(path, node.lineno, f"imports {module} ({reason})"))
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in RISKY_CALLS or name.split(".")[0] in ("subprocess", "socket", "urllib", "requests"):
                findings.append(
                    Problem(path, node.lineno, f"calls {name} ({RISKY_CALLS.get(name, 'network/process')})")
                )
    return findings


def _diff(before: str, after: str, fromfile: str, tofile: str) -> str:
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True), fromfile=fromfile, tofile=tofile)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def audit_source(source: Source, target: str, entries: list[Entry] | None = None) -> AuditReport:
    report = AuditReport(target=target, commit=source.commit)
    entries = source.entries() if entries is None else entries
    report.files = [(entry.path, file_role(entry.path)) for entry in entries]
    judgement = judge_entries(source, entries)
    report.errors = judgement.problems
    report.warnings = [Problem(".", note) for note in source.notes] + judgement.warnings
    covered = source.lfs_covered([entry.path for entry in entries if entry.kind == "file" and not entry.lfs])
    for entry in entries:
        if entry.kind == "file" and not (entry.lfs or entry.path in covered) and entry.size > 10 * 1024 * 1024:
            report.warnings.append(Problem(entry.path, "larger than 10 MB but not tracked by LFS in .gitattributes"))
    for rel, code in judgement.code.items():
        report.code[rel] = code.verdict
        if code.text is None:
            continue
        if code.expected_name and rel.endswith(".py") and code.verdict.startswith("MODIFIED"):
            if rel in CODE_FILES:
                before, label = canonical_source(rel), f"llava-vit {__version__}/{rel}"
                report.diffs[rel] = _diff(before, strip_header(code.text), label, rel)
            elif code.expected is not None:
                report.diffs[rel] = _diff(code.expected, code.text, f"llava-vit {__version__} template/{rel}", rel)
        if not code.verdict.startswith("identical"):
            report.explanations.extend(scan_code(rel, code.text))
    return report


def audit_folder(folder: Path, target: str | None = None) -> AuditReport:
    """The verdict on a local folder: at git HEAD (read from the object database) when it is the top of a git
    repo, else the files as they are."""
    if find_git_dir(folder) is None:
        with FolderSource(folder) as source:
            return audit_source(source, target or str(folder))
    with CommitSource(folder) as source:
        entries = source.entries()
        if source.dirty():
            source.notes.append("the working tree has uncommitted changes: they are NOT judged (commit, then re-run)")
        return audit_source(source, target or str(folder), entries)


def audit_target(target: str, revision: str | None, timeout: float = DEFAULT_TIMEOUT) -> AuditReport:
    """The verdict on a local folder or on a Hub repo id (at `revision`, resolved to a 40-hex commit)."""
    folder = Path(target)
    if folder.is_dir() and not folder.is_symlink():
        if revision is not None:
            raise UsageError("--revision is for Hub repos; for a local repo check out the commit and audit it")
        return audit_folder(folder, target)
    if folder.is_symlink():
        raise UsageError(f"{target} is a symlink; audit the folder it points to by its real path")
    if not is_repo_id(target) or folder.exists():
        raise UsageError(f"{target!r} is neither a folder nor a Hub repo id of the form ORG/NAME")
    with time_budget(timeout, f"the audit of {target}"):
        source = HubSource(target, revision)
        return audit_source(source, target)


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
    report = audit_target(args.target, args.revision, args.timeout)
    print(format_report(report))
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit", help="judge a model repo's code without running it (before trust_remote_code=True)"
    )
    parser.add_argument("target", help="a model folder (judged at git HEAD) or a Hub repo id ORG/NAME")
    parser.add_argument("--revision", help="branch, tag or commit of a Hub repo (the verdict names the commit)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="time budget of an audit by repo id"
    )
    parser.set_defaults(handler=run)
