"""Bytes to lines of text, streamed, with every way a file can be unreadable named exactly.

Memory stays bounded whatever arrives: the file is read in chunks, and a line
longer than the feed's limit is refused as soon as the limit is passed (a 50 MB
line never sits in memory whole).
"""

from __future__ import annotations

import codecs
import hashlib
import io
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20

# A byte-order mark is unambiguous, so it wins over the feed's declared encoding.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_CODECS = {"utf-8": "utf-8", "windows-1252": "cp1252", "utf-16": "utf-16"}
_LABELS = {"utf-8": "UTF-8", "windows-1252": "Windows-1252", "utf-16": "UTF-16"}


class FileRejected(Exception):
    """The whole file is refused; `details` says exactly why, for the partner."""

    def __init__(self, reason: str, **details: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class Decoder:
    """Streams `fh` as text lines (line endings kept) and hashes the bytes on the way."""

    def __init__(self, fh: BinaryIO, encoding: str, max_line_chars: int) -> None:
        self.fh = fh
        self.declared = encoding
        self.max_line_chars = max_line_chars
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.encoding = _LABELS[encoding]
        self.lines_read = 0

    def _chunks(self) -> Iterator[str]:
        first = self.fh.read(CHUNK)
        if not first.strip(b" \t\r\n"):
            rest = self.fh.read(1)
            if not rest:
                raise FileRejected("empty file: no header and no rows")
            first += rest
        codec = _CODECS[self.declared]
        for bom, bom_codec, label in _BOMS:
            if first.startswith(bom):
                codec, self.encoding = bom_codec, label
                break
        else:
            if codec == "utf-16":
                raise FileRejected(
                    "UTF-16 file without a byte-order mark: the byte order cannot be known",
                    encoding="UTF-16",
                )
        decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        fed = 0
        data = first
        while data:
            self.sha256.update(data)
            self.size += len(data)
            pending = len(decoder.getstate()[0])
            base = fed - pending
            try:
                text = decoder.decode(data)
            except UnicodeDecodeError as exc:
                offset = base + exc.start
                bad = exc.object[exc.start : exc.start + 1]
                raise FileRejected(
                    f"not valid {self.encoding}: byte 0x{bad.hex()} at offset {offset}",
                    encoding=self.encoding,
                    offset=offset,
                ) from exc
            nul = text.find("\x00")
            if nul >= 0:
                offset = base + len(text[:nul].encode(codec.replace("-sig", "")))
                if self.encoding == "UTF-16" and fed == 0:
                    offset += 2
                raise FileRejected(f"NUL byte at offset {offset}: not a text file", offset=offset)
            fed += len(data)
            yield text
            data = self.fh.read(CHUNK)
        try:
            tail = decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            offset = fed - len(exc.object) + exc.start
            raise FileRejected(
                f"not valid {self.encoding}: truncated character at offset {offset}",
                encoding=self.encoding,
                offset=offset,
            ) from exc
        if tail:
            yield tail

    def lines(self) -> Iterator[str]:
        """Lines ending in `\\n`, `\\r\\n` or `\\r` (mixed is fine), each within the limit."""
        carry = ""
        limit = self.max_line_chars
        for text in self._chunks():
            text = carry + text
            # A trailing `\r` may be the first half of `\r\n`: keep it for the next chunk.
            cut = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1))
            if cut < 0:
                carry = text
            else:
                carry = text[cut + 1 :]
                for line in io.StringIO(text[: cut + 1], newline=""):
                    self.lines_read += 1
                    if len(line) > limit:
                        self._too_long(self.lines_read)
                    yield line
            if len(carry) > limit:
                self._too_long(self.lines_read + 1)
        if carry:
            self.lines_read += 1
            yield carry

    def _too_long(self, line: int) -> None:
        raise FileRejected(
            f"line {line} is longer than {self.max_line_chars} characters "
            "(the feed's max_line_chars)",
            line=line,
            max_line_chars=self.max_line_chars,
        )
