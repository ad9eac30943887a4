"""`llava-vit publish`: run the full check on a committed model repo, then `git push` it, LFS objects included.

Targets: a Hub repo (the remote URL is under the configured endpoint; the repo is created if missing and the
token travels to git in the environment, never in a URL or a file), a local rehearsal Hub (`--local-hub`,
see local_hub.py), or any other git remote. Publishing is idempotent: when the remote already has the commit,
nothing runs.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..checks.check import require_full_check
from ..errors import CheckFailed, LlavaViTError, UsageError
from ..repo_contract import ANSWERS_FILE, MAX_YAML_BYTES, safe_yaml
from ..trust.opener import UnsafeFile, read_regular
from .access import endpoint, ensure_hub_repo, hub_repo_id, redact, require_token, validate_repo_id
from .local_hub import LocalHub, default_hub_dir

HUB_BRANCH = "main"
FULL_CHECK_HOOK = "llava-vit-check-full"


@dataclass(frozen=True)
class Target:
    """Where a publish goes: what git pushes to, and what to tell the user afterwards."""

    remote: str
    branch: str
    kind: str
    display: str
    repo_id: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=env)


def _git_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for git talking to a remote: never prompt, plus any per-call config.

    The repo's hooks call `llava-vit`: the one next to this interpreter comes first on PATH, even when its
    virtual environment is not activated.
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "GIT_TERMINAL_PROMPT": "0", **extra}


def _push_env(extra: dict[str, str]) -> dict[str, str]:
    """`_git_env` for the push itself: pre-commit skips the pre-push full check that publish has just run."""
    skip = [name for name in os.environ.get("SKIP", "").split(",") if name.strip()]
    return {**_git_env(extra), "SKIP": ",".join([*skip, FULL_CHECK_HOOK])}


def repo_root(path: Path) -> Path:
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder; pass the model repo to publish")
    result = _git(path, "rev-parse", "--show-toplevel")
    if result.returncode != 0:
        raise LlavaViTError(
            f"{path.resolve()} is not a git repository: create the model repo with copier (or `git init`, add and "
            "commit its files) first"
        )
    return Path(result.stdout.strip())


def require_committed(root: Path) -> str:
    """HEAD's commit, refusing when there is none or when the working tree differs from it."""
    status = _git(root, "status", "--porcelain")
    if status.stdout.strip():
        changed = ", ".join(line[3:] for line in status.stdout.splitlines()[:5])
        raise LlavaViTError(
            f"uncommitted changes in {root} ({changed}): commit them first (git add -A && git commit), "
            "then publish again"
        )
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    if head.returncode != 0:
        raise LlavaViTError(f"{root} has no commits yet: commit the model files first, then publish")
    return head.stdout.strip()


def _current_branch(root: Path) -> str:
    branch = _git(root, "symbolic-ref", "--short", "-q", "HEAD")
    if branch.returncode != 0:
        raise LlavaViTError(f"{root} is on a detached HEAD: check out the branch to publish, then publish again")
    return branch.stdout.strip()


def _origin_url(root: Path) -> str | None:
    result = _git(root, "remote", "get-url", "origin")
    return result.stdout.strip() if result.returncode == 0 else None


def _answers_repo_id(root: Path) -> str | None:
    """The repo id given to copier when the repo was made from the template, if any."""
    answers = root / ANSWERS_FILE
    if not answers.is_file():
        return None
    try:
        data = safe_yaml(read_regular(answers, MAX_YAML_BYTES).decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, UnsafeFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LlavaViTError(
            f"{answers}: not a plain YAML answers file ({reason}); fix it or pass --repo-id ORG/NAME"
        ) from None
    value = data.get("repo_id") if isinstance(data, dict) else None
    return str(value) if value else None


def _hub_auth_env(token: str) -> dict[str, str]:
    """git config (through the environment) that sends the token to the endpoint only, git and git-lfs alike."""
    index = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    basic = base64.b64encode(f"hf_user:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": f"http.{endpoint()}/.extraheader",
        f"GIT_CONFIG_VALUE_{index}": f"Authorization: Basic {basic}",
    }


def resolve_target(
    root: Path, *, remote: str | None, local_hub: bool, hub_dir: Path | None, repo_id: str | None, private: bool
) -> Target:
    """Pick the push target from the options and the repo's origin, creating the repo where that is our job."""
    origin = remote or _origin_url(root)
    if local_hub:
        repo_id = repo_id or (hub_repo_id(origin) if origin else None) or _answers_repo_id(root)
        if not repo_id:
            raise UsageError(
                f"no repo id for the local hub: pass --repo-id ORG/NAME (or give {root} an origin under {endpoint()})"
            )
        running = LocalHub.find_running(hub_dir)
        hub = running or LocalHub(hub_dir or default_hub_dir())
        hub.create_repo(validate_repo_id(repo_id))
        url = hub.remote_url(repo_id)
        return Target(url, HUB_BRANCH, "local-hub", url, repo_id)
    if origin is None:
        raise UsageError(
            f"{root} has no remote to publish to: pass --remote URL, --local-hub, or "
            f"`git remote add origin {endpoint()}/ORG/NAME`"
        )
    hub_id = hub_repo_id(origin)
    if hub_id is not None:
        token = require_token()
        ensure_hub_repo(hub_id, token, private)
        return Target(remote or "origin", HUB_BRANCH, "hub", f"{endpoint()}/{hub_id}", hub_id, _hub_auth_env(token))
    return Target(remote or "origin", _current_branch(root), "git", redact(origin))


def _remote_head(root: Path, target: Target) -> str | None:
    """The commit the target branch points at on the remote (None for a new branch)."""
    result = _git(root, "ls-remote", target.remote, f"refs/heads/{target.branch}", env=_git_env(target.env))
    if result.returncode != 0:
        reason = redact(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git ls-remote failed")
        raise LlavaViTError(f"cannot read {target.display}: {reason}")
    return result.stdout.split()[0] if result.stdout.strip() else None


def _is_hub_initial_commit(root: Path, commit: str) -> bool:
    """Whether `commit` is the lone commit the Hub makes when it creates a repo (only .gitattributes)."""
    count = _git(root, "rev-list", "--count", commit).stdout.strip()
    files = _git(root, "ls-tree", "--name-only", commit).stdout.split()
    return count == "1" and files == [".gitattributes"]


def _lease(root: Path, target: Target, remote_head: str | None) -> str | None:
    """None for a fast-forward push; a `--force-with-lease` value when replacing the Hub's initial commit."""
    if remote_head is None:
        return None
    if _git(root, "cat-file", "-e", f"{remote_head}^{{commit}}").returncode != 0:
        fetch = _git(
            root, "fetch", "-q", "--no-tags", target.remote, f"refs/heads/{target.branch}", env=_git_env(target.env)
        )
        if fetch.returncode != 0:
            raise LlavaViTError(f"cannot fetch {target.display} {target.branch}: {redact(fetch.stderr.strip())}")
    if _git(root, "merge-base", "--is-ancestor", remote_head, "HEAD").returncode == 0:
        return None
    if target.kind == "hub" and _is_hub_initial_commit(root, remote_head):
        return f"refs/heads/{target.branch}:{remote_head}"
    raise LlavaViTError(
        f"{target.display} {target.branch} is at {remote_head[:12]}, which is not in your history: merge it first "
        f"(git pull {target.display} {target.branch}), then publish again"
    )


def guard_pushed(root: Path, commit: str, remote_head: str | None) -> None:
    """`llava-vit guard` on every commit the push sends (blobs and messages), whatever hooks they skipped."""
    from ..checks.guard import range_problems

    problems = range_problems(root, [commit], [remote_head] if remote_head else [])
    for problem in problems:
        print(f"llava-vit guard: {problem}", file=sys.stderr)
    if problems:
        raise CheckFailed(
            f"the commits to publish hold {len(problems)} problem(s), see above; nothing was pushed: fix them, "
            "rewrite those commits (`git commit --amend` or `git rebase -i`), publish again"
        )


def full_check(root: Path, commit: str) -> None:
    """The pre-push hook's check (`llava-vit check --full --pushed`: the proof of exactly the commit pushed), run
    here too so that nothing skips it and the push can skip the hook's second run."""
    require_full_check(root, "publish", "nothing was pushed: fix, commit, publish again", commit=commit)


def _rejection_reason(lines: list[str]) -> str:
    picked = [line.strip() for line in lines if "rejected]" in line or line.startswith("remote: ")]
    picked = picked or [line.strip() for line in lines if line.startswith(("error:", "fatal:"))]
    picked = picked or lines[-1:] or ["git push failed"]
    return redact("; ".join(dict.fromkeys(filter(None, picked))))[:500]


def _stream(command: list[str], root: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run `command`, echoing its output (credentials redacted) as it comes; return its status and lines."""
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        print(redact(line), end="", file=sys.stderr, flush=True)
    return process.wait(), lines


def push(root: Path, target: Target, lease: str | None) -> None:
    """git push HEAD to the target branch: the pre-push hooks run (git-lfs uploads the objects; the full
    check, just run, is skipped)."""
    command = ["git", "push", "-q", target.remote, f"HEAD:refs/heads/{target.branch}"]
    if lease:
        command.insert(3, f"--force-with-lease={lease}")
    status, lines = _stream(command, root, _push_env(target.env))
    if status != 0:
        raise LlavaViTError(f"push to {target.display} was rejected: {_rejection_reason(lines)}")


def loading_snippet(repo_id: str, commit: str) -> str:
    return (
        "  from transformers import AutoModel\n"
        f'  model = AutoModel.from_pretrained("{repo_id}", revision="{commit}", trust_remote_code=True)'
    )


def _report(target: Target, commit: str, hub_dir: Path | None) -> None:
    if target.kind == "git":
        print(f"published {commit} to {target.display} ({target.branch})")
        return
    assert target.repo_id is not None
    if target.kind == "hub":
        print(f"published {endpoint()}/{target.repo_id} at {commit}")
    else:
        running = LocalHub.find_running(hub_dir)
        print(f"published {target.repo_id} at {commit} into the local hub ({target.display})")
        if running is not None:
            print(f"use it with: HF_ENDPOINT={running.endpoint}")
        else:
            where = hub_dir or default_hub_dir()
            print(f"serve it with `llava-vit local-hub start --dir {where}`, then use the HF_ENDPOINT=... it prints")
    print("load it with:")
    print(loading_snippet(target.repo_id, commit))


def publish(
    repo: Path,
    *,
    remote: str | None = None,
    local_hub: bool = False,
    hub_dir: Path | None = None,
    repo_id: str | None = None,
    private: bool = False,
) -> str:
    """Check and push the committed repo; return the published commit."""
    root = repo_root(repo)
    commit = require_committed(root)
    target = resolve_target(root, remote=remote, local_hub=local_hub, hub_dir=hub_dir, repo_id=repo_id, private=private)
    remote_head = _remote_head(root, target)
    if remote_head == commit:
        print(f"nothing new to publish: {target.display} already at {commit}")
        return commit
    lease = _lease(root, target, remote_head)
    guard_pushed(root, commit, remote_head)
    full_check(root, commit)
    push(root, target, lease)
    _report(target, commit, hub_dir)
    return commit


def _run(args: argparse.Namespace) -> int:
    if args.hub_dir is not None and not args.local_hub:
        raise UsageError("--hub-dir goes with --local-hub")
    if args.local_hub and args.remote:
        raise UsageError("pass either --remote or --local-hub, not both")
    publish(
        args.repo,
        remote=args.remote,
        local_hub=args.local_hub,
        hub_dir=args.hub_dir,
        repo_id=args.repo_id,
        private=args.private,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish", help="check a committed model repo, then git push it (with LFS objects) to the Hub or a remote"
    )
    parser.add_argument("repo", nargs="?", type=Path, default=Path("."), help="the model repo (default: .)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private (when it is new)")
    parser.add_argument("--remote", help="push here instead of origin (a Hub URL or any git URL, e.g. file://...)")
    parser.add_argument("--local-hub", action="store_true", help="push into the local rehearsal hub instead")
    parser.add_argument("--hub-dir", type=Path, default=None, help=f"local hub folder (default {default_hub_dir()})")
    parser.add_argument("--repo-id", help="ORG/NAME in the local hub (default: from origin or .copier-answers.yml)")
    parser.set_defaults(handler=_run)
