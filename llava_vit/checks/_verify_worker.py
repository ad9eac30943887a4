"""The load-and-run half of `llava-vit verify`, run by file path in a fresh interpreter.

It imports only the standard library, torch, transformers, huggingface_hub (through transformers),
safetensors and PIL, never llava_vit: the model must come from the repo's own code through
transformers' remote-code loader, exactly as a user gets it. The environment may be a clean one
(`--python`), so nothing here may depend on this package being installed.

usage: python _verify_worker.py REQUEST_JSON RESULT_PATH
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run by path, Python puts this file's folder (the llava_vit package) first on sys.path: drop it, so that
    # neither llava_vit nor its model files can be imported from here by accident.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if entry and Path(entry).resolve() != _here]

import gc  # noqa: E402
import json  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor  # noqa: E402

FRAMES = 4
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
# eager vs sdpa: max abs difference allowed; absolute in float32, times max(1, max |output|) in half precision.
AGREEMENT = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}


class Request:
    """What to verify (from the parent process) and how to fetch the repo's files."""

    def __init__(self, data: dict) -> None:
        self.target: str = data["target"]
        self.local: bool = data["local"]
        self.revision: str | None = data.get("revision")
        self.dtype = DTYPES[data.get("dtype", "float32")]
        # What a llava-vit repo is comes from the parent (llava_vit.repo_contract): this file cannot import it.
        self.auto_map: dict[str, str] = data["auto_map"]
        self.code_files: list[str] = data["code_files"]
        self.weights_file: str = data["weights_file"]
        self.weights_index: str = data["weights_index"]
        self.progress_path: str | None = data.get("progress_path")
        self.processor_config_file: str = data["processor_config_file"]
        self.processor_auto_map: dict[str, str] = data["processor_auto_map"]

    def file(self, name: str, required: bool = False) -> Path | None:
        """Where the repo's file `name` is on disk (downloaded through the Hub cache for a repo id).

        An optional file that cannot be fetched is None: some Hub servers answer 401 rather than 404 for a
        missing file. A required one raises the Hub client's own explanation (not found, offline, no access).
        """
        if self.local:
            path = Path(self.target) / name
            if required and not path.is_file():
                raise Failure(f"no {name} in {self.target}")
            return path if path.is_file() else None
        from transformers.utils import cached_file

        try:
            found = cached_file(
                self.target,
                name,
                revision=self.revision,
                _raise_exceptions_for_missing_entries=required,
                _raise_exceptions_for_connection_errors=required,
            )
        except OSError:
            if required:
                raise
            return None
        return Path(found) if found else None

    def pin_commit(self, config_path: Path) -> str:
        """Use the commit that config.json came from for everything else: every check then sees the same files,
        and servers that answer 401 for a missing file under a branch name (but 404 under a commit) still work."""
        if self.local:
            return ""
        from transformers.utils.hub import extract_commit_hash

        commit = extract_commit_hash(str(config_path), None)
        if commit is None:
            return ""
        asked = self.revision or "the default branch"
        self.revision = commit
        return f" at commit {commit[:12]} ({asked})"

    def load_kwargs(self) -> dict:
        return {"revision": self.revision} if self.revision else {}


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = f"{text[:600]}..." if len(text) > 600 else text
    return text if isinstance(error, Failure) else f"{type(error).__name__}: {text}"


class Checklist:
    """Runs checks in order; a check whose prerequisites failed is reported as not run, with the reason."""

    def __init__(self, progress_path: str | None = None) -> None:
        self.results: dict[str, dict] = {}
        self.progress_path = progress_path

    def run(self, name: str, check: Callable[[], str], needs: tuple[str, ...] = ()) -> None:
        blocked = [need for need in needs if not self.results[need]["passed"]]
        if blocked:
            self.results[name] = {"passed": False, "detail": f"not run: {', '.join(blocked)} failed"}
        else:
            try:
                self.results[name] = {"passed": True, "detail": check()}
            except Exception as error:  # every failure becomes a reported check, never a crash of the checklist
                self.results[name] = {"passed": False, "detail": _reason(error)}
        if self.progress_path:  # one JSON line per finished check, so the parent can show progress
            with open(self.progress_path, "a", encoding="utf-8") as progress:
                progress.write(json.dumps({"name": name, **self.results[name]}, default=str) + "\n")


class Failure(Exception):
    """A check found something wrong; the message is the reason shown to the user."""


def _random_image(width: int, height: int, seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    return Image.frombytes("RGB", (width, height), pixels.numpy().tobytes())


class Verification:
    """The checks, in order, sharing what earlier ones loaded (config, processor output, model, outputs)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.checks = Checklist(request.progress_path)
        self.config = None
        self.model = None
        self.pixel_values: torch.Tensor | None = None
        self.outputs: dict[str, tuple[object, tuple[int, ...]]] = {}

    # -- config and processor ---------------------------------------------------------------------------
    def config_loads(self) -> str:
        raw_path = self.request.file("config.json", required=True)
        pinned = self.request.pin_commit(raw_path)
        auto_map = json.loads(raw_path.read_text(encoding="utf-8")).get("auto_map")
        if auto_map != self.request.auto_map:
            raise Failure(
                f"config.json auto_map is {auto_map!r}, expected exactly {self.request.auto_map!r} "
                "(without it AutoModel cannot find the repo's code; re-export or run `llava-vit sync`)"
            )
        config = AutoConfig.from_pretrained(self.request.target, trust_remote_code=True, **self.request.load_kwargs())
        if not type(config).__module__.startswith("transformers_modules"):
            raise Failure(f"{type(config).__name__} came from {type(config).__module__}, not from the repo's code")
        self.config = config
        return (
            f"{type(config).__name__} from the repo's code{pinned}: image_size {config.image_size}, "
            f"patch {config.patch_size}, hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
            f"use_head {config.use_head}"
        )

    def processor_loads(self) -> str:
        processor = AutoImageProcessor.from_pretrained(self.request.target, **self.request.load_kwargs())
        size = self.config.image_size
        images = [_random_image(size * 3 // 2 + 7, size * 2 // 3 + 5, 1), _random_image(size // 2 + 3, size * 2, 2)]
        pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
        if tuple(pixel_values.shape) != (2, self.config.num_channels, size, size):
            raise Failure(
                f"{type(processor).__name__} turns non-square images into {list(pixel_values.shape[-2:])}, "
                f"expected image_size x image_size = [{size}, {size}] (resize to {{'height': {size}, 'width': "
                f"{size}}} without center-cropping to a smaller size)"
            )
        self.pixel_values = pixel_values
        return f"{type(processor).__name__}: non-square images -> {list(pixel_values.shape)}"

    # -- model and weights ------------------------------------------------------------------------------
    def _load(self, implementation: str):
        return AutoModel.from_pretrained(
            self.request.target,
            trust_remote_code=True,
            dtype=self.request.dtype,
            attn_implementation=implementation,
            output_loading_info=True,
            **self.request.load_kwargs(),
        )

    def model_loads(self) -> str:
        model, info = self._load("sdpa")
        problems = {key: list(value) for key, value in info.items() if value}
        if problems:
            raise Failure(f"loading reported {problems}")
        if not type(model).__module__.startswith("transformers_modules"):
            raise Failure(f"{type(model).__name__} came from {type(model).__module__}, not from the repo's code")
        self.model = model.to(self.device).eval()
        params = sum(p.numel() for p in model.parameters())
        return (
            f"{type(model).__name__} from the repo's code, {params / 1e6:.2f}M parameters, {model.dtype}, "
            "no missing or unexpected keys"
        )

    def weights_match(self) -> str:
        single = self.request.file(self.request.weights_file)
        if single is not None:
            files = [single]
        else:
            index = self.request.file(self.request.weights_index)
            if index is None:
                raise Failure(f"neither {self.request.weights_file} nor {self.request.weights_index} found")
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            files = [self.request.file(name) for name in names]
            absent = [name for name, file in zip(names, files, strict=True) if file is None]
            if absent:
                raise Failure(f"{self.request.weights_index} lists shards that are missing: {', '.join(absent)}")
        state = self.model.state_dict()
        seen, different = set(), []
        for path in files:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    seen.add(key)
                    if key not in state:
                        continue
                    stored = handle.get_tensor(key)
                    loaded = state[key].detach().cpu()
                    if stored.shape != loaded.shape or not torch.equal(stored.to(loaded.dtype), loaded):
                        different.append(key)
        reinitialised = sorted(set(state) - seen)
        unused = sorted(seen - set(state))
        if reinitialised or unused or different:
            parts = [
                f"{label}: {', '.join(keys[:10])}{' ...' if len(keys) > 10 else ''}"
                for label, keys in (
                    ("not in the checkpoint (re-initialised)", reinitialised),
                    ("in the checkpoint but unused", unused),
                    ("loaded value differs from the file", different),
                )
                if keys
            ]
            raise Failure("; ".join(parts))
        return f"all {len(state)} tensors equal the {len(files)} safetensors file(s)"

    # -- forward passes ---------------------------------------------------------------------------------
    def _forward(self, name: str, tokens: int, batch: int, **inputs: torch.Tensor) -> str:
        dtype = next(self.model.parameters()).dtype
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        with torch.no_grad():
            output = self.model(**inputs, output_hidden_states=True)
        self.outputs[name] = (output, (batch, tokens, self.config.hidden_size))
        return f"{list(inputs['pixel_values'].shape)} -> last_hidden_state {list(output.last_hidden_state.shape)}"

    def _grid(self) -> tuple[int, int]:
        side = self.config.image_size // self.config.patch_size
        return side, side * side

    def _video(self) -> torch.Tensor:
        size = self.config.image_size
        generator = torch.Generator().manual_seed(3)
        return torch.randn(1, self.config.num_channels, FRAMES, size, size, generator=generator)

    def image_forward(self) -> str:
        """On the processor's output; on random pixels if the processor failed (that is reported on its own)."""
        if self.pixel_values is None:
            size = self.config.image_size
            self.pixel_values = torch.randn(
                2, self.config.num_channels, size, size, generator=torch.Generator().manual_seed(5)
            )
        return self._forward("image", self._grid()[1], 2, pixel_values=self.pixel_values)

    def video_forward(self) -> str:
        return self._forward("video", FRAMES * self._grid()[1], 1, pixel_values=self._video())

    def masked_forward(self) -> str:
        length = FRAMES * self._grid()[1]
        keep = max(1, length // 3)
        generator = torch.Generator().manual_seed(4)
        visible = torch.randperm(length, generator=generator)[:keep].sort().values.unsqueeze(0)
        detail = self._forward("masked", keep, 1, pixel_values=self._video(), visible_indices=visible)
        return f"{detail} (kept {keep} of {length} patches)"

    def positions_forward(self) -> str:
        """Explicit [t, h, w] positions equal to the default grid must reproduce the plain video forward."""
        side = self._grid()[0]
        t, h, w = torch.meshgrid(torch.arange(FRAMES), torch.arange(side), torch.arange(side), indexing="ij")
        positions = torch.stack([t, h, w], dim=-1).reshape(1, -1, 3)
        detail = self._forward(
            "patch_positions", positions.shape[1], 1, pixel_values=self._video(), patch_positions=positions
        )
        difference = self.outputs["patch_positions"][0].last_hidden_state - self.outputs["video"][0].last_hidden_state
        worst = difference.abs().max().item()
        if worst > 1e-5 * max(1.0, self.outputs["video"][0].last_hidden_state.abs().max().item()):
            raise Failure(f"grid positions given explicitly change the output by {worst:.3g}; they must not")
        return f"{detail}; explicit grid positions reproduce the default ones"

    def outputs_sound(self) -> str:
        problems, shapes = [], []
        layers = self.config.num_hidden_layers
        for name, (output, (batch, tokens, hidden)) in self.outputs.items():
            tensors = {"last_hidden_state": (output.last_hidden_state, (batch, tokens, hidden))}
            if self.config.use_head:
                tensors["pooler_output"] = (output.pooler_output, (batch, hidden))
            elif output.pooler_output is not None:
                problems.append(f"{name}: pooler_output should be None without a head")
            hidden_states = output.hidden_states or ()
            if len(hidden_states) != layers + 1:
                problems.append(f"{name}: {len(hidden_states)} hidden_states, expected {layers + 1}")
            tensors.update({f"hidden_states.{i}": (h, (batch, tokens, hidden)) for i, h in enumerate(hidden_states)})
            for label, (tensor, want) in tensors.items():
                if tensor is None or tuple(tensor.shape) != want:
                    got = None if tensor is None else list(tensor.shape)
                    problems.append(f"{name}.{label}: shape {got}, expected {list(want)}")
                elif not bool(torch.isfinite(tensor).all()):
                    problems.append(f"{name}.{label}: NaN or Inf")
            shapes.append(f"{name} {list(output.last_hidden_state.shape)}")
        if problems:
            raise Failure("; ".join(problems[:10]))
        return ", ".join(shapes)

    def attention_agrees(self) -> str:
        """Reload with eager attention (4.57 cannot switch a loaded remote-code model) and compare the images."""
        reference = self.outputs["image"][0]
        reference = {"last_hidden_state": reference.last_hidden_state, "pooler_output": reference.pooler_output}
        self.model = None
        gc.collect()
        model, _ = self._load("eager")
        self.model = model.to(self.device).eval()
        dtype = next(self.model.parameters()).dtype
        with torch.no_grad():
            eager = self.model(pixel_values=self.pixel_values.to(self.device, dtype))
        worst = 0.0
        scale = 1.0
        for key, value in reference.items():
            if value is not None:
                worst = max(worst, (getattr(eager, key).float() - value.float()).abs().max().item())
                scale = max(scale, value.float().abs().max().item())
        tolerance = AGREEMENT[dtype] * (1.0 if dtype == torch.float32 else scale)
        if not worst <= tolerance:
            raise Failure(f"eager and sdpa outputs differ by {worst:.3g} (allowed {tolerance:.3g} in {dtype})")
        return f"max difference {worst:.2g} <= {tolerance:.2g} ({dtype})"

    def video_processor(self) -> str:
        """A generated clip (a square moving over a textured background) through the repo's LlavaViTProcessor
        with a token budget, then the model: right shapes, finite, and only the kept patches are encoded."""
        path = self.request.file(self.request.processor_config_file)
        if path is None:
            raise Failure(f"no {self.request.processor_config_file}: AutoProcessor cannot find the video processor")
        auto_map = json.loads(path.read_text(encoding="utf-8")).get("auto_map")
        if auto_map != self.request.processor_auto_map:
            raise Failure(
                f"{self.request.processor_config_file} auto_map is {auto_map!r}, expected exactly "
                f"{self.request.processor_auto_map!r}; run `llava-vit sync`"
            )
        processor = AutoProcessor.from_pretrained(
            self.request.target, trust_remote_code=True, **self.request.load_kwargs()
        )
        if not type(processor).__module__.startswith("transformers_modules"):
            raise Failure(f"{type(processor).__name__} came from {type(processor).__module__}, not the repo's code")
        generator = torch.Generator().manual_seed(6)
        clip = torch.randint(0, 256, (2 * FRAMES, 48, 64, 3), dtype=torch.uint8, generator=generator)
        for t in range(len(clip)):
            clip[t, 16:32, 4 * t : 4 * t + 16] = 255
        side = processor.video_size // self.config.patch_size
        length = FRAMES * side * side
        keep = max(1, length // 4)
        inputs = processor(videos=clip.numpy(), num_frames=FRAMES, max_tokens=keep)
        expected = {
            "pixel_values": (1, self.config.num_channels, FRAMES, processor.video_size, processor.video_size),
            "patch_positions": (1, length, 3),
            "visible_indices": (1, keep),
        }
        shapes = {key: tuple(inputs[key].shape) if key in inputs else None for key in expected}
        if shapes != expected:
            raise Failure(f"processor outputs {shapes}, expected {expected}")
        dtype = next(self.model.parameters()).dtype
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        # Patches outside visible_indices may hold anything: the output must not change.
        dropped = torch.ones(length, dtype=torch.bool, device=self.device)
        dropped[inputs["visible_indices"][0]] = False
        patch = self.config.patch_size
        mask = dropped.reshape(1, 1, FRAMES, side, 1, side, 1).expand(-1, -1, -1, -1, patch, -1, patch)
        mask = mask.reshape(1, 1, FRAMES, processor.video_size, processor.video_size)
        scrambled = {**inputs, "pixel_values": inputs["pixel_values"].masked_fill(mask, 3.0)}
        with torch.no_grad():
            output = self.model(**inputs).last_hidden_state
            other = self.model(**scrambled).last_hidden_state
        if tuple(output.shape) != (1, keep, self.config.hidden_size) or not bool(torch.isfinite(output).all()):
            raise Failure(
                f"video last_hidden_state {list(output.shape)} (finite: {bool(torch.isfinite(output).all())})"
            )
        worst = (output.float() - other.float()).abs().max().item()
        if worst > 1e-5 * max(1.0, output.float().abs().max().item()):
            raise Failure(f"changing patches outside visible_indices changed the output by {worst:.3g}")
        return (
            f"{type(processor).__name__}: {FRAMES} frames -> {list(expected['pixel_values'])}, kept {keep} of "
            f"{length} patches -> last_hidden_state {list(output.shape)}; dropped patches are not encoded"
        )

    def run(self) -> dict:
        run = self.checks.run
        run("config loads", self.config_loads)
        run("processor", self.processor_loads, ("config loads",))
        run("model loads", self.model_loads, ("config loads",))
        run("weights match checkpoint", self.weights_match, ("model loads",))
        run("image forward", self.image_forward, ("model loads",))
        run("video forward", self.video_forward, ("model loads",))
        run("masked forward", self.masked_forward, ("model loads",))
        run("patch_positions forward", self.positions_forward, ("video forward",))
        run("video processor and token budget", self.video_processor, ("model loads",))
        forwards = ("image forward", "video forward", "masked forward", "patch_positions forward")
        run("outputs finite, shapes right", self.outputs_sound, forwards)
        run("eager and sdpa agree", self.attention_agrees, ("image forward",))
        return {
            "checks": [{"name": name, **result} for name, result in self.checks.results.items()],
            "code_files": {
                name: str(path) if (path := self.request.file(name)) else None for name in self.request.code_files
            },
            "environment": {
                "python": sys.executable,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "device": str(self.device),
                "llava_vit_imported": "llava_vit" in sys.modules,
            },
        }


def main() -> None:
    request_json, result_path = sys.argv[1:]
    result = Verification(Request(json.loads(request_json))).run()
    Path(result_path).write_text(json.dumps(result, allow_nan=False, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
