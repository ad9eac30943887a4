"""Talking to a Hub endpoint: the token, repo creation, and Hub/network failures as one-line errors.

Shared by `publish` (git path) and `upload` (one-shot path). huggingface_hub's transport differs between
its release lines (requests below 1.0, httpx after), so network failures are recognised by the transport
error classes of whichever library is installed.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from huggingface_hub import constants, create_repo, get_token
from huggingface_hub.errors import HfHubHTTPError

from ..errors import LlavaViTError, UsageError
from ..repo_contract import REPO_ID_RULE as RULE
from ..repo_contract import is_repo_id

_CREDENTIALS_RE = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def validate_repo_id(repo_id: str) -> str:
    """`repo_id` if it is ORG/NAME as the Hub spells them (it also names folders: no `..`, no extra `/`)."""
    if not is_repo_id(repo_id):
        raise UsageError(f"{repo_id!r} is not a repo id; expected {RULE}")
    return repo_id


def redact(text: str) -> str:
    """`text` with the user:password part of every URL in it replaced, so tokens never reach a log."""
    return _CREDENTIALS_RE.sub(r"\1***@", text)


def endpoint() -> str:
    """The Hub endpoint huggingface_hub talks to (`HF_ENDPOINT`, default https://huggingface.co)."""
    return constants.ENDPOINT.rstrip("/")


def hub_repo_id(url: str) -> str | None:
    """ORG/NAME when `url` is a model repo under the configured endpoint, else None."""
    base, target = urlsplit(endpoint()), urlsplit(url)
    if (target.scheme, target.hostname, target.port) != (base.scheme, base.hostname, base.port):
        return None
    prefix = base.path.rstrip("/") + "/"
    if not target.path.startswith(prefix):
        return None
    path = target.path[len(prefix) :].strip("/").removesuffix(".git")
    parts = path.split("/")
    if parts[0] in ("datasets", "spaces"):
        raise UsageError(f"{redact(url)} is a {parts[0][:-1]} repo; llava-vit publishes model repos only")
    if len(parts) != 2 or not all(parts):
        raise UsageError(f"{redact(url)} does not name a Hub model repo; expected {endpoint()}/ORG/NAME")
    return path


def require_token() -> str:
    token = get_token()
    if not token:
        raise LlavaViTError(f"no Hugging Face token for {endpoint()}: set HF_TOKEN, or run `hf auth login`")
    return token


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of whichever HTTP library this huggingface_hub uses."""
    found: list[type[BaseException]] = [OSError]
    for module in ("httpx", "httpx2"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


@contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn Hub HTTP and network failures inside the block into one-line LlavaViTErrors."""
    try:
        yield
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if status == 401:
            raise LlavaViTError(
                f"{endpoint()} rejected the token: check HF_TOKEN or run `hf auth login` again ({first_line})"
            ) from error
        if status == 403:
            raise LlavaViTError(
                f"not allowed to write {repo_id} on {endpoint()}: the namespace belongs to someone else or the "
                f"token has no write access ({first_line})"
            ) from error
        if status == 404:
            raise LlavaViTError(f"{repo_id} not found on {endpoint()}: check the ORG/NAME ({first_line})") from error
        raise LlavaViTError(f"{endpoint()} answered {status} for {repo_id}: {first_line}") from error
    except _transport_errors() as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LlavaViTError(f"cannot reach {endpoint()}: {redact(reason)}; check the network or HF_ENDPOINT") from error


def ensure_hub_repo(repo_id: str, token: str, private: bool) -> None:
    """Create the model repo if it does not exist (an existing one is left as it is)."""
    with hub_errors(repo_id):
        create_repo(repo_id, token=token, private=private, exist_ok=True)
