"""chacha20-poly1305@openssh.com with fewer cipher contexts and copies per packet.

asyncssh's own implementation builds four ChaCha20/Poly1305 contexts per packet
(header, Poly1305 key, payload, tag) and joins header and payload before the tag.
The Poly1305 key is the first 32 bytes of the payload key's keystream block 0 and
the payload is encrypted from block 1, so one context started at counter 0 gives
both; the tag is fed header and payload in turn. Three contexts a packet instead of
four and no joined copy: a download's gateway CPU is mostly per-packet work, as
OpenSSH's client takes 32 KiB packets.

The bytes on the wire are the same (the tests compare both implementations packet
for packet and move files through OpenSSH's and asyncssh's clients). `install()` makes
asyncssh use this class for every chacha20-poly1305@openssh.com connection it sets
up from then on; the algorithm lists and their order are not touched.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.algorithms import ChaCha20
from cryptography.hazmat.primitives.poly1305 import Poly1305

# ChaCha20's 16-byte initial block: a 64-bit little-endian counter, then the nonce.
_COUNTER_0 = bytes(8)
# Keystream block 0 of the payload key: the first 32 bytes are the Poly1305 key, the
# rest is skipped so the payload starts at block 1.
_BLOCK = bytes(64)
_POLY1305_KEY_BYTES = 32


class ChachaCipher:
    """OpenSSH's ChaCha20-Poly1305 (PROTOCOL.chacha20poly1305), asyncssh's interface.

    `key` is 64 bytes: the payload key, then the header ("additional data") key.
    `nonce` is the packet sequence number as 8 big-endian bytes.
    """

    def __init__(self, key: bytes) -> None:
        half = len(key) // 2
        self._key = key[:half]
        self._adkey = key[half:]

    def _payload_stream(self, nonce: bytes) -> tuple[Poly1305, object]:
        """Poly1305 keyed for this packet and the payload keystream at block 1."""
        stream = Cipher(ChaCha20(self._key, _COUNTER_0 + nonce), mode=None).encryptor()
        mac = Poly1305(stream.update(_BLOCK)[:_POLY1305_KEY_BYTES])
        return mac, stream

    def _header(self, header: bytes, nonce: bytes) -> bytes:
        return (
            Cipher(ChaCha20(self._adkey, _COUNTER_0 + nonce), mode=None).encryptor().update(header)
        )

    def encrypt_and_sign(self, header: bytes, data: bytes, nonce: bytes) -> tuple[bytes, bytes]:
        """Encrypt header and payload; the tag covers both ciphertexts."""
        header = self._header(header, nonce)
        mac, stream = self._payload_stream(nonce)
        data = stream.update(data)  # type: ignore[attr-defined]
        mac.update(header)
        mac.update(data)
        return header + data, mac.finalize()

    def decrypt_header(self, header: bytes, nonce: bytes) -> bytes:
        return self._header(header, nonce)

    def verify_and_decrypt(
        self, header: bytes, data: bytes, nonce: bytes, tag: bytes
    ) -> bytes | None:
        """The payload in clear, or None when the tag does not verify (nothing decrypted)."""
        mac, stream = self._payload_stream(nonce)
        mac.update(header)
        mac.update(data)
        try:
            mac.verify(tag)
        except InvalidSignature:
            return None
        return stream.update(data)  # type: ignore[attr-defined,no-any-return]


def install() -> None:
    """Have asyncssh build this cipher for chacha20-poly1305@openssh.com from now on.

    asyncssh's `ChachaEncryption.new` looks the cipher class up in its module at each
    key exchange, so connections keyed after this call use it (idempotent).
    """
    import asyncssh.encryption

    asyncssh.encryption.ChachaCipher = ChachaCipher  # type: ignore[attr-defined,misc]
