"""`llava-vit demo`: the whole publishing loop on this machine, shown step by step as a user would run it.

scaffold with copier -> commit through the hooks -> start a local Hub -> `git push` (pre-push runs the full
check, git-lfs sends the weights) -> verify by repo id -> embed a generated image and video -> stop the Hub.
Every step is a real command in a subprocess; the demo passes only if each one does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from .errors import CheckFailed
from .hub.local_hub import LocalHub

REPO_ID = "demo/llava-vit-small"

# Runs in a fresh interpreter with HF_ENDPOINT set: a consumer loading the published model by repo id.
EMBED_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor
    repo_id, revision = sys.argv[1], sys.argv[2]
    model = AutoModel.from_pretrained(repo_id, revision=revision, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(repo_id, revision=revision, trust_remote_code=True)
    x = torch.linspace(0, 255, 320).repeat(240, 1)
    y = torch.linspace(0, 255, 240).unsqueeze(1).repeat(1, 320)
    image = Image.fromarray(torch.stack([x, y, 255 - x], -1).byte().numpy())
    frames = [image.rotate(angle) for angle in (0, 10, 20, 30)]
    print("  embed.py: AutoModel/AutoProcessor.from_pretrained(repo_id, revision=commit) on HF_ENDPOINT")
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    video = processor(videos=frames, num_frames=4)
    moving = processor(videos=frames, num_frames=4, max_tokens=video["patch_positions"].shape[1] // 4)
    with torch.no_grad():
        image_out, video_out, moving_out = model(pixels), model(**video), model(**moving)
    print(f"  image {tuple(pixels.shape)} -> pooled {tuple(image_out.pooler_output.shape)}:",
          [round(v, 4) for v in image_out.pooler_output[0, :6].tolist()], "...")
    print(f"  video {tuple(video['pixel_values'].shape)} -> pooled {tuple(video_out.pooler_output.shape)}:",
          [round(v, 4) for v in video_out.pooler_output[0, :6].tolist()], "...")
    print(f"  video, max_tokens={moving['visible_indices'].shape[1]} (the patches that move most) -> "
          f"last_hidden_state {tuple(moving_out.last_hidden_state.shape)}")
    """
)


class Demo:
    """Runs and prints each step; remembers the environment the commands share."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.repo = workdir / "llava-vit-small"
        bin_dir = str(Path(sys.executable).parent)
        # The model repo's hooks call `llava-vit`: the one next to this interpreter, even outside an activated venv.
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.setdefault("GIT_AUTHOR_NAME", "llava-vit demo")
        self.env.setdefault("GIT_AUTHOR_EMAIL", "demo@llava-vit.invalid")
        self.env.setdefault("GIT_COMMITTER_NAME", self.env["GIT_AUTHOR_NAME"])
        self.env.setdefault("GIT_COMMITTER_EMAIL", self.env["GIT_AUTHOR_EMAIL"])
        self.step = 0

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}", flush=True)

    def run(
        self, *command: str, cwd: Path | None = None, env: dict[str, str] | None = None, shown: str | None = None
    ) -> str:
        shown = shown or " ".join(shlex.quote(part) for part in command).replace(sys.executable, "python")
        print(f"$ {shown}", flush=True)
        result = subprocess.run(
            command,
            cwd=cwd or self.workdir,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = result.stdout.rstrip()
        if output:
            print(textwrap.indent(output, "  "), flush=True)
        if result.returncode != 0:
            raise CheckFailed(f"step {self.step} failed: `{shown}` exited with {result.returncode}")
        return output

    def git(self, *args: str) -> str:
        return self.run("git", *args, cwd=self.repo)


def run_demo(workdir: Path) -> None:
    demo = Demo(workdir)
    python = sys.executable

    demo.title("Scaffold a model repo with copier (small preset, random weights)")
    from .scaffold.new import template_path

    demo.run(
        python,
        "-m",
        "copier",
        "copy",
        "--trust",
        "--defaults",
        "--quiet",
        "--data",
        f"repo_id={REPO_ID}",
        "--data",
        "preset=small",
        "--data",
        "image_size=224",
        str(template_path()),
        str(demo.repo),
    )
    demo.git("log", "--oneline")
    demo.git("lfs", "ls-files")

    demo.title("Edit the model card and commit: the hooks sync, guard and check the repo")
    card = demo.repo / "README.md"
    card.write_text(card.read_text() + "\n## Training data\n\nRandom weights: this repo comes from `llava-vit demo`.\n")
    demo.git("commit", "-am", "Card: training data")

    with LocalHub(workdir / "hub") as hub:
        demo.title(f"Start a local Hub (olah) at {hub.endpoint}")
        hub.create_repo(REPO_ID)
        demo.git("remote", "add", "hub", hub.remote_url(REPO_ID))

        demo.title("git push: the pre-push hook runs the full check, git-lfs uploads the weights")
        demo.git("push", "hub", "main")
        commit = demo.git("rev-parse", "HEAD").splitlines()[-1]

        consumer = {**demo.env, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(workdir / "hf-home")}
        consumer.pop("HF_HUB_OFFLINE", None)
        demo.title(f"Verify by repo id through the Hub API, pinned to {commit[:12]}")
        demo.run(python, "-m", "llava_vit", "verify", REPO_ID, "--revision", commit, env=consumer)

        demo.title("Use it like anyone would: AutoModel.from_pretrained(repo_id, trust_remote_code=True)")
        demo.run(
            python, "-c", EMBED_SCRIPT, REPO_ID, commit, env=consumer, shown=f"python embed.py {REPO_ID} {commit[:12]}"
        )
        demo.title("Stop the local Hub")
    print(f"\ndemo passed: {REPO_ID}@{commit[:12]} scaffolded, checked, pushed and loaded back.")


def _run(args: argparse.Namespace) -> int:
    if args.keep:
        workdir = Path(tempfile.mkdtemp(prefix="llava-vit-demo-"))
        print(f"working in {workdir} (kept)")
        run_started = time.monotonic()
        run_demo(workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="llava-vit-demo-") as tmp:
            run_started = time.monotonic()
            run_demo(Path(tmp))
    print(f"({time.monotonic() - run_started:.0f} s)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole loop locally: scaffold, commit, push to a local Hub, load back by repo id"
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder (printed) for a look around")
    parser.set_defaults(handler=_run)
