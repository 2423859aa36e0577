"""SSH_MSG_IGNORE before a packet only where it protects something: CBC ciphers.

RFC 4251 section 9.3.1 describes an attack on SSH's CBC mode, where the next
packet's IV is the last ciphertext block already on the wire; the countermeasure is
an SSH_MSG_IGNORE sent before a packet when no data is outstanding. asyncssh's
`send_packet` sends one before every packet past the key exchange, whatever the
cipher, which doubles the packets, their encryption and the socket writes of a
transfer. AEAD and CTR ciphers chain no block into the next packet (RFC 4344 gives
CTR as the remedy for that attack), so there the IGNORE is left out; with any other
cipher (the gateway offers none, see `algorithms`) asyncssh's behaviour is kept.
"""

from __future__ import annotations

from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE, MSG_KEX_LAST

# Named one by one, not taken from the offer: a CBC cipher added there keeps its IGNORE.
NOT_CHAINED = frozenset(
    {
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-ctr",
        "aes192-ctr",
        "aes128-ctr",
    }
)


class IgnoreOnlyForCbc(asyncssh.SSHServerConnection):
    """asyncssh's server connection without the IGNORE packet where it protects nothing."""

    _drop_next_ignore = False

    def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype == MSG_IGNORE and self._drop_next_ignore:
            # The IGNORE asyncssh inserts ahead of the packet being sent just now.
            self._drop_next_ignore = False
            return
        if pkttype > MSG_KEX_LAST and self.get_extra_info("send_cipher") in NOT_CHAINED:
            self._drop_next_ignore = True
            try:
                super().send_packet(pkttype, *args, handler=handler)
            finally:
                # Also when asyncssh deferred the packet (a key exchange under way) and
                # inserted nothing: a later IGNORE of its own is sent.
                self._drop_next_ignore = False
            return
        super().send_packet(pkttype, *args, handler=handler)
