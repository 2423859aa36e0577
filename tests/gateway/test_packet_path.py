"""The gateway's faster packet path: its ChaCha20-Poly1305 and the IGNORE packets it leaves out.

The cipher must produce asyncssh's bytes exactly (so any peer reads them), and files must
come back whole through OpenSSH (chacha20-poly1305, its default) and paramiko (AES-CTR,
which it prefers). OpenSSH's own debug log shows which SSH_MSG_IGNORE packets arrive.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path

import asyncssh
import paramiko
import pytest
from asyncssh.crypto.chacha import ChachaCipher as AsyncsshChacha

from courier.gateway import chacha
from courier.gateway.chaff import IgnoreOnlyForCbc
from tests.gateway.conftest import Partner
from tests.support import clients
from tests.support.infra import free_port

pytestmark = pytest.mark.skipif(
    not clients.openssh_available(), reason="needs OpenSSH's sftp and sshpass"
)

# OpenSSH logs every packet it reads at -vvv; type 2 is SSH_MSG_IGNORE.
_IGNORE_RECEIVED = re.compile(r"receive packet: type 2\r?$", re.MULTILINE)


def _nonce(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


@pytest.mark.parametrize("size", [0, 12, 4095, 32768 + 12, 262144 + 7])
@pytest.mark.parametrize("seq", [0, 1, 2**32 - 1, 2**32, 2**64 - 1])
def test_chacha_cipher_writes_and_reads_asyncssh_bytes(size: int, seq: int) -> None:
    key = os.urandom(64)
    ours, theirs = chacha.ChachaCipher(key), AsyncsshChacha(key)
    header, data = os.urandom(4), os.urandom(size)
    sealed, tag = ours.encrypt_and_sign(header, data, _nonce(seq))
    assert (sealed, tag) == theirs.encrypt_and_sign(header, data, _nonce(seq))
    assert ours.decrypt_header(sealed[:4], _nonce(seq)) == header
    assert ours.verify_and_decrypt(sealed[:4], sealed[4:], _nonce(seq), tag) == data


def test_chacha_cipher_refuses_any_changed_byte() -> None:
    key = os.urandom(64)
    cipher = chacha.ChachaCipher(key)
    sealed, tag = cipher.encrypt_and_sign(os.urandom(4), os.urandom(1000), _nonce(7))
    header, body = sealed[:4], sealed[4:]
    flipped_body = bytes([body[0] ^ 1]) + body[1:]
    flipped_header = bytes([header[3] ^ 0x80]) + header[1:]
    assert cipher.verify_and_decrypt(header, flipped_body, _nonce(7), tag) is None
    assert cipher.verify_and_decrypt(flipped_header, body, _nonce(7), tag) is None
    assert cipher.verify_and_decrypt(header, body, _nonce(8), tag) is None
    assert cipher.verify_and_decrypt(header, body, _nonce(7), bytes(16)) is None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _openssh(partner: Partner, commands: list[str], *options: str) -> clients.SftpResult:
    """OpenSSH's sftp with extra options, logging every packet it reads (-vvv)."""
    args = [
        "sshpass", "-e", "sftp", "-vvv", "-P", str(partner.port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-i", str(partner.key_path), "-o", "IdentitiesOnly=yes", *options,
        f"{partner.username}@127.0.0.1",
    ]  # fmt: skip
    script = "\n".join([*commands, "bye"]) + "\n"
    result = await clients.run_client(
        args, stdin=script.encode(), env={"SSHPASS": partner.password}, within=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "cipher", ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr"]
)
async def test_openssh_moves_files_whole_with_no_ignore_packets(
    gateway: object, partner: Partner, tmp_path: Path, cipher: str
) -> None:
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    # Several windows and many 32 KiB packets, not a multiple of either.
    source.write_bytes(os.urandom(5 * 1024 * 1024 + 12345))
    up = await _openssh(partner, [f"put {source} /inbound/moved.bin"], "-c", cipher)
    down = await _openssh(partner, [f"get /inbound/moved.bin {back}"], "-c", cipher)
    assert _sha256(back) == _sha256(source)
    for result in (up, down):
        assert f"cipher: {cipher}" in result.stderr
        assert not _IGNORE_RECEIVED.search(result.stderr)


def _paramiko_round_trip(partner: Partner, source: Path, back: Path) -> str:
    with paramiko.SSHClient() as client:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            "127.0.0.1",
            partner.port,
            partner.username,
            password=partner.password,
            pkey=paramiko.Ed25519Key.from_private_key_file(str(partner.key_path)),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        transport = client.get_transport()
        assert transport is not None
        with client.open_sftp() as sftp:
            sftp.put(str(source), "/inbound/paramiko.bin")
            sftp.get("/inbound/paramiko.bin", str(back))
        return str(transport.remote_cipher)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_paramiko_moves_files_whole(
    gateway: object, partner: Partner, tmp_path: Path
) -> None:
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 777))
    cipher = await asyncio.to_thread(_paramiko_round_trip, partner, source, back)
    assert cipher.endswith("-ctr")
    assert _sha256(back) == _sha256(source)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_asyncssh_client_moves_files_whole_over_chacha(
    gateway: object, partner: Partner
) -> None:
    body = os.urandom(2 * 1024 * 1024 + 99)
    async with (
        await partner.connect(encryption_algs=["chacha20-poly1305@openssh.com"]) as conn,
        conn.start_sftp_client() as sftp,
    ):
        async with sftp.open("/inbound/asyncssh.bin", "wb") as fh:
            await fh.write(body)
        async with sftp.open("/inbound/asyncssh.bin", "rb") as fh:
            assert hashlib.sha256(await fh.read()).digest() == hashlib.sha256(body).digest()


class _Open(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False


async def _ssh_ignores(cipher: str, host_key: asyncssh.SSHKey, known: Path) -> str:
    """OpenSSH's ssh -vvv log of one command against a server with the gateway's
    connection class offering `cipher`."""
    loop = asyncio.get_running_loop()
    options = await asyncssh.SSHServerConnectionOptions.construct(
        server_factory=_Open,
        server_host_keys=[host_key],
        encryption_algs=[cipher],
        process_factory=lambda process: (process.stdout.write("done\n"), process.exit(0)),
    )
    port = free_port()
    server = await loop.create_server(lambda: IgnoreOnlyForCbc(loop, options), "127.0.0.1", port)
    known.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    try:
        command = [
            "ssh", "-vvv", "-p", str(port), "-c", cipher, "-o", f"UserKnownHostsFile={known}",
            "-o", "BatchMode=yes", "someone@127.0.0.1", "anything",
        ]  # fmt: skip
        result = await clients.run_client(command)
    finally:
        server.close()
        await server.wait_closed()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "done\n"
    return result.stderr


async def test_ignore_packets_are_sent_with_cbc_only(tmp_path: Path) -> None:
    """The RFC 4251 CBC countermeasure stays where it counts; AEAD and CTR go without."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    cbc = await _ssh_ignores("aes128-cbc", host_key, tmp_path / "known_hosts")
    chacha20 = await _ssh_ignores("chacha20-poly1305@openssh.com", host_key, tmp_path / "kh2")
    assert len(_IGNORE_RECEIVED.findall(cbc)) >= 3
    assert not _IGNORE_RECEIVED.search(chacha20)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sizes: list[int]
) -> None:
    """Forward in pieces of the given sizes, in turn: packets cut anywhere, even mid-header."""
    turn = 0
    try:
        while data := await reader.read(65536):
            while data:
                piece, data = data[: sizes[turn % len(sizes)]], data[sizes[turn % len(sizes)] :]
                turn += 1
                writer.write(piece)
                await writer.drain()
    finally:
        writer.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_packets_cut_anywhere_by_the_network_arrive_whole(
    gateway: object, partner: Partner, tmp_path: Path
) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", partner.port)
        await asyncio.gather(
            _pipe(client_r, server_w, [1, 3, 7, 4, 13, 1500, 16, 9000, 2]),
            _pipe(server_r, client_w, [65536]),
        )

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    source.write_bytes(os.urandom(512 * 1024 + 3))
    try:
        cut = Partner(partner.username, partner.password, partner.key_path, port)
        await _openssh(cut, [f"put {source} /inbound/cut.bin", f"get /inbound/cut.bin {back}"])
    finally:
        proxy.close()
    assert _sha256(back) == _sha256(source)
