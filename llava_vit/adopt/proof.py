"""adopt's proof: the source repo's own code and the adopted folder's, each in its own offline interpreter, on the
same fixed inputs (square and non-square images through each repo's own image processor, a 5D clip, the clip with
`visible_indices`, the clip with `patch_positions`); they must agree within TOLERANCE in float32.

Running the source's worker runs the source's Python code, as `trust_remote_code=True` would.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckFailed, LlavaViTError, one_line

TOLERANCE = 1e-4
WORKER = Path(__file__).resolve().parent / "_proof_worker.py"
TIMEOUT_S = 3600


@dataclass(frozen=True)
class Row:
    case: str
    output: str
    shape: tuple[int, ...]
    max_abs_diff: float


@dataclass(frozen=True)
class Proof:
    rows: list[Row]
    source_versions: str
    adopted_versions: str

    @property
    def worst(self) -> float:
        return max((row.max_abs_diff for row in self.rows), default=float("inf"))

    @property
    def passed(self) -> bool:
        return bool(self.rows) and self.worst <= TOLERANCE

    def markdown(self) -> str:
        """The table the card (or the pull request) shows."""
        lines = [
            f"Outputs of the original code ({self.source_versions}) and of this repo's code "
            f"({self.adopted_versions}), each loaded in float32 in its own offline process, on the same inputs; "
            f"largest absolute difference (agreement required: {TOLERANCE:g}):",
            "",
            "| input | output | shape | max abs diff |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {row.case} | {row.output} | {'x'.join(map(str, row.shape))} | {row.max_abs_diff:.3g} |"
            for row in self.rows
        ]
        return "\n".join(lines) + "\n"


def run_worker(python: str, folder: Path, output: Path, scratch: Path, label: str) -> None:
    """The worker in a fresh interpreter: isolated (-I), offline, with its own remote-code module cache."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_MODULES_CACHE=str(scratch / f"modules-{label}"),
        TOKENIZERS_PARALLELISM="false",
    )
    try:
        result = subprocess.run(
            [python, "-I", str(WORKER), str(folder), str(output)],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT_S,
            cwd=scratch,
        )
    except FileNotFoundError:
        raise LlavaViTError(f"--python {one_line(python)} does not exist; name a Python interpreter") from None
    except subprocess.TimeoutExpired:
        raise LlavaViTError(f"running the {label} model took more than {TIMEOUT_S} s; nothing was written") from None
    if result.returncode != 0:
        tail = [line.strip() for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
        reason = one_line(tail[-1]) if tail else f"exit {result.returncode}"
        raise LlavaViTError(
            f"running the {label} model with {one_line(python)} failed ({reason}); it needs torch, transformers, "
            "numpy, safetensors and pillow (upstream's code needs transformers 4.57: pass --python of such an "
            "environment); nothing was written"
        )


def _versions(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    return f"transformers {meta.get('transformers', '?')}, torch {meta.get('torch', '?')}"


def compare(source: Path, adopted: Path) -> Proof:
    from safetensors.torch import load_file

    expected, got = load_file(str(source)), load_file(str(adopted))
    if set(expected) != set(got):
        missing = sorted(set(expected) ^ set(got))
        raise CheckFailed(f"the two models give different outputs: only one of them has {', '.join(missing)}")
    rows = []
    for key in expected:
        case, output = key.split(".", 1)
        if expected[key].shape != got[key].shape:
            raise CheckFailed(
                f"{case} {output}: shape {list(got[key].shape)} differs from the source's {list(expected[key].shape)}"
            )
        diff = (expected[key] - got[key]).abs().max().item() if expected[key].numel() else 0.0
        rows.append(Row(case, output, tuple(expected[key].shape), float(diff)))
    return Proof(rows, _versions(source), _versions(adopted))


def prove(source: Path, adopted: Path, python: str, adopted_python: str) -> Proof:
    """Run both models and compare; the Proof says whether they agree (the caller decides what to do)."""
    with tempfile.TemporaryDirectory(prefix="llava-vit-adopt-proof-") as work:
        scratch = Path(work)
        run_worker(python, source, scratch / "source.safetensors", scratch, "source")
        run_worker(adopted_python, adopted, scratch / "adopted.safetensors", scratch, "adopted")
        return compare(scratch / "source.safetensors", scratch / "adopted.safetensors")
