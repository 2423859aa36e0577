"""The SSH algorithms the gateway offers, and the wider set a few old clients need.

The modern set passes `ssh-audit` with no failure: a post-quantum hybrid and
curve25519 key exchange (plus the large finite-field groups for clients without
curve25519), ed25519 and RSA-SHA2 host keys, AEAD ciphers before CTR, ETM MACs
only, no compression unless configured, and a version string naming no version.

The key exchange happens before the client names its user, so the legacy set is
chosen by source address: an address inside the allowlist of an account that has
`legacy_algorithms` on gets it, no other address does, and a range too wide to
name a partner never does (so a broad allowlist cannot turn it on for everyone).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

import asyncssh
from asyncssh.kex import get_kex_algs

# What the gateway answers with before the key exchange ("SSH-2.0-Courier").
SERVER_VERSION = "Courier"

# Post-quantum hybrids, strongest first; offered when asyncssh and its libraries have them.
POST_QUANTUM_KEX = (
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
)
KEX = (
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    # For clients without curve25519: 4096 and 8192-bit groups, no NIST curves.
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
)
HOST_KEY = ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256")
ENCRYPTION = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
MAC = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
# Partners' own keys (user authentication): what `courier accounts add-key` accepts.
USER_SIGNATURE = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
# Delayed compression only (after login): pre-auth zlib is attack surface for nothing.
COMPRESSION = ("zlib@openssh.com",)

# Appended for legacy addresses only: NIST-curve and 2048-bit key exchange, and the
# encrypt-and-MAC modes of clients that know no ETM (older Java and .NET libraries).
LEGACY_KEX = (
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group14-sha256",
)
LEGACY_MAC = ("hmac-sha2-256", "hmac-sha2-512")

# An allowlisted range wider than this is not a partner's own address: it never gets
# the legacy set, whatever the account says.
LEGACY_MIN_PREFIX = {4: 24, 6: 56}


@dataclass(frozen=True)
class Algorithms:
    """One set offered in a key exchange, in preference order."""

    kex: tuple[str, ...]
    encryption: tuple[str, ...]
    mac: tuple[str, ...]
    compression: tuple[str, ...]
    legacy: bool = False


def post_quantum_kex() -> tuple[str, ...]:
    """The hybrids this asyncssh (with its installed libraries) can do."""
    available = {alg.decode() for alg in get_kex_algs()}
    return tuple(alg for alg in POST_QUANTUM_KEX if alg in available)


def modern(*, compression: bool = False) -> Algorithms:
    return Algorithms(
        kex=post_quantum_kex() + KEX,
        encryption=ENCRYPTION,
        mac=MAC,
        compression=(*COMPRESSION, "none") if compression else ("none",),
    )


def legacy(base: Algorithms) -> Algorithms:
    return Algorithms(
        kex=base.kex + LEGACY_KEX,
        encryption=base.encryption,
        mac=base.mac + LEGACY_MAC,
        compression=base.compression,
        legacy=True,
    )


def narrow_enough(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return network.prefixlen >= LEGACY_MIN_PREFIX[network.version]


def too_wide(cidrs: list[str]) -> list[str]:
    """The ranges of an allowlist that would never get the legacy set."""
    return [c for c in cidrs if not narrow_enough(ipaddress.ip_network(c, strict=False))]


def keep_host_keys(options: asyncssh.SSHServerConnectionOptions) -> None:
    """Offer each host key only under the algorithms in `HOST_KEY`, in that order.

    asyncssh offers an RSA key under SHA-1 `ssh-rsa` (and ssh.com variants) as well;
    those are dropped here. A key type missing from the key directory is simply not
    offered.
    """
    offered = options.server_host_keys
    kept = OrderedDict(
        (alg.encode(), offered[alg.encode()]) for alg in HOST_KEY if alg.encode() in offered
    )
    offered.clear()
    offered.update(kept)
