"""Reading a trained checkpoint tensor by tensor, and checking it strictly against a config.

Checkpoints can be far larger than the memory one wants to spend on exporting them, so nothing here
loads a whole state dict: safetensors files are opened per tensor, pickles are memory-mapped, and the
expected keys and shapes come from a model built on the meta device.
"""

from __future__ import annotations

import os
import pickle
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors import SafetensorError, safe_open

from ..errors import LlavaViTError, UsageError
from ..model.configuration_llava_vit import LlavaViTConfig
from ..model.modeling_llava_vit import LlavaViTModel
from ..repo_contract import MAX_JSON_BYTES, WEIGHTS_FILE, WEIGHTS_INDEX, parse_index
from ..trust.opener import open_regular, read_regular
from ..trust.sniff import MAX_MEMBERS, ZIP_MAGIC, zip_member_count
from .sizes import available_memory

# Suffixes read as a torch state dict (torch.load with weights_only=True).
TORCH_SUFFIXES = (".pth", ".pt", ".bin")
WRAPPER_KEYS = ("model", "state_dict")
PREFIX = "module."
# Wrapper prefixes dropped from every key, in any order and repeated: DistributedDataParallel / DataParallel's
# `module.` and torch.compile's `_orig_mod.` (upstream OneVision-Encoder's trainer saves compiled models).
PREFIXES = (PREFIX, "_orig_mod.")
LISTED = 20
PICKLE_PROTO = b"\x80"
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")

# safetensors dtype codes -> torch dtypes (the ones torch can hold).
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
TORCH_TO_SAFETENSORS = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """What a checkpoint says about one tensor before its data is read."""

    shape: tuple[int, ...]
    dtype: str
    floating: bool


def expected_shapes(config: LlavaViTConfig) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of a model built from `config`, in the model's order (meta device: no memory)."""
    with torch.device("meta"):
        model = LlavaViTModel(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def strip_prefix(name: str) -> str:
    """Drop the `module.` prefixes that DistributedDataParallel / DataParallel put on every key, and torch.compile's
    `_orig_mod.`, wherever they nest (`module._orig_mod.`, `_orig_mod.module.`)."""
    while prefix := next((prefix for prefix in PREFIXES if name.startswith(prefix)), None):
        name = name[len(prefix) :]
    return name


class Checkpoint(ABC):
    """A checkpoint's tensors by (prefix-stripped) name; `load` reads one tensor at a time."""

    def __init__(self, path: Path, infos: dict[str, TensorInfo]) -> None:
        self.path = path
        self.infos = infos

    @abstractmethod
    def load(self, name: str) -> torch.Tensor:
        """The tensor `name`, read now (not before)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the checkpoint holds open (memory maps); loading is over after this."""


class SafetensorsCheckpoint(Checkpoint):
    """One or more safetensors files; each `load` opens the file, copies one tensor out and closes it again,
    so that the memory map never accumulates the whole checkpoint in the process's resident memory."""

    def __init__(self, path: Path, files: dict[str, tuple[Path, str]], infos: dict[str, TensorInfo]) -> None:
        super().__init__(path, infos)
        self._files = files

    def load(self, name: str) -> torch.Tensor:
        file, key = self._files[name]
        with safe_open(str(file), framework="pt") as handle:
            return handle.get_tensor(key)

    def close(self) -> None:
        """Nothing stays open between `load` calls."""


class PickleCheckpoint(Checkpoint):
    """A torch.save'd state dict, loaded with weights_only=True and memory-mapped when the format allows."""

    def __init__(self, path: Path, tensors: dict[str, torch.Tensor]) -> None:
        infos = {
            name: TensorInfo(tuple(t.shape), str(t.dtype).removeprefix("torch."), t.is_floating_point())
            for name, t in tensors.items()
        }
        super().__init__(path, infos)
        self._tensors = tensors

    def load(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def close(self) -> None:
        self._tensors.clear()


def _add(originals: dict[str, str], key: str, path: Path) -> str:
    """`key` without wrapper prefixes, remembered in `originals`; two keys that collide are an error."""
    name = strip_prefix(key)
    if name in originals:
        raise LlavaViTError(
            f"{path}: keys {originals[name]!r} and {key!r} both become {name!r} once the "
            f"{' / '.join(map(repr, PREFIXES))} prefixes are removed; keep only one of them in the checkpoint"
        )
    originals[name] = key
    return name


def _safetensors_files(path: Path) -> list[Path]:
    """The safetensors files behind `path`: a file, an index file, or a folder holding either."""
    if path.is_dir():
        if (path / WEIGHTS_INDEX).is_file():
            path = path / WEIGHTS_INDEX
        elif (path / WEIGHTS_FILE).is_file():
            return [path / WEIGHTS_FILE]
        else:
            raise UsageError(
                f"{path} is a folder without {WEIGHTS_INDEX} or {WEIGHTS_FILE}; pass the weights file "
                "itself (.safetensors, .pth, .pt or .bin)"
            )
    if path.name.endswith(".index.json"):
        try:
            weight_map = parse_index(read_regular(path, MAX_JSON_BYTES, follow=True).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as error:  # UnsafeFile and UnicodeDecodeError included
            raise LlavaViTError(
                f"{path}: not a readable safetensors index ({error}); it needs a 'weight_map'"
            ) from None
        files = sorted({path.parent / name for name in weight_map.values()})
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise LlavaViTError(f"{path} lists shards that are not there: {', '.join(missing)}")
        return files
    return [path]


def _open_safetensors(path: Path) -> SafetensorsCheckpoint:
    files: dict[str, tuple[Path, str]] = {}
    infos: dict[str, TensorInfo] = {}
    originals: dict[str, str] = {}
    for file in _safetensors_files(path):
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    dtype = handle.get_slice(key).get_dtype()
                    shape = tuple(handle.get_slice(key).get_shape())
                    name = _add(originals, key, file)
                    files[name] = (file, key)
                    torch_dtype = SAFETENSORS_DTYPES.get(dtype)
                    floating = torch_dtype is not None and torch_dtype.is_floating_point
                    infos[name] = TensorInfo(shape, dtype, floating)
        except (SafetensorError, OSError) as error:
            raise LlavaViTError(
                f"{file}: not a readable safetensors file ({error}); it may be truncated or still an unfetched "
                "git-lfs pointer (run `git lfs pull`)"
            ) from None
    return SafetensorsCheckpoint(path, files, infos)


def _torch_load(path: Path) -> object:
    with open_regular(path, follow=True) as handle:
        head = handle.read(len(ZIP_MAGIC))
        members = zip_member_count(handle) if head == ZIP_MAGIC else 0
    if members is None or members > MAX_MEMBERS:
        raise LlavaViTError(
            f"{path}: a zip archive declaring {members if members is not None else 'an unreadable number of'} members "
            f"(a torch checkpoint has one per tensor; more than {MAX_MEMBERS} is hostile or broken): re-save it"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise LlavaViTError(f"{path}: torch.load failed: {error}") from None
    # Files from torch.save(..., _use_new_zipfile_serialization=False) cannot be memory-mapped: they are read whole.
    _check_legacy_storages(path)
    size, available = path.stat().st_size, available_memory()
    if available is not None and 2 * size > available:
        raise LlavaViTError(
            f"{path} is a legacy (non-zip) torch checkpoint of {size / 1e9:.1f} GB, which cannot be memory-mapped and "
            f"does not fit the {available / 1e9:.1f} GB of free memory: re-save it with a current torch.save (zip "
            "format) or as .safetensors on a machine with more memory"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except RuntimeError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise LlavaViTError(
            f"{path}: cannot read this legacy torch checkpoint ({reason}); re-save or re-copy it"
        ) from None


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first pickle of a legacy file
_LEGACY_ELEMENT_BYTES = {
    **dict.fromkeys(("DoubleStorage", "LongStorage", "ComplexFloatStorage"), 8),
    **dict.fromkeys(("FloatStorage", "IntStorage"), 4),
    **dict.fromkeys(("HalfStorage", "BFloat16Storage", "ShortStorage"), 2),
    "ComplexDoubleStorage": 16,
}  # the other storage types (Byte, Char, Bool, Untyped, ...) take one byte an element


class _Capped:
    """A file read for the unpickler, never past its end: a pickle's claimed length (BINBYTES8 of 16 GB)
    cannot make a read allocate more than the file holds."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self.handle.tell())
        return self.handle.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.handle.readline(max(0, self.size - self.handle.tell()))


class _Inert:
    """Whatever a pickle's globals would have built: called, constructed or given state, it does nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _Global(_Inert):
    """A global a pickle names (module.name): recorded, never imported."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: object, **kwargs: object) -> _Inert:
        return _Inert()


class _StorageLister(pickle._Unpickler):  # the Python unpickler: the C one allocates a claimed length before reading
    """Reads a legacy checkpoint's pickles without importing or calling anything, noting each storage it names:
    torch's loader allocates every storage at the size its pickle claims before reading a byte of its data."""

    def __init__(self, handle: _Capped) -> None:
        super().__init__(handle)
        self.storages: dict[str, int] = {}  # key -> claimed bytes

    def find_class(self, module: str, name: str) -> _Global:
        return _Global(module, name)

    def persistent_load(self, pid: object) -> _Inert:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind, key, numel = pid[1], pid[2], pid[4]
            element = _LEGACY_ELEMENT_BYTES.get(kind.name if isinstance(kind, _Global) else "", 1)
            if not isinstance(numel, int) or numel < 0:
                raise pickle.UnpicklingError(f"storage {str(key)[:40]!r} claims {str(numel)[:40]} elements")
            self.storages[str(key)] = numel * element
        return _Inert()


def _check_legacy_storages(path: Path) -> None:
    """A legacy (non-zip) file's storages must be in the file: each claimed size within the bytes that follow its
    8-byte header, in the order torch reads them. A hostile claim (64 GB in a small file) or a truncated file is
    one error, before torch allocates anything."""
    size = path.stat().st_size
    fix = "re-save it with torch.save(model.state_dict(), PATH) or as .safetensors"
    with path.open("rb") as handle:
        capped = _Capped(handle, size)
        try:
            if _StorageLister(capped).load() != _LEGACY_MAGIC:
                return  # not torch's legacy format: torch.load says what it is
            for _ in range(2):  # protocol version, system info
                _StorageLister(capped).load()
            lister = _StorageLister(capped)
            lister.load()
            keys = _StorageLister(capped).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
            reason = str(error)[:200] or type(error).__name__
            raise LlavaViTError(f"{path}: truncated or damaged legacy torch checkpoint ({reason}); {fix}") from None
        claimed = sum(lister.storages.values())
        if not isinstance(keys, list) or claimed > size:
            raise LlavaViTError(
                f"{path}: its storages claim {claimed / 1e9:.1f} GB but the file holds {size} bytes: a damaged or "
                f"hostile legacy torch checkpoint; {fix}"
            )
        for key in keys:
            start = handle.tell() + 8
            if str(key) not in lister.storages or start + lister.storages[str(key)] > size:
                raise LlavaViTError(
                    f"{path}: truncated legacy torch checkpoint (storage {str(key)[:40]!r} ends past the end of the "
                    f"file at {size} bytes); {fix}"
                )
            handle.seek(start + lister.storages[str(key)])


def _unwrap(content: object, path: Path) -> Mapping[str, object]:
    """The state dict inside a checkpoint: raw, or under 'model' / 'state_dict' (possibly nested)."""
    while isinstance(content, Mapping) and not any(isinstance(v, torch.Tensor) for v in content.values()):
        inner = next((content[k] for k in WRAPPER_KEYS if isinstance(content.get(k), Mapping)), None)
        if inner is None:
            break
        content = inner
    if not isinstance(content, Mapping) or not content:
        kind = type(content).__name__
        keys = f" with keys {', '.join(map(str, list(content)[:LISTED]))}" if isinstance(content, Mapping) else ""
        raise LlavaViTError(
            f"{path}: expected a state dict (name -> tensor), raw or under 'model' or 'state_dict', "
            f"found a {kind}{keys}; save it with torch.save(model.state_dict(), PATH)"
        )
    return content


def _unpickling_reason(error: Exception) -> str:
    """The one informative line of torch's weights-only refusal (e.g. "Unsupported global: GLOBAL x.Y ..."),
    without the boilerplate around it (whose wording changes between torch releases)."""
    text = str(error)
    detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    informative = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    return (informative or lines or [type(error).__name__])[0].split(" Please use", 1)[0]


def _looks_like_torch_save(path: Path) -> bool:
    """torch.save writes a zip archive, or (legacy format) a pickle starting with the PROTO opcode."""
    with path.open("rb") as handle:
        head = handle.read(4)
    return head.startswith((ZIP_MAGIC, PICKLE_PROTO))


def _open_pickle(path: Path) -> PickleCheckpoint:
    if not _looks_like_torch_save(path):
        raise LlavaViTError(
            f"{path} is not a torch checkpoint (neither a torch.save zip archive nor a pickle): it may be truncated, "
            "an unfetched git-lfs pointer (run `git lfs pull`), or another format; pass the real weights file"
        )
    try:
        content = _torch_load(path)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(error)
        raise LlavaViTError(
            f"{path} is not a plain weights file: torch.load(weights_only=True) refused it ({reason}). "
            "llava-vit does not run arbitrary pickled code; re-save just the weights with "
            "torch.save(model.state_dict(), 'weights.pth') or save them as .safetensors"
        ) from None
    except (OSError, EOFError, ValueError) as error:
        raise LlavaViTError(f"{path}: cannot read it as a torch checkpoint ({error})") from None
    state = _unwrap(content, path)
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise LlavaViTError(
            f"{path}: the state dict holds {len(not_tensors)} entries that are not tensors: "
            f"{', '.join(not_tensors[:LISTED])}; keep only the model's weights"
        )
    originals: dict[str, str] = {}
    tensors = {_add(originals, str(key), path): value for key, value in state.items()}
    return PickleCheckpoint(path, tensors)


def open_checkpoint(path: Path) -> Checkpoint:
    """Open `path` (.safetensors file, sharded folder or index, or .pth/.pt/.bin) without reading tensor data."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"weights {path} do not exist; pass the path of a .safetensors, .pth, .pt or .bin file")
    kind = os.stat(path).st_mode
    if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
        raise UsageError(f"weights {path} is not a regular file (a FIFO, socket or device); pass the weights file")
    if path.is_dir() or path.suffix == ".safetensors" or path.name.endswith(".index.json"):
        return _open_safetensors(path)
    if path.suffix in TORCH_SUFFIXES:
        return _open_pickle(path)
    raise UsageError(
        f"weights {path}: unknown format {path.suffix!r}; use .safetensors (file, index or sharded folder) "
        "or a torch state dict (.pth, .pt, .bin)"
    )


def _listing(label: str, items: list[str]) -> str:
    shown = "\n".join(f"    {item}" for item in items[:LISTED])
    more = f"\n    ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return f"  {len(items)} {label}:\n{shown}{more}"


def validate(checkpoint: Checkpoint, expected: dict[str, tuple[int, ...]], config: LlavaViTConfig) -> None:
    """Strict match: every key present, nothing extra, every shape right, every tensor floating point."""
    infos = checkpoint.infos
    missing = [name for name in expected if name not in infos]
    unexpected = [name for name in infos if name not in expected]
    misshaped = [
        f"{name}: checkpoint {list(infos[name].shape)}, model {list(shape)}"
        for name, shape in expected.items()
        if name in infos and infos[name].shape != shape
    ]
    not_floating = [f"{name}: {info.dtype}" for name, info in infos.items() if name in expected and not info.floating]
    problems = [
        _listing(label, items)
        for label, items in (
            ("missing keys (in the model, not in the checkpoint)", missing),
            ("unexpected keys (in the checkpoint, not in the model)", unexpected),
            ("mis-shaped keys", misshaped),
            ("non-floating tensors (weights must be float)", not_floating),
        )
        if items
    ]
    if problems:
        geometry = ", ".join(
            f"{field}={getattr(config, field)}"
            for field in (
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "patch_size",
                "layer_norm_type",
                "use_head",
            )
        )
        raise LlavaViTError(
            f"checkpoint {checkpoint.path} does not match the model config ({geometry}):\n"
            + "\n".join(problems)
            + "\n  Export with the --preset or --config the checkpoint was trained with; loading is strict so that "
            "no weight is silently left randomly initialised."
        )
