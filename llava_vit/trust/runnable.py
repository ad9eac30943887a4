"""The one definition of what in a repo transformers or the Hub could execute, and the verdict on it.

Runnable: every `*.py` anywhere (transformers imports any module an `auto_map` or a relative import names), every
`auto_map` at any depth of any JSON file (`image_processor`/`video_processor` nested in processor_config.json
included), `custom_pipelines`, cross-repo `org/repo--module` references, an `adapter_config.json` (peft loads
`base_model_name_or_path`'s code), Hub kernel repos (`attn_implementation` naming a repo, `use_kernels`),
compiled code, symlinks and submodules (they bring files from elsewhere), and pickles by content. A repo passes
only when each of these is exactly what the table of repo files allows: the release code files, the template's
example, the table's own `auto_map`s at the top of their files, and nothing else. check (fast and full), verify
and audit all ask this module; none keeps its own list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import __version__
from ..errors import LlavaViTError, Problem
from ..repo_contract import (
    AUTO_MAP,
    CODE_FILES,
    CONFIG_FILE,
    EXAMPLE_FILE,
    MAX_CODE_BYTES,
    MAX_JSON_BYTES,
    allowed_auto_maps,
    is_repo_id,
    judge_code,
    parse_json_bytes,
)
from .opener import UnsafeFile
from .reader import Entry, Source, first_line

COMPILED_SUFFIXES = (".pyc", ".pyo", ".pyd", ".so", ".dylib", ".dll")
ADAPTER_FILE = "adapter_config.json"
# A class reference into another Hub repo, as transformers resolves it: "org/repo--module.Class".
_CROSS_REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+--[\w.]+")
_KERNEL_KEYS = ("attn_implementation", "_attn_implementation", "_attn_implementation_internal", "kernel_config")


@dataclass
class CodeFile:
    """The verdict on one Python file: what it is, and its text (for a diff or an explanation)."""

    verdict: str
    text: str | None = None
    expected: str | None = None  # what it should be, when that is known (for the diff)
    expected_name: str = ""


@dataclass
class Judgement:
    """Everything in one tree that could run, and whether each is what the contract allows."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    code: dict[str, CodeFile] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def walk_json(value: object, path: str = "") -> Iterator[tuple[str, str, object]]:
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


def json_problems(rel: str, data: object) -> list[Problem]:
    """What in one parsed JSON file would make transformers or the Hub run code the contract does not ship."""
    problems = []
    allowed = allowed_auto_maps().get(rel)
    if rel == CONFIG_FILE:
        top = data.get("auto_map") if isinstance(data, dict) else None
        if top != AUTO_MAP:
            problems.append(
                Problem(rel, f"auto_map is {top!r}, not llava-vit's {AUTO_MAP!r}: it decides which code runs")
            )
    for where, key, value in walk_json(data):
        if key == "auto_map":
            if where == "auto_map" and (value == allowed or rel == CONFIG_FILE):
                continue  # config.json's own is judged above
            problems.append(
                Problem(rel, f"{where} {value!r} makes transformers import code the contract does not ship")
            )
        elif key in _KERNEL_KEYS and isinstance(value, str | dict) and "/" in str(value):
            problems.append(Problem(rel, f"{where} {value!r} names a Hub kernel repo: code downloaded and run"))
        elif key == "use_kernels" and value:
            problems.append(Problem(rel, f"{where}: asks for Hub kernels, code downloaded and run"))
        elif key == "auto_mapping":  # peft: a class to import by name
            problems.append(Problem(rel, f"{where} {value!r} names classes to import by name"))
        elif key == "custom_pipelines":
            problems.append(Problem(rel, f"{where}: custom pipelines run the repo's code"))
        elif key == "trust_remote_code":
            problems.append(Problem(rel, f"{where}: asks for trust_remote_code, which llava-vit never sets"))
    remote: dict[str, list[str]] = {}
    for where, key, value in walk_json(data):
        items = value if isinstance(value, list) else [value]
        for text in [key, *(item for item in items if isinstance(item, str))]:
            if _CROSS_REPO_RE.fullmatch(text.strip()):
                remote.setdefault(re.split(r"[.\[]", where, maxsplit=1)[0], []).append(text)
    for top, texts in remote.items():
        named = ", ".join(sorted(set(texts))[:3])
        problems.append(Problem(rel, f"{top} names code in another repo ({named}): transformers would run it"))
    return problems


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


def _judge_python(judgement: Judgement, source: Source, entry: Entry, installed_only: bool) -> None:
    rel = entry.path
    try:
        text = source.read(entry, MAX_CODE_BYTES).decode("utf-8")
    except (UnsafeFile, OSError) as error:
        judgement.problems.append(Problem(rel, f"Python file that cannot be read as a llava-vit file ({error})"))
        return
    except UnicodeDecodeError:
        judgement.problems.append(Problem(rel, "Python file that is not UTF-8 text: not llava-vit release code"))
        return
    if rel in CODE_FILES:
        verdict = judge_code(rel, text)
        if verdict.problem is None and (verdict.installed or not installed_only):
            judgement.code[rel] = CodeFile(f"identical to llava-vit {verdict.release}", text)
            return
        if verdict.problem is None:
            problem = f"{rel}: generated by llava-vit {verdict.claimed}, differs from the installed package"
            judgement.code[rel] = CodeFile(f"llava-vit {verdict.release}, not the installed {__version__}", text)
        else:
            problem = verdict.problem
            claimed = f" (header claims llava-vit {verdict.claimed})" if verdict.claimed else " (no provenance header)"
            judgement.code[rel] = CodeFile(f"MODIFIED: matches no llava-vit release{claimed}", text, None, rel)
        judgement.problems.append(Problem(rel, problem.removeprefix(f"{rel}: ") + "; run `llava-vit sync`"))
    elif rel == EXAMPLE_FILE:
        expected = rendered_example(text)
        if expected == text:
            judgement.code[rel] = CodeFile(f"identical to the llava-vit {__version__} template's rendering", text)
            return
        judgement.code[rel] = CodeFile("MODIFIED: not what the llava-vit template renders", text, expected, rel)
        judgement.problems.append(
            Problem(
                rel,
                "differs from what the llava-vit template renders: the card tells users to run it; "
                "re-render it with `copier update` (or delete it) and commit",
            )
        )
    else:
        judgement.code[rel] = CodeFile("NOT llava-vit code", text)
        judgement.problems.append(
            Problem(
                rel,
                "Python file that is not llava-vit release code: transformers runs any module an auto_map or a "
                "relative import names, so none but the release files may be there; delete it",
            )
        )


def _judge_json(judgement: Judgement, source: Source, entry: Entry) -> None:
    try:
        data = parse_json_bytes(source.read(entry, MAX_JSON_BYTES))
    except (UnsafeFile, OSError, ValueError, RecursionError, MemoryError) as error:
        judgement.problems.append(
            Problem(entry.path, f"JSON that cannot be judged ({first_line(error)}): cannot prove it maps no code")
        )
        return
    judgement.problems += json_problems(entry.path, data)


def _judge_other(judgement: Judgement, source: Source, entry: Entry) -> None:
    rel = entry.path
    try:
        sniffed = source.sniff(entry)
    except (UnsafeFile, OSError) as error:
        judgement.problems.append(Problem(rel, f"cannot be read ({first_line(error)}): cannot prove it is no pickle"))
        return
    if sniffed is None:
        message = "content not available here (LFS object not fetched): not inspected"
        if rel.lower().endswith(".safetensors"):
            judgement.warnings.append(Problem(rel, message))
        else:
            judgement.problems.append(Problem(rel, f"{message}; cannot prove it is no pickle (`git lfs fetch`)"))
        return
    if sniffed.pickle is not None:
        inside = f" in{sniffed.pickle}" if sniffed.pickle.strip() else ""
        judgement.problems.append(
            Problem(
                rel, f"pickle (recognised by content){inside}: loading it can run arbitrary code; ask for safetensors"
            )
        )
    elif sniffed.uninspectable:
        judgement.problems.append(Problem(rel, f"{sniffed.uninspectable}: cannot prove it holds no pickle"))


def judge_entries(source: Source, entries: list[Entry], *, installed_only: bool = False) -> Judgement:
    """The verdict on everything in `entries` that could run. `installed_only`: the code files must be this
    installed llava-vit's (check), not only some recorded release (audit)."""
    judgement = Judgement()
    for entry in entries:
        rel, lower = entry.path, entry.path.lower()
        if entry.kind == "symlink":
            judgement.problems.append(Problem(rel, "symlink: never followed; a model repo holds regular files only"))
        elif entry.kind == "submodule":
            judgement.problems.append(Problem(rel, "git submodule: code from elsewhere; a model repo has none"))
        elif entry.kind == "special":
            judgement.problems.append(Problem(rel, "not a regular file (FIFO, socket or device): not read"))
        elif lower.endswith(".py"):
            _judge_python(judgement, source, entry, installed_only)
        elif lower.endswith(COMPILED_SUFFIXES):
            judgement.problems.append(Problem(rel, "compiled code: not llava-vit release code; delete it"))
        elif lower.endswith(".json"):
            if lower.rsplit("/", 1)[-1] == ADAPTER_FILE:
                judgement.problems.append(
                    Problem(
                        rel, "a PEFT adapter config: peft loads base_model_name_or_path's code; a model repo has none"
                    )
                )
            _judge_json(judgement, source, entry)
        else:
            _judge_other(judgement, source, entry)
    paths = {entry.path for entry in entries}
    missing = [name for name in CODE_FILES if name not in paths]
    if missing:
        judgement.problems.append(
            Problem(".", f"{', '.join(missing)} missing: not a complete llava-vit model repo; run `llava-vit sync`")
        )
    if CONFIG_FILE not in paths:
        judgement.problems.append(Problem(".", "config.json missing: not a llava-vit model repo"))
    return judgement


def judge(source: Source, *, installed_only: bool = False) -> Judgement:
    return judge_entries(source, source.entries(), installed_only=installed_only)
