"""`llava-vit verify`: prove that a model folder or Hub repo loads like a user would load it.

The loading runs in a fresh interpreter (this one's, or `--python`'s) with an empty HF_MODULES_CACHE and
without llava_vit on its path, so the model comes from the repo's own code files through transformers'
remote-code loader. This process adds what only llava_vit knows: which release the code files are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import UsageError
from ..repo_contract import (
    AUTO_MAP,
    CODE_FILES,
    PROCESSOR_AUTO_MAP,
    PROCESSOR_CONFIG_FILE,
    WEIGHTS_FILE,
    WEIGHTS_INDEX,
    is_repo_id,
)

WORKER = Path(__file__).resolve().parent / "_verify_worker.py"
DTYPE_CHOICES = ("float32", "bfloat16", "float16", "auto")
PROVENANCE = "code provenance"
LOAD_PROCESS = "load process"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"  [{'PASS' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


@dataclass
class Report:
    target: str
    revision: str | None
    python: str
    environment: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed]

    def to_json(self) -> str:
        data = asdict(self)
        data["passed"] = self.passed
        return json.dumps(data, indent=2)

    def heading(self) -> str:
        env = self.environment
        where = ", ".join(f"{key} {env[key]}" for key in ("transformers", "torch", "device") if key in env)
        return f"verify {self.target}" + (f" @ {self.revision}" if self.revision else "") + f" ({where})"

    def summary(self) -> str:
        failed = self.failed()
        summary = f"{len(self.checks) - len(failed)}/{len(self.checks)} checks passed"
        return summary + (f"; failed: {', '.join(failed)}" if failed else "")

    def to_text(self) -> str:
        return "\n".join([self.heading(), *(check.line() for check in self.checks), self.summary()])


def judge_before_loading(target: str, local: bool, revision: str | None) -> tuple[Check, str | None]:
    """The definition of what can run (`trust.runnable`), judged before anything is loaded: a repo whose runnable
    files are not all release code is never imported. Returns the check and, for a Hub repo, the 40-hex commit
    that was judged (the load is pinned to it)."""
    from ..trust.reader import FolderSource, HubSource, Source, repo_names, time_budget
    from ..trust.runnable import judge

    source: Source
    if local:
        source = FolderSource(Path(target), repo_names(Path(target)))
    else:
        with time_budget(300, f"listing {target}"):
            source = HubSource(target, revision)
    with source:
        judgement = judge(source)
    if not judgement.ok:
        problems = "; ".join(str(problem) for problem in judgement.problems[:5])
        return Check(PROVENANCE, False, f"{problems}; not loaded (its code would run): run `llava-vit audit`"), None
    found = []
    for name in CODE_FILES:
        verdict = judgement.code[name].verdict
        installed = f"identical to llava-vit {__version__}"
        found.append(f"{name}: {verdict}" + ("" if verdict == installed else f" (installed: {__version__})"))
    return Check(PROVENANCE, True, "; ".join(found)), source.commit


def _worker_environment(modules_cache: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(modules_cache)
    return env


def _follow(process: subprocess.Popen, progress_path: Path, on_check: Callable[[Check], None]) -> None:
    """Hand each check to `on_check` as the worker finishes it (it appends one JSON line per check)."""
    seen = 0
    while True:
        finished = process.poll() is not None
        lines = progress_path.read_text(encoding="utf-8").splitlines() if progress_path.is_file() else []
        complete = lines if finished else lines[:-1]  # the last line may still be being written
        for line in complete[seen:]:
            on_check(Check(**json.loads(line)))
        seen = max(seen, len(complete))
        if finished:
            return
        time.sleep(0.1)


def verify(
    target: str,
    revision: str | None = None,
    dtype: str = "float32",
    python: str | None = None,
    on_check: Callable[[Check], None] | None = None,
) -> Report:
    """Run every check on a folder or Hub repo id; never raises for a failed check (see `Report.passed`).

    `on_check` sees each load-and-run check as soon as it finishes (the whole run takes seconds to minutes)."""
    local = Path(target).is_dir()
    if not local and not is_repo_id(target):
        raise UsageError(f"{target} is neither an existing folder nor a Hub repo id (ORG/NAME)")
    if dtype not in DTYPE_CHOICES:
        raise UsageError(f"invalid dtype {dtype!r}; choose one of {', '.join(DTYPE_CHOICES)}")
    interpreter = python or sys.executable
    request = {
        "target": str(Path(target).resolve()) if local else target,
        "local": local,
        "revision": revision,
        "dtype": dtype,
        "auto_map": AUTO_MAP,
        "code_files": list(CODE_FILES),
        "weights_file": WEIGHTS_FILE,
        "weights_index": WEIGHTS_INDEX,
        "processor_config_file": PROCESSOR_CONFIG_FILE,
        "processor_auto_map": PROCESSOR_AUTO_MAP,
    }
    if shutil.which(interpreter) is None:
        raise UsageError(f"cannot run {interpreter}: no such executable; pass --python the path of a Python")
    report = Report(target=target, revision=revision, python=interpreter)
    judged, commit = judge_before_loading(target, local, revision)
    report.checks.append(judged)
    (on_check or (lambda check: None))(judged)
    if not judged.passed:
        return report
    if commit is not None:
        request["revision"] = commit
    with tempfile.TemporaryDirectory(prefix="llava-vit-verify-") as work:
        result_path, progress_path = Path(work) / "result.json", Path(work) / "progress.jsonl"
        request["progress_path"] = str(progress_path)
        try:
            process = subprocess.Popen(
                [interpreter, str(WORKER), json.dumps(request), str(result_path)],
                env=_worker_environment(Path(work) / "modules"),
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=(stderr := open(Path(work) / "stderr.txt", "w+", encoding="utf-8")),  # noqa: SIM115
                text=True,
            )
        except OSError as error:
            raise UsageError(f"cannot run {interpreter}: {error.strerror or error}") from None
        with stderr:
            try:
                _follow(process, progress_path, on_check or (lambda check: None))
            except BaseException:
                process.kill()
                process.wait()
                raise
            stderr.seek(0)
            errors = stderr.read()
        if process.returncode != 0 or not result_path.is_file():
            tail = " ".join(errors.strip().splitlines()[-3:])
            report.checks.append(Check(LOAD_PROCESS, False, f"{interpreter} exited {process.returncode}: {tail}"))
            return report
        result = json.loads(result_path.read_text(encoding="utf-8"))
    report.environment = result["environment"]
    report.checks += [Check(**check) for check in result["checks"]]
    return report


def run(args: argparse.Namespace) -> int:
    if args.json:
        report = verify(args.target, args.revision, args.dtype, args.python)
        print(report.to_json())
        return 0 if report.passed else 1
    print(f"verify {args.target}: loading it in a fresh interpreter ...", flush=True)
    report = verify(args.target, args.revision, args.dtype, args.python, lambda c: print(c.line(), flush=True))
    if report.checks[-1].name == LOAD_PROCESS:
        print(report.checks[-1].line())  # why the load process failed (not reported as it went)
    print(f"{report.heading()}: {report.summary()}")
    return 0 if report.passed else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="prove that a model folder or Hub repo loads with AutoModel and runs, in a fresh process",
        description="Load TARGET (a folder, or a Hub repo id through HF_ENDPOINT) in a fresh interpreter without "
        "llava_vit, run image, video, masked and patch_positions forwards, compare eager and sdpa, and check "
        "the code files' provenance. Exit status: 0 all checks pass, 1 a check failed, 2 bad arguments.",
    )
    parser.add_argument("target", metavar="TARGET", help="model folder or Hub repo id (ORG/NAME)")
    parser.add_argument("--revision", metavar="REV", help="branch, tag or commit of a Hub repo")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="float32", help="dtype to load the model in")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--python", metavar="PATH", help="interpreter of the environment to load in (default: this one)"
    )
    parser.set_defaults(handler=run)
