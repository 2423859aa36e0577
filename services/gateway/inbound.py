"""Received bytes handed to asyncssh's packet parser one packet at a time.

asyncssh keeps what it has received in one `bytes` buffer: each read is appended
(a copy of the whole buffer) and each packet parsed is sliced off the front (another
copy of everything behind it). A 256 KiB read holding four 64 KiB upload packets is
copied about four times over before any packet is decrypted. Here reads gather in a
`bytearray` and asyncssh's buffer is given exactly the bytes its parser asks for
next (a packet's first block, then the rest of it), so each byte is copied once.

Whenever asyncssh is not between packets (the version line, or a packet whose
handler is still running) the bytes go its own way, in order, and this steps aside
until its buffer is empty again.
"""

from __future__ import annotations

from typing import Any

import asyncssh
from asyncssh.connection import SSHConnection

_PARSERS = (SSHConnection._recv_pkthdr, SSHConnection._recv_packet)


class PacketAtATime(asyncssh.SSHServerConnection):
    """asyncssh's server connection, fed one packet's bytes at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unparsed = bytearray()

    def _between_packets(self) -> bool:
        return getattr(self._recv_handler, "__func__", None) in _PARSERS

    def _wanted(self) -> int:
        """Bytes asyncssh's parser needs for its next step."""
        if self._recv_handler.__func__ is SSHConnection._recv_pkthdr:  # type: ignore[attr-defined]
            return int(self._recv_blocksize)
        return int(4 + self._pktlen + self._recv_macsize - self._recv_blocksize)

    def data_received(self, data: bytes, datatype: Any = None) -> None:
        if self._inpbuf or not self._between_packets():
            super().data_received(data, datatype)
            return
        unparsed = self._unparsed
        unparsed += data
        used = 0
        odd = False
        with memoryview(unparsed) as view:
            while self._transport is not None and self._between_packets():
                wanted = self._wanted()
                if wanted <= 0:
                    # A length no valid packet has: asyncssh's parser judges it.
                    odd = True
                    break
                if len(unparsed) - used < wanted:
                    break
                self._inpbuf = bytes(view[used : used + wanted])
                used += wanted
                self._recv_data()
                if self._inpbuf:
                    break
        del unparsed[:used]
        if unparsed and (odd or self._inpbuf or not self._between_packets()):
            # asyncssh is busy with a packet (or judging an odd one): the rest waits in its
            # own buffer, in order, as it would without this class.
            self._inpbuf += bytes(unparsed)
            unparsed.clear()
            if odd:
                self._recv_data()
