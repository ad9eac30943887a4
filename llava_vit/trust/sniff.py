"""What a file holds, judged by its content alone: pickles (they run code when loaded) and Hugging Face tokens,
in the file itself and inside containers, each within a budget of members and bytes.

A pickle is anything that parses as a pickle opcode stream from its first byte to a STOP: any protocol, framed
or not, whatever those first bytes are. It is looked for in whole files and inside zip archives (torch and npz
included: a `.pkl` member or a numpy object array), tar archives and gzip/zlib/bz2/xz streams, nested up to
MAX_DEPTH. An archive beyond the budgets (members, decompressed bytes) is not opened further: it is reported as
uninspectable, never passed. Tokens in the Hub's format are found after any character, in UTF-8/16/32 text, behind
JSON `\\u`, `\\x` and `%` escapes, and in the decompressed text of archives and compressed streams.

Why not picklescan, the scanner the Hub runs: it lists the imports a pickle makes and passes one whose imports
look harmless (a denylist). A llava-vit repo holds no pickle at all, so here any opcode stream is refused, parsed by
the standard library's own `pickletools`; picklescan's container walk is what this module does within its budgets.
"""

from __future__ import annotations

import ast
import bz2
import io
import json
import lzma
import pickletools
import re
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

SNIFF_BYTES = 64 * 1024  # the head that pickle detection parses
_CHUNK = 1 << 20  # a multiple of 4, so UTF-16/32 text keeps its alignment from chunk to chunk
_OVERLAP = 512  # a multiple of 4, longer than any token in any encoding or escape
MAX_DEPTH = 3  # containers inside containers
MAX_MEMBERS = 10_000  # per archive, counted before any member is read
MAX_INFLATE = 256 * 1024 * 1024  # decompressed bytes looked at, per file, over all its members
MAX_SPOOL = 256 * 1024 * 1024  # a non-seekable archive copied aside to be opened
_BINARY_SNIFF_BYTES = 8000
ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP = b"PK\x05\x06"
_NUMPY_MAGIC = b"\x93NUMPY"
_PROTOCOL_RE = re.compile(rb"\A\x80[\x02-\x05]")  # a PROTO opcode first: a pickle even when cut short

# --- tokens ------------------------------------------------------------------------------------------
TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{30,}")
_TOKEN_BYTES_RE = re.compile(rb"hf_[A-Za-z0-9]{30,}")
_WIDE_ENCODINGS = (("utf-16-le", 2), ("utf-16-be", 2), ("utf-32-le", 4), ("utf-32-be", 4))
_WIDE_PREFIX_RE = re.compile(b"|".join(re.escape("hf_".encode(encoding)) for encoding, _ in _WIDE_ENCODINGS))
# A run of token characters and escapes (JSON \uXXXX, \xXX, URL %XX) that holds at least one escape.
_ESCAPED_RUN_RE = re.compile(
    rb"(?:[A-Za-z0-9_]|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|%[0-9a-fA-F]{2})*"
    rb"(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|%[0-9a-fA-F]{2})"
    rb"(?:[A-Za-z0-9_]|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|%[0-9a-fA-F]{2})*"
)
_ESCAPE_RE = re.compile(rb"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|%([0-9a-fA-F]{2})")


def _unescape(run: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = int(next(group for group in match.groups() if group is not None), 16)
        return chr(code).encode("utf-8", "replace") if code < 0x110000 else b"?"

    return _ESCAPE_RE.sub(one, run)


def _wide_encoding(chunk: bytes) -> str | None:
    """The wide encoding (UTF-16/32, either byte order) in which `chunk` holds a token, at any alignment."""
    if not _WIDE_PREFIX_RE.search(chunk):
        return None
    for offset in range(4):
        for encoding, width in _WIDE_ENCODINGS:
            if offset < width and TOKEN_RE.search(chunk[offset:].decode(encoding, errors="ignore")):
                return encoding.upper()
    return None


@dataclass
class TokenScan:
    """Where a stream of bytes holds a token: lines of 8-bit text (plain or escaped), and the wide encodings."""

    lines: set[int] = field(default_factory=set)
    encodings: set[str] = field(default_factory=set)
    _carry: bytes = b""
    _newlines: int = 0

    def feed(self, chunk: bytes) -> None:
        data = self._carry + chunk
        fresh = len(self._carry)  # matches that end inside the carry were found with the previous chunk
        for match in _TOKEN_BYTES_RE.finditer(data):
            if match.end() > fresh:
                self.lines.add(self._newlines + data.count(b"\n", 0, match.start()) + 1)
        if b"\\" in data or b"%" in data:
            for match in _ESCAPED_RUN_RE.finditer(data):
                if match.end() > fresh and _TOKEN_BYTES_RE.search(_unescape(match.group())):
                    self.lines.add(self._newlines + data.count(b"\n", 0, match.start()) + 1)
        if not self.encodings and (found := _wide_encoding(data)):
            self.encodings.add(found)
        self._carry = data[-_OVERLAP:]
        self._newlines += data.count(b"\n", 0, len(data) - len(self._carry))

    @property
    def found(self) -> bool:
        return bool(self.lines or self.encodings)


# --- pickles -----------------------------------------------------------------------------------------
def is_pickle(head: bytes, complete: bool) -> bool:
    """Does `head` parse as a pickle opcode stream from its first byte? To a STOP (two opcodes at least); or, when
    `head` is only the start of a longer file, through at least 16 opcodes and 256 bytes without an error."""
    count = 0
    try:
        for opcode, _, position in pickletools.genops(io.BytesIO(head)):
            count += 1
            if opcode.name == "STOP":
                return count >= 2 and (position or 0) >= 1
    except (ValueError, EOFError, UnicodeDecodeError, KeyError, OverflowError, struct.error, IndexError):
        return not complete and count >= 16 and len(head) >= 256
    return False


def _has_objects(descr: object) -> bool:
    """Does a numpy dtype description (a string, or a structured list of fields) hold Python objects?"""
    if isinstance(descr, str):
        return "O" in descr
    if isinstance(descr, list | tuple):
        return any(_has_objects(part) for part in descr)
    return True  # not a description numpy writes: assume the worst


def _numpy_objects(head: bytes) -> bool:
    """A .npy array of Python objects, in any field of a structured dtype (numpy stores those as a pickle)."""
    if not head.startswith(_NUMPY_MAGIC) or len(head) < 12:
        return False
    wide = head[6] != 1
    (length,) = struct.unpack("<I", head[8:12]) if wide else struct.unpack("<H", head[8:10])
    header = head[12 if wide else 10 :][:length]
    try:
        parsed = ast.literal_eval(header.decode("latin-1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return True  # a header numpy cannot have written: not provably data
    return not isinstance(parsed, dict) or _has_objects(parsed.get("descr"))


# --- the verdict -------------------------------------------------------------------------------------
@dataclass
class Sniffed:
    """What the content of one file holds."""

    pickle: str | None = None  # where a pickle is ("" for the file itself, or the archive member)
    uninspectable: str | None = None  # why an archive could not be looked into (beyond a budget, broken)
    tokens: TokenScan = field(default_factory=TokenScan)
    inner_tokens: list[str] = field(default_factory=list)  # archive members / compressed streams holding a token
    binary: bool = False
    safetensors_header: bytes | None = None  # the decoded header of a safetensors file

    def found_pickle(self, where: str) -> None:
        if self.pickle is None:
            self.pickle = where


class _Budget:
    def __init__(self) -> None:
        self.inflated = 0


def _safetensors_header(head: bytes, handle: BinaryIO) -> bytes | None:
    """A safetensors file's header, decoded (so that JSON escapes cannot hide a token), or None."""
    if len(head) < 10 or head[8:9] != b"{":
        return None
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= 100 * 1024 * 1024:
        return None
    raw = head[8 : 8 + length]
    if len(raw) < length:
        position = handle.tell()
        handle.seek(8 + len(raw))
        raw += handle.read(length - len(raw))
        handle.seek(position)
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False).encode("utf-8")
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def zip_member_count(handle: BinaryIO) -> int | None:
    """The member count an archive's end-of-central-directory record declares, read before the zip is parsed
    (zipfile would hold every member's record in memory)."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 65557))
    tail = handle.read()
    where = tail.rfind(_EMPTY_ZIP)
    if where < 0 or len(tail) < where + 22:
        return None
    count = struct.unpack("<H", tail[where + 10 : where + 12])[0]
    locator = tail.rfind(b"PK\x06\x07", 0, where)
    if count == 0xFFFF and locator >= 0:  # zip64: the count lives in the zip64 record
        (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        handle.seek(offset)
        record = handle.read(56)
        if record.startswith(b"PK\x06\x06") and len(record) >= 40:
            count = struct.unpack("<Q", record[32:40])[0]
    return count


def _inspect_zip(handle: BinaryIO, verdict: Sniffed, where: str, depth: int, budget: _Budget) -> None:
    count = zip_member_count(handle)
    if count is None or count > MAX_MEMBERS:
        verdict.uninspectable = verdict.uninspectable or (
            f"a zip archive{where} with {count} members (more than {MAX_MEMBERS})"
            if count
            else f"a zip archive{where} whose directory cannot be read"
        )
        return
    handle.seek(0)
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist()[:MAX_MEMBERS]:
                inner = f"{where} member {info.filename}"
                if info.filename.endswith(".pkl"):
                    verdict.found_pickle(inner)
                if info.is_dir():
                    continue
                with archive.open(info) as member:
                    _inspect_inner(member, verdict, inner, depth, budget)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, ValueError, OSError, zlib.error) as error:
        verdict.uninspectable = verdict.uninspectable or f"a zip archive{where} that cannot be read ({error})"


def _inspect_tar(handle: BinaryIO, verdict: Sniffed, where: str, depth: int, budget: _Budget) -> None:
    handle.seek(0)
    try:
        with tarfile.open(fileobj=handle, mode="r:") as archive:
            for count, info in enumerate(archive):
                if count >= MAX_MEMBERS:
                    verdict.uninspectable = f"a tar archive{where} with more than {MAX_MEMBERS} members"
                    return
                if info.isfile() and (member := archive.extractfile(info)) is not None:
                    _inspect_inner(member, verdict, f"{where} member {info.name}", depth, budget)
    except (tarfile.TarError, EOFError, ValueError, OSError) as error:
        verdict.uninspectable = verdict.uninspectable or f"a tar archive{where} that cannot be read ({error})"


def _decompressor(head: bytes):  # type: ignore[no-untyped-def]
    """A decompressor for the stream starting with `head` (gzip, zlib, bz2, xz/lzma, joblib's ZF), or None."""
    if head.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS), 0
    if len(head) > 1 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return zlib.decompressobj(), 0
    if head.startswith(b"ZF"):  # joblib < 0.10: "ZF" + hex length, then a zlib stream
        start = head.find(b"x", 2, 40)
        return (zlib.decompressobj(), start) if start > 0 else None
    if head.startswith(b"BZh"):
        return bz2.BZ2Decompressor(), 0
    if head.startswith((b"\xfd7zXZ\x00", b"\x5d\x00\x00")):
        return lzma.LZMADecompressor(), 0
    return None


def _inflate(handle: BinaryIO, head: bytes, verdict: Sniffed, where: str, depth: int, budget: _Budget) -> None:
    made = _decompressor(head)
    if made is None:
        return
    decoder, skip = made
    handle.seek(skip)
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        try:
            while chunk := handle.read(_CHUNK):
                while chunk:
                    room = MAX_INFLATE - budget.inflated
                    out = decoder.decompress(chunk, max(1, min(room, _CHUNK)) + 1)
                    budget.inflated += len(out)
                    if budget.inflated > MAX_INFLATE:
                        verdict.uninspectable = f"a compressed stream{where} that inflates beyond {MAX_INFLATE} bytes"
                        return
                    spool.write(out)
                    chunk = getattr(decoder, "unconsumed_tail", b"") if not getattr(decoder, "eof", False) else b""
                    if not out and not chunk:
                        break
                if getattr(decoder, "eof", False):
                    break
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            if spool.tell() == 0:
                return  # not a compressed stream after all
        spool.seek(0)
        _inspect_inner(spool, verdict, f"{where} (decompressed)", depth, budget)  # type: ignore[arg-type]


def _inspect_inner(handle: BinaryIO, verdict: Sniffed, where: str, depth: int, budget: _Budget) -> None:
    """An archive member or a decompressed stream: read within the budget, then judged like a file."""
    if depth >= MAX_DEPTH:
        verdict.uninspectable = verdict.uninspectable or f"containers nested deeper than {MAX_DEPTH}{where}"
        return
    room = MAX_INFLATE - budget.inflated
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        scan = TokenScan()
        while chunk := handle.read(min(_CHUNK, room + 1)):
            room -= len(chunk)
            budget.inflated += len(chunk)
            if room < 0:
                verdict.uninspectable = f"archive content{where} beyond {MAX_INFLATE} decompressed bytes"
                return
            scan.feed(chunk)
            spool.write(chunk)
        if scan.found:
            verdict.inner_tokens.append(where.strip())
        spool.seek(0)
        _judge(spool, verdict, where, depth + 1, budget, complete=True)  # type: ignore[arg-type]


def _judge(handle: BinaryIO, verdict: Sniffed, where: str, depth: int, budget: _Budget, complete: bool) -> None:
    """Pickle (whole, npy objects), then the containers it may be; `handle` is seekable and at 0."""
    head = handle.read(SNIFF_BYTES)
    whole = complete or len(head) < SNIFF_BYTES
    if head.startswith((ZIP_MAGIC, _EMPTY_ZIP)):
        _inspect_zip(handle, verdict, where, depth, budget)
        return
    if is_pickle(head, whole) or _numpy_objects(head) or _PROTOCOL_RE.match(head):
        verdict.found_pickle(where.strip())
        return
    if len(head) > 262 and head[257:262] == b"ustar":
        _inspect_tar(handle, verdict, where, depth, budget)
        return
    _inflate(handle, head, verdict, where, depth, budget)


def sniff(handle: BinaryIO, tokens: bool = True) -> Sniffed:
    """Judge one file's content, read from `handle` (seekable or not; a non-seekable one is copied aside, up to
    MAX_SPOOL, for its archives to be opened). `tokens`: scan every byte for tokens too."""
    verdict = Sniffed()
    seekable = getattr(handle, "seekable", lambda: False)()
    spool = None if seekable else tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    try:
        head = handle.read(SNIFF_BYTES)
        verdict.binary = b"\0" in head[:_BINARY_SNIFF_BYTES]
        spooled = len(head)
        if spool is not None:
            spool.write(head)
        if tokens:
            verdict.tokens.feed(head)
        if tokens or spool is not None:
            while chunk := handle.read(_CHUNK):
                if tokens:
                    verdict.tokens.feed(chunk)
                if spool is not None and spooled <= MAX_SPOOL:
                    spool.write(chunk)
                    spooled += len(chunk)
        source: BinaryIO = handle if spool is None else spool  # type: ignore[assignment]
        if spool is not None and spooled > MAX_SPOOL:
            if head.startswith((ZIP_MAGIC, _EMPTY_ZIP)) or _decompressor(head) is not None:
                verdict.uninspectable = f"an archive larger than {MAX_SPOOL} bytes outside git-lfs"
            elif is_pickle(head, False) or _numpy_objects(head) or _PROTOCOL_RE.match(head):
                verdict.found_pickle("")
            return verdict
        source.seek(0)
        verdict.safetensors_header = _safetensors_header(head, source)
        if verdict.safetensors_header is None:
            source.seek(0)
            _judge(source, verdict, "", 0, _Budget(), complete=False)
        return verdict
    finally:
        if spool is not None:
            spool.close()


def sniff_bytes(data: bytes, tokens: bool = True) -> Sniffed:
    return sniff(io.BytesIO(data), tokens)


def token_scan(chunks: Iterable[bytes]) -> TokenScan:
    scan = TokenScan()
    for chunk in chunks:
        scan.feed(chunk)
    return scan


def chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def sniff_ends(head: bytes, tail: bytes) -> Sniffed:
    """Judge a file from its first and last SNIFF_BYTES only (a large Hub file, not downloaded): a zip archive or a
    compressed stream never passes (its members are not read); anything else as `sniff`."""
    verdict = Sniffed(binary=b"\0" in head[:_BINARY_SNIFF_BYTES])
    if head.startswith((ZIP_MAGIC, _EMPTY_ZIP)):
        if any(marker in part for part in (head, tail) for marker in (b".pkl", b".npy")):
            verdict.found_pickle(" (a member named in the archive)")
        else:
            verdict.uninspectable = "a zip archive whose members were not downloaded"
        return verdict
    if _safetensors_header(head, io.BytesIO(head)) is not None or len(head) >= 8 and head[8:9] == b"{":
        return verdict
    if is_pickle(head, False) or _numpy_objects(head) or _PROTOCOL_RE.match(head):
        verdict.found_pickle("")
    elif _decompressor(head) is not None:
        _inflate(io.BytesIO(head), head, verdict, "", 0, _Budget())
        if verdict.uninspectable is None and verdict.pickle is None:
            verdict.uninspectable = "a compressed file not downloaded whole"
    return verdict
