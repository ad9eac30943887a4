"""`.copier-answers.yml` must point `copier update` at the llava-vit template.

`copier update` renders the template named by the answers file's `_src_path` and runs its `_tasks` and Jinja
extensions: a repo handed to you can name any template there. The rule, judged offline and by content:

- a local folder (relative paths are relative to the repo; `~` and `file://` are understood) passes when its
  `copier.yml` is byte for byte the installed llava-vit's (and there is no `copier.yaml` beside it): the same
  tasks and extensions as the template that made the repo;
- a remote template (a URL, `gh:`/`gl:` or `git@host:`) passes only when it is one of llava-vit's own project
  URLs, as recorded in the installed package's metadata (`Project-URL`), compared without `.git` or a trailing
  slash; nothing is downloaded to look at it.

Anything else is one problem line. An answers file without `_src_path`, or no answers file, is nothing to judge.
"""

from __future__ import annotations

import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import LlavaViTError
from ..repo_contract import ANSWERS_FILE, MAX_YAML_BYTES, safe_yaml
from ..trust.opener import UnsafeFile, read_regular

TEMPLATE_CONFIG = "copier.yml"
_FIX = "point _src_path at a llava-vit checkout or the installed template (`llava-vit new` uses it), or delete it"


def _installed_template_config() -> bytes | None:
    """The installed llava-vit's copier.yml (wheel: llava_vit/_template; checkout: the project root)."""
    from ..scaffold.new import template_path

    try:
        return read_regular(template_path() / TEMPLATE_CONFIG, MAX_YAML_BYTES, follow=True)
    except (OSError, LlavaViTError, ValueError):  # no template installed: no local folder can be proven to be it
        return None


def _normal_url(url: str) -> str:
    url = url.strip().rstrip("/")
    for prefix, host in (("gh:", "https://github.com/"), ("gl:", "https://gitlab.com/")):
        if url.startswith(prefix):
            url = host + url[len(prefix) :]
    if url.startswith("git@") and ":" in url:  # git@github.com:org/name -> https://github.com/org/name
        host, _, rest = url[len("git@") :].partition(":")
        url = f"https://{host}/{rest}"
    url = url.removeprefix("git+")
    return url.removesuffix(".git").rstrip("/").lower()


def _project_urls() -> set[str]:
    try:
        entries = importlib_metadata.metadata("llava-vit").get_all("Project-URL") or []
    except importlib_metadata.PackageNotFoundError:
        return set()
    return {_normal_url(entry.partition(",")[2]) for entry in entries if entry.partition(",")[2].strip()}


def _is_remote(source: str) -> bool:
    if source.startswith(("gh:", "gl:", "git@")):
        return True
    scheme = urlparse(source).scheme
    return len(scheme) > 1 and scheme != "file"  # one letter: a Windows drive


def template_source_problems(repo: Path) -> list[str]:
    """One line when the repo's `.copier-answers.yml` names a template that is not llava-vit's; else none."""
    problem = _template_source_problem(repo)
    return [] if problem is None else [problem]


def _template_source_problem(repo: Path) -> str | None:
    import yaml

    path = repo / ANSWERS_FILE
    if not os.path.lexists(path):
        return None
    try:
        data = safe_yaml(read_regular(path, MAX_YAML_BYTES).decode("utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:  # UnsafeFile and UnicodeDecodeError are ValueErrors
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"{ANSWERS_FILE}: cannot be read ({reason}); fix it or delete it (only `copier update` uses it)"
    source = data.get("_src_path") if isinstance(data, dict) else None
    if source is None:
        return None
    shown = repr(source)[:200]
    if not isinstance(source, str) or not source.strip() or "\n" in source or "\0" in source:
        return f"{ANSWERS_FILE}: _src_path {shown} is not a template location; {_FIX}"
    if _is_remote(source):
        if _normal_url(source) in _project_urls():
            return None
        return (
            f"{ANSWERS_FILE}: _src_path {shown} is not one of llava-vit's project URLs, so `copier update` would run "
            f"that template's tasks; {_FIX}"
        )
    local = unquote(urlparse(source).path) if source.startswith("file://") else source
    folder = (repo / Path(local).expanduser()).resolve()
    expected = _installed_template_config()
    try:
        found = read_regular(folder / TEMPLATE_CONFIG, MAX_YAML_BYTES, follow=True)
    except (OSError, UnsafeFile):
        found = None
    if found is not None and found == expected and not os.path.lexists(folder / "copier.yaml"):
        return None
    return (
        f"{ANSWERS_FILE}: _src_path {shown} does not hold the installed llava-vit's template (its {TEMPLATE_CONFIG} "
        f"differs or is missing), so `copier update` would run that template's tasks; {_FIX}"
    )
