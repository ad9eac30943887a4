"""`llava-vit guard`: block what the Hub rejects or what must never be published.

Three ways to say what is checked: the files of a commit (pre-commit passes them; default: every file git
tracks), `--range FROM..TO` (every blob written by every commit in the range, and every commit header and
message), or `--pushed` (what pre-commit's pre-push hook is about to push, from PRE_COMMIT_FROM_REF/
PRE_COMMIT_TO_REF, so `git commit --no-verify` cannot smuggle anything past the push). Every annotated tag's
message is guarded with a range too (`git push --tags` and `push.followTags` send them). `llava-vit publish`
guards its push the same way, and `upload` the files it sends. Commits are read through the trust boundary's
reader (git's object database; LFS objects re-hashed against their oids), content through its sniffer: big or
binary files outside git-lfs (the Hub refuses them), pickles and archives that cannot be inspected (recognised
by content, whatever their name: they run code on load) and Hugging Face tokens (any text encoding, escaped,
compressed, in archives, in safetensors metadata, in commit and tag messages). One line per problem, with the
file (and line) and the fix.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli import program_name
from ..errors import UsageError, one_line
from ..repo_contract import MAX_PLAIN_BYTES
from ..trust.gitdb import ZERO_OID, GitDB, find_git_dir
from ..trust.opener import UnsafeFile
from ..trust.reader import Entry, FolderSource, RangeSource, Source, first_line
from ..trust.sniff import TOKEN_RE, TokenScan, token_scan

TOKEN_FIX = "remove it, revoke it at https://huggingface.co/settings/tokens, and use HF_TOKEN or `hf auth login`"


def token_problems(name: str, scan: TokenScan) -> list[str]:
    problems = [f"{name}:{line}: looks like a Hugging Face token (hf_...); {TOKEN_FIX}" for line in sorted(scan.lines)]
    problems += [
        f"{name}: holds a Hugging Face token (hf_...) in {encoding} text; {TOKEN_FIX}"
        for encoding in sorted(scan.encodings)
    ]
    return problems


def name_problems(names: list[str]) -> list[str]:
    """A token spelled in a file's name travels with every clone too."""
    return [
        f"{one_line(TOKEN_RE.sub('hf_...', name))}: its file name holds a Hugging Face token; rename the file, "
        f"{TOKEN_FIX.split(', ', 1)[1]}"
        for name in names
        if TOKEN_RE.search(name)
    ]


def content_problems(source: Source, entry: Entry, in_lfs: bool) -> list[str]:
    """Pickle, archives that cannot be inspected, size/binary outside LFS, tokens: one fix-it line each."""
    name = one_line(entry.path)
    try:
        sniffed = source.sniff(entry, tokens=True)
    except (UnsafeFile, OSError) as error:
        return [f"{name}: cannot be read ({first_line(error)}); nothing unread is published"]
    if sniffed is None:
        return [
            f"{name}: its git-lfs object is not in this clone, so its content cannot be checked; "
            "run `git lfs fetch --all`"
        ]
    if sniffed.safetensors_header is not None and (header := token_scan([sniffed.safetensors_header])).found:
        tokens = token_problems(f"{name} (safetensors header)", header)
    else:
        tokens = token_problems(name, sniffed.tokens)
    tokens += [f"{name}: holds a Hugging Face token (hf_...) in {where}; {TOKEN_FIX}" for where in sniffed.inner_tokens]
    if sniffed.pickle is not None:
        inside = f" in{sniffed.pickle}" if sniffed.pickle else ""
        return [
            f"{name}: pickle (recognised by content){inside} is not published (loading one runs arbitrary code); "
            f"convert it with `llava-vit export --weights {name} ...` to safetensors and `git rm --cached -- {name}`"
        ] + tokens
    problems = []
    if sniffed.uninspectable:
        problems.append(f"{name}: {sniffed.uninspectable}: cannot prove it holds no pickle; remove it")
    if not in_lfs and entry.size > MAX_PLAIN_BYTES:
        problems.append(
            f"{name}: {entry.size / 2**20:.1f} MB outside git-lfs; the Hub rejects files over 10 MB without LFS: "
            f"run `git lfs track '{name}'`, `git rm --cached -- {name}`, then `git add .gitattributes {name}`"
        )
    elif not in_lfs and sniffed.binary:
        problems.append(
            f"{name}: binary file outside git-lfs (whatever its suffix); the Hub rejects it: run "
            f"`git lfs track '{name}'`, `git rm --cached -- {name}`, then `git add .gitattributes {name}`"
        )
    return problems + tokens


def source_problems(source: Source, entries: list[Entry], lfs_rules: bool = True) -> list[str]:
    """Every problem in `entries` of `source`; symlinks, FIFOs and devices are never followed or read.
    `lfs_rules`: large or binary files must be in git-lfs (a git push; the Hub's HTTP API decides that itself)."""
    files = [entry for entry in entries if entry.kind == "file"]
    covered = source.lfs_covered([entry.path for entry in files if not entry.lfs]) if lfs_rules else None
    problems = name_problems([entry.path for entry in entries])
    for entry in files:
        problems += content_problems(source, entry, covered is None or entry.lfs or entry.path in covered)
    return problems


def file_problems(repo: Path, names: list[str]) -> list[str]:
    """Every problem in the given files of the work tree (paths relative to `repo`), one fix-it line each."""
    with FolderSource(repo, names) as source:
        return source_problems(source, source.entries())


# --- commits (pre-push, publish) -------------------------------------------------------------------------
def pushed_range(db: GitDB) -> tuple[list[str], list[str]]:
    """(tips, exclude) of what pre-commit's pre-push hook is pushing: FROM..TO when it says so; else (a new branch)
    every commit of the pushed branch that no remote-tracking ref of the remote has."""
    from_ref, to_ref = os.environ.get("PRE_COMMIT_FROM_REF"), os.environ.get("PRE_COMMIT_TO_REF")
    if from_ref and to_ref and from_ref != ZERO_OID:
        return [db.commit(to_ref)], [db.commit(from_ref)]
    tip = db.commit(to_ref or os.environ.get("PRE_COMMIT_LOCAL_BRANCH") or "HEAD")
    remote = os.environ.get("PRE_COMMIT_REMOTE_NAME")
    pattern = f"refs/remotes/{remote}/" if remote else "refs/remotes/"
    return [tip], [oid for _, oid, kind in db.ref_oids(pattern) if kind == "commit"]


def range_of(db: GitDB, text: str) -> tuple[list[str], list[str]]:
    """(tips, exclude) for FROM..TO (FROM empty or all zeros: everything reachable from TO)."""
    start, dots, end = text.partition("..")
    if not dots or not end or end.startswith("."):
        raise UsageError(f"--range {text!r}: expected FROM..TO (two commits), e.g. origin/main..HEAD")
    tip = db.commit(end)
    return ([tip], []) if not start or start == ZERO_OID else ([tip], [db.commit(start)])


def range_problems(repo: Path, tips: list[str], exclude: list[str]) -> list[str]:
    """Every problem in the blobs written by the commits reachable from `tips` and from none of `exclude`, in their
    messages and in the annotated tags a push may send along."""
    with RangeSource(repo, tips, exclude) as source:
        problems = []
        for what, text in source.messages():
            problems += token_problems(what, token_scan([text]))
        return problems + source_problems(source, source.entries())


def tracked_names(repo: Path) -> list[str]:
    """The paths git's index tracks (read from the index file alone; its flags are not trusted for content)."""
    with GitDB(repo) as db:
        out = db.refs_git("--work-tree", str(repo.resolve()), "ls-files", "-z", "--cached")
    return [name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def run(args: argparse.Namespace) -> int:
    repo = Path.cwd()
    if find_git_dir(repo) is None:
        raise UsageError(
            f"{repo} is not the root of a git repository; run `llava-vit guard` there (it reads .gitattributes "
            "to know what git-lfs stores)"
        )
    if args.range or args.pushed:
        if args.files:
            raise UsageError("pass files, or --range/--pushed, not both")
        with GitDB(repo) as db:
            tips, exclude = range_of(db, args.range) if args.range else pushed_range(db)
        problems = range_problems(repo, tips, exclude)
    else:
        names = args.files or tracked_names(repo)
        for name in names:
            if Path(name).is_absolute():
                raise UsageError(f"{name}: pass paths relative to the repository root (as pre-commit does)")
        problems = file_problems(repo, names)
    for problem in problems:
        print(f"{program_name()} guard: {problem}", file=sys.stderr)
    if problems and (args.range or args.pushed):
        print(
            f"{program_name()} guard: these are in commits about to be pushed: fix them, rewrite those commits "
            "(`git commit --amend` or `git rebase -i`), then push",
            file=sys.stderr,
        )
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "guard",
        help="block big/binary files outside git-lfs, pickle checkpoints and Hugging Face tokens",
        description="Check files (default: every file git tracks), or every commit of a range, before they are "
        "committed or pushed. Put `--` before file names that start with '-'.",
    )
    parser.add_argument("files", nargs="*", help="paths relative to the repository root (pre-commit passes them)")
    parser.add_argument("--range", metavar="FROM..TO", help="guard every blob and message of these commits")
    parser.add_argument(
        "--pushed",
        action="store_true",
        help="guard the commits pre-commit's pre-push hook is pushing (PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF)",
    )
    parser.set_defaults(handler=run)
