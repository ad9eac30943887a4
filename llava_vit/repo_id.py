"""Hub repo ids (ORG/NAME): one rule, the Hub's, for every command and the template's questions."""

from __future__ import annotations

import re

# Letters, digits, '-', '_', '.'; no '--' or '..'; no leading or trailing '-' or '.'; at most 96 characters a part.
_PART = r"(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID_RE = re.compile(rf"^{_PART}/{_PART}$")
RULE = (
    "ORG/NAME with letters, digits, '-', '_' or '.' (no '--' or '..', not starting or ending with '-' or '.'), "
    "e.g. acme/my-vit"
)


def is_repo_id(text: str | None) -> bool:
    return bool(_REPO_ID_RE.match(text or ""))
