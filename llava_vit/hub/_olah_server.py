"""Run olah (in olah's own virtual environment; imports nothing of llava_vit) answering like the Hub.

olah answers 401 RepoNotFound when a local mirror repo lacks a file or a revision, and for repo info asked
without a revision. The Hub answers 404 EntryNotFound / RevisionNotFound, and repo info for the default branch;
clients rely on that: transformers' AutoImageProcessor probes optional files (processor_config.json) and only
a 404 means "not there" (a missing folder too: AutoProcessor lists one). This wrapper adds those answers
for repos under the mirror folders and leaves every other response as olah gives it.

Usage: python _olah_server.py OLAH-CLI-ARGUMENTS (run by llava_vit.local_hub with olah's interpreter)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

from olah import server
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_RESOLVE = re.compile(r"^/(?:models/)?(?P<org>[^/]+)/(?P<name>[^/]+)/resolve/(?P<revision>[^/]+)/.+$")
# A folder listing; transformers 5's AutoProcessor lists `additional_chat_templates/`, which a repo rarely has.
_TREE = re.compile(r"^/api/models/(?P<org>[^/]+)/(?P<name>[^/]+)/tree/(?P<revision>[^/]+)(?:/.*)?$")
_REPO_INFO = re.compile(r"^/api/models/(?P<org>[^/]+)/(?P<name>[^/]+)/?$")


def _git(repo: Path, *args: str) -> str | None:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _mirror_repo(mirrors: list[Path], org: str, name: str) -> Path | None:
    return next((m / "models" / org / name for m in mirrors if (m / "models" / org / name / ".git").is_dir()), None)


def main() -> None:
    sys.argv = ["olah-cli", *sys.argv[1:]]
    args = server.init()
    mirrors = [Path(path) for path in server.app.state.app_settings.config.mirrors_path]

    @server.app.middleware("http")
    async def answer_like_the_hub(request: Request, call_next):
        info = _REPO_INFO.match(request.url.path)
        repo = _mirror_repo(mirrors, info["org"], info["name"]) if info else None
        if repo is not None:
            branch = _git(repo, "symbolic-ref", "--short", "HEAD") or "main"
            request.scope["path"] = f"{request.url.path.rstrip('/')}/revision/{branch}"
            request.scope["raw_path"] = request.scope["path"].encode()
        response = await call_next(request)
        resolve = _RESOLVE.match(request.url.path) or _TREE.match(request.url.path)
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
