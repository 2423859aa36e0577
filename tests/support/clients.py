"""SFTP clients nobody here wrote: OpenSSH's `sftp` (driven on stdin), asyncssh, PuTTY's
`psftp`, lftp, rclone and curl."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from courier.gateway import hostkeys


@dataclass
class SftpResult:
    returncode: int
    stdout: str
    stderr: str


def openssh_available() -> bool:
    return bool(shutil.which("sftp") and shutil.which("sshpass"))


async def openssh_sftp(
    port: int,
    user: str,
    commands: list[str],
    *,
    password: str | None = None,
    identity: Path | None = None,
    host: str = "127.0.0.1",
    bind_address: str | None = None,
    known_hosts: Path | None = None,
    within: float = 60,
) -> SftpResult:
    """Run OpenSSH's sftp with commands on stdin (checking the host key against
    `known_hosts` and taking the keys the server announces, when given).

    `sftp -b` would force BatchMode and so turn password login off; stdin keeps it on
    (with `sshpass` typing the password). Failed commands do not stop the script:
    callers read what went wrong from stderr, as a partner would.
    """
    pinned = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "UpdateHostKeys=yes"]
    args = [
        "sftp",
        "-P", str(port),
        "-o", "StrictHostKeyChecking=" + ("yes" if known_hosts else "no"),
        *(pinned if known_hosts else ["-o", "UserKnownHostsFile=/dev/null"]),
        "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=10",
    ]  # fmt: skip
    if bind_address:
        args += ["-o", f"BindAddress={bind_address}"]
    if identity:
        args += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    else:
        args += ["-o", "PubkeyAuthentication=no"]
    if password is None:
        args += ["-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no"]
    else:
        args += ["-o", "NumberOfPasswordPrompts=1"]
    args.append(f"{user}@{host}")
    env = {}
    if password is not None:
        args = ["sshpass", "-e", *args]
        env["SSHPASS"] = password
    script = "\n".join([*commands, "bye"]) + "\n"
    return await run_client(args, stdin=script.encode(), env=env, within=within)


async def run_client(
    args: list[str],
    *,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    within: float = 60,
) -> SftpResult:
    """Run a client program to its end; `env` adds to this process's environment."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return SftpResult(
        proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )


async def asyncssh_connect(
    port: int, user: str, password: str | None = None, **kwargs: object
) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1",
        port,
        username=user,
        password=password,
        known_hosts=None,
        client_keys=kwargs.pop("client_keys", None),
        agent_path=None,
        **kwargs,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------- partners' other clients
# Each reads its password from a file, its standard input or its environment, never from
# the command line (where `ps` would show it), and checks the gateway's host key.


def known_hosts(path: Path, port: int, host_key_dir: Path, host: str = "127.0.0.1") -> Path:
    """An OpenSSH known_hosts file pinning the gateway's host keys."""
    lines = [
        f"[{host}]:{port} {key.export_public_key().decode().strip()}"
        for key in hostkeys.load_or_create(host_key_dir)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def putty_key(openssh_key: Path) -> Path:
    """The same private key in PuTTY's own format, the only one PuTTY reads."""
    ppk = openssh_key.parent / f"{openssh_key.name}.ppk"
    result = await run_client(["puttygen", str(openssh_key), "-O", "private", "-o", str(ppk)])
    assert result.returncode == 0, result.stderr
    return ppk


async def psftp(
    port: int,
    user: str,
    commands: list[str],
    *,
    password: str,
    ppk: Path | None,
    host_key_dir: Path,
    within: float = 60,
) -> SftpResult:
    """PuTTY's psftp in batch mode: it stops at the first command that fails."""
    with tempfile.TemporaryDirectory() as work:
        script, secret = Path(work) / "commands", Path(work) / "password"
        script.write_text("\n".join(commands) + "\n")
        secret.write_text(password + "\n")
        args = ["psftp", "-batch", "-P", str(port), "-l", user, "-pwfile", str(secret)]
        if ppk is not None:
            args += ["-i", str(ppk)]
        for fingerprint in hostkeys.fingerprints(host_key_dir).values():
            args += ["-hostkey", fingerprint]
        return await run_client([*args, "-b", str(script), "127.0.0.1"], within=within)


async def lftp(
    port: int,
    user: str,
    commands: list[str],
    *,
    password: str,
    identity: Path | None,
    known_hosts: Path,
    within: float = 60,
) -> SftpResult:
    """lftp over OpenSSH's ssh (its SFTP transport), which answers the password prompt."""
    ssh = f"ssh -a -x -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    ssh += f" -i {identity} -o IdentitiesOnly=yes" if identity else " -o PubkeyAuthentication=no"
    script = [
        "set cmd:fail-exit yes",
        f'set sftp:connect-program "{ssh}"',
        f"open -u {user},{password} sftp://127.0.0.1:{port}",
        *commands,
        "bye",
    ]
    return await run_client(
        ["lftp", "-f", "/dev/stdin"], stdin="\n".join(script).encode(), within=within
    )


async def rclone(
    *args: str,
    port: int,
    user: str,
    password: str,
    identity: Path | None,
    known_hosts: Path,
    within: float = 60,
) -> SftpResult:
    """One rclone command; the remote `:sftp:` is configured by environment variables."""
    obscured = await run_client(["rclone", "obscure", "-"], stdin=password.encode())
    env = {
        "RCLONE_CONFIG": os.devnull,
        "RCLONE_SFTP_HOST": "127.0.0.1",
        "RCLONE_SFTP_PORT": str(port),
        "RCLONE_SFTP_USER": user,
        "RCLONE_SFTP_PASS": obscured.stdout.strip(),
        "RCLONE_SFTP_KNOWN_HOSTS_FILE": str(known_hosts),
    }
    if identity is not None:
        env["RCLONE_SFTP_KEY_FILE"] = str(identity)
    return await run_client(["rclone", *args], env=env, within=within)


async def curl(
    port: int,
    user: str,
    path: str,
    *args: str,
    password: str,
    identity: Path | None,
    known_hosts: Path,
    within: float = 60,
) -> SftpResult:
    """curl (libssh2) on one sftp:// URL; it checks host keys in ~/.ssh/known_hosts."""
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / ".ssh").mkdir()
        shutil.copy(known_hosts, Path(home) / ".ssh" / "known_hosts")
        options = ["curl", "--silent", "--show-error", "--config", "-"]
        if identity is not None:
            options += ["--key", str(identity)]
        return await run_client(
            [*options, *args, f"sftp://127.0.0.1:{port}{path}"],
            stdin=f'user = "{user}:{password}"\n'.encode(),
            env={"HOME": home},
            within=within,
        )
