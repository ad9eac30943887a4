"""Record the sha256 of the canonical code files for the current llava-vit version in llava_vit/releases.json.

Run it when cutting a release (and whenever the code files change before one): `llava-vit audit` and
`llava-vit verify` recognise exactly the versions recorded here.
"""

from __future__ import annotations

import json
from pathlib import Path

from llava_vit import __version__
from llava_vit.repo_contract import CODE_FILES, canonical_source, sha256_text

TABLE = Path(__file__).resolve().parent.parent / "llava_vit" / "releases.json"


def main() -> None:
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    table[__version__] = {name: sha256_text(canonical_source(name)) for name in CODE_FILES}
    tmp = TABLE.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    tmp.replace(TABLE)
    print(f"recorded llava-vit {__version__} in {TABLE}")


if __name__ == "__main__":
    main()
