"""Run olah (in olah's own virtual environment; imports nothing of llava_vit) answering like the Hub.

olah answers 401 RepoNotFound when a local mirror repo lacks a file or a revision, and for repo info asked
without a revision. The Hub answers 404 EntryNotFound / RevisionNotFound, and repo info for the default branch;
clients rely on that: transformers' AutoImageProcessor probes optional files (processor_config.json) and only
a 404 means "not there" (a missing folder too: AutoProcessor lists one). This wrapper adds those answers
for repos under the mirror folders and leaves every other response as olah gives it.

olah only reads. The Hub's write API as huggingface_hub's `create_repo`, `create_branch` and `create_commit`
(hence `upload_folder`, `push_to_hub`, `hf upload`) use it is answered here, on the first mirror folder: every file
is committed as a regular git blob (the preupload answer), with git's plumbing, so a commit is one ref update.

Usage: python _olah_server.py OLAH-CLI-ARGUMENTS (run by llava_vit.local_hub with olah's interpreter)
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote

from olah import server
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_RESOLVE = re.compile(r"^/(?:models/)?(?P<org>[^/]+)/(?P<name>[^/]+)/resolve/(?P<revision>[^/]+)/.+$")
# A folder listing; transformers 5's AutoProcessor lists `additional_chat_templates/`, which a repo rarely has.
_TREE = re.compile(r"^/api/models/(?P<org>[^/]+)/(?P<name>[^/]+)/tree/(?P<revision>[^/]+)(?:/.*)?$")
_REPO_INFO = re.compile(r"^/api/models/(?P<org>[^/]+)/(?P<name>[^/]+)/?$")
_WRITE = re.compile(
    r"^/api/models/(?P<org>[^/]+)/(?P<name>[^/]+)/(?P<action>preupload|commit|branch)/(?P<revision>.+)$"
)
_DISCUSSION = re.compile(r"^/api/models/(?P<org>[^/]+)/(?P<name>[^/]+)/discussions(?:/(?P<num>\d+))?$")
# A pull request's revision, `refs/pr/N` (decoded from refs%2Fpr%2FN), where the Hub API takes a revision.
_PR_REVISION = re.compile(
    r"^(?P<prefix>/api/models/(?P<org>[^/]+)/(?P<name>[^/]+)/(?:revision|tree)/"
    r"|/(?:models/)?(?P<org2>[^/]+)/(?P<name2>[^/]+)/resolve/)refs/pr/(?P<num>[0-9]+)(?P<rest>/.*)?$"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMITTER = {"GIT_AUTHOR_NAME": "local hub", "GIT_AUTHOR_EMAIL": "local-hub@llava-vit.invalid"}
_COMMITTER |= {"GIT_COMMITTER_NAME": "local hub", "GIT_COMMITTER_EMAIL": "local-hub@llava-vit.invalid"}


def _git(repo: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str | None:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, input=stdin, env=env)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": message}, status_code=status, headers={"x-error-code": code, "x-error-message": message}
    )


def _create_repo(root: Path, payload: dict, endpoint: str) -> JSONResponse:
    """POST /api/repos/create: a non-bare repo that also accepts `git push` (as LocalHub.create_repo), with an
    initial commit on main as the Hub makes one."""
    org, name = payload.get("organization"), payload.get("name")
    if payload.get("type", "model") != "model" or not all(isinstance(p, str) and _NAME.match(p) for p in (org, name)):
        return _error(400, "BadRequest", "the local hub holds model repos named ORG/NAME")
    path = root / "models" / org / name
    if (path / ".git").is_dir():  # the Hub's answer names the repo too (create_repo(exist_ok=True) reads it)
        message = "You already created this model repo"
        headers = {"x-error-code": "RepoExists", "x-error-message": message}
        return JSONResponse({"error": message, "url": f"{endpoint}/{org}/{name}"}, status_code=409, headers=headers)
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "receive.denyCurrentBranch", "updateInstead")
    _git(path, "commit", "-q", "--allow-empty", "-m", "initial commit", env={**os.environ, **_COMMITTER})
    return JSONResponse({"url": f"{endpoint}/{org}/{name}", "name": f"{org}/{name}"})


def _create_branch(repo: Path, branch: str, payload: dict) -> JSONResponse:
    start = _git(repo, "rev-parse", "--verify", "-q", f"{payload.get('startingPoint') or 'HEAD'}^{{commit}}")
    if start is None:
        return _error(404, "RevisionNotFound", "Invalid rev id: no starting point")
    if _git(repo, "check-ref-format", f"refs/heads/{branch}") is None:
        return _error(400, "BadRequest", f"invalid branch name {branch!r}")
    if _git(repo, "update-ref", f"refs/heads/{branch}", start, "0" * 40) is None:
        return _error(409, "Conflict", f"Reference already exists: refs/heads/{branch}")
    return JSONResponse({})


def _commit(repo: Path, revision: str, lines: list[dict], create_pr: bool, endpoint: str) -> JSONResponse:
    """POST /api/models/ORG/NAME/commit/REV (ndjson: header, then file / deletedFile / deletedFolder)."""
    head_branch = _git(repo, "symbolic-ref", "--short", "HEAD") or "main"
    ref = revision if revision.startswith("refs/pr/") else f"refs/heads/{revision}"
    parent = _git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    if parent is None:
        return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    header = next((line["value"] for line in lines if line.get("key") == "header"), {})
    message = "\n\n".join(part for part in (header.get("summary"), header.get("description")) if part)
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, **_COMMITTER, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(repo, "read-tree", parent, env=env)
        for line in lines:
            key, value = line.get("key"), line.get("value") or {}
            path = value.get("path", "")
            if key == "header":
                continue
            if path.startswith("/") or ".." in path.split("/") or ".git" in path.split("/"):
                return _error(400, "BadRequest", f"invalid path {path!r}")
            if key == "file":
                blob = _git(repo, "hash-object", "-w", "--stdin", stdin=base64.b64decode(value["content"]))
                _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            elif key in ("deletedFile", "deletedFolder"):
                for tracked in (_git(repo, "ls-files", "-z", "--", path, env=env) or "").split("\0"):
                    if tracked:
                        _git(repo, "update-index", "--force-remove", "--", tracked, env=env)
            else:
                return _error(400, "BadRequest", f"the local hub takes regular files only, not {key}")
        tree = _git(repo, "write-tree", env=env)
    commit = _git(repo, "commit-tree", tree, "-p", parent, "-m", message or "Upload", env=env)
    repo_url = f"{endpoint}/{repo.parent.name}/{repo.name}"
    answer = {"commitOid": commit, "commitUrl": f"{repo_url}/commit/{commit}", "pullRequestUrl": None}
    if create_pr:  # huggingface_hub < 1.x: the commit opens the pull request
        number = _open_pull_request(repo, commit)
        return JSONResponse({**answer, "pullRequestUrl": f"{repo_url}/discussions/{number}"})
    if _git(repo, "update-ref", ref, commit, parent) is None:
        return _error(412, "PreconditionFailed", f"{revision} moved during the commit; retry")
    if revision == head_branch:
        _git(repo, "reset", "-q", "--hard", commit)  # the working tree of the checked-out branch follows
    return JSONResponse(answer)


def _open_pull_request(repo: Path, commit: str) -> int:
    """A pull request is a ref refs/pr/N on the Hub; its number."""
    number = 1 + len((_git(repo, "for-each-ref", "--format=%(refname)", "refs/pr/") or "").split())
    _git(repo, "update-ref", f"refs/pr/{number}", commit)
    return number


def _discussion(repo: Path, number: int, endpoint: str) -> JSONResponse:
    """A pull request's details, as huggingface_hub's get_discussion_details reads them."""
    if _git(repo, "rev-parse", "--verify", "-q", f"refs/pr/{number}") is None:
        return _error(404, "EntryNotFound", f"Discussion {number} not found")
    details = {
        "num": number,
        "title": _git(repo, "log", "-1", "--format=%s", f"refs/pr/{number}") or "pull request",
        "author": {"name": "local hub"},
        "createdAt": "1970-01-01T00:00:00.000Z",
        "status": "open",
        "repo": {"name": f"{repo.parent.name}/{repo.name}", "type": "model"},
        "isPullRequest": True,
        "events": [],
        "changes": {"base": "refs/heads/main"},
        "filesWithConflicts": [],
        "diff": "",
    }
    return JSONResponse(details)


async def _write_api(request: Request, mirrors: list[Path]) -> Response | None:
    """The answer to a write request of the Hub API, or None for every other request."""
    if not mirrors:
        return None
    endpoint = str(request.base_url).rstrip("/")
    discussion = _DISCUSSION.match(request.url.path)
    repo = _mirror_repo(mirrors, discussion["org"], discussion["name"]) if discussion else None
    if repo is not None and request.method == "POST" and discussion["num"] is None:
        # huggingface_hub >= 1.x opens the pull request first, then commits to its ref
        return JSONResponse({"num": _open_pull_request(repo, _git(repo, "rev-parse", "HEAD") or "")})
    if repo is not None and request.method == "GET" and discussion["num"] is not None:
        return _discussion(repo, int(discussion["num"]), endpoint)
    if request.method != "POST":
        return None
    if request.url.path == "/api/repos/create":
        return _create_repo(mirrors[0], json.loads(await request.body()), endpoint)
    if request.url.path == "/api/validate-yaml":
        return JSONResponse({"errors": [], "warnings": []})
    match = _WRITE.match(request.url.path)
    if match is None:
        return None
    repo = _mirror_repo(mirrors, match["org"], match["name"])
    if repo is None:
        return _error(404, "RepoNotFound", f"Repository not found: {match['org']}/{match['name']}")
    revision, body = unquote(match["revision"]), await request.body()
    if match["action"] == "preupload":
        files = json.loads(body).get("files", [])
        answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]
        return JSONResponse({"files": answer, "commitOid": None})
    if match["action"] == "branch":
        return _create_branch(repo, revision, json.loads(body or b"{}"))
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    return _commit(repo, revision, lines, request.query_params.get("create_pr") == "1", endpoint)


def _mirror_repo(mirrors: list[Path], org: str, name: str) -> Path | None:
    return next((m / "models" / org / name for m in mirrors if (m / "models" / org / name / ".git").is_dir()), None)


def main() -> None:
    sys.argv = ["olah-cli", *sys.argv[1:]]
    args = server.init()
    mirrors = [Path(path) for path in server.app.state.app_settings.config.mirrors_path]

    @server.app.middleware("http")
    async def answer_like_the_hub(request: Request, call_next):
        written = await _write_api(request, mirrors)
        if written is not None:
            return written
        pull = _PR_REVISION.match(request.url.path)
        repo = _mirror_repo(mirrors, pull["org"] or pull["org2"], pull["name"] or pull["name2"]) if pull else None
        commit = _git(repo, "rev-parse", "--verify", "-q", f"refs/pr/{pull['num']}^{{commit}}") if repo else None
        if commit is not None:  # olah knows branches and commits: answer for the commit the pull request is at
            request.scope["path"] = f"{pull['prefix']}{commit}{pull['rest'] or ''}"
            request.scope["raw_path"] = request.scope["path"].encode()
        info = _REPO_INFO.match(request.url.path)
        repo = _mirror_repo(mirrors, info["org"], info["name"]) if info else None
        if repo is not None:
            branch = _git(repo, "symbolic-ref", "--short", "HEAD") or "main"
            request.scope["path"] = f"{request.url.path.rstrip('/')}/revision/{branch}"
            request.scope["raw_path"] = request.scope["path"].encode()
        response = await call_next(request)
        path = request.scope["path"]  # as answered (a pull request's revision is its commit by now)
        resolve = _RESOLVE.match(path) or _TREE.match(path)
        if response.status_code != 401 or resolve is None:
            return response
        repo = _mirror_repo(mirrors, resolve["org"], resolve["name"])
        if repo is None:
            return response
        revision = unquote(resolve["revision"])
        if _git(repo, "rev-parse", "--verify", "-q", f"{revision}^{{commit}}") is None:
            message = f"Invalid rev id: {revision}"
            headers = {"x-error-code": "RevisionNotFound", "x-error-message": message}
            return JSONResponse({"error": message}, status_code=404, headers=headers)
        headers = {"x-error-code": "EntryNotFound", "x-error-message": "Entry not found"}
        return Response(status_code=404, headers=headers)

    server.run_server(args)


if __name__ == "__main__":
    main()
