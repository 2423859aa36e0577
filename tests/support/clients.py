"""SFTP clients nobody here wrote: OpenSSH's `sftp` (driven on stdin) and asyncssh's."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import asyncssh


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
    within: float = 60,
) -> SftpResult:
    """Run OpenSSH's sftp with commands on stdin.

    `sftp -b` would force BatchMode and so turn password login off; stdin keeps it on
    (with `sshpass` typing the password). Failed commands do not stop the script:
    callers read what went wrong from stderr, as a partner would.
    """
    args = [
        "sftp",
        "-P", str(port),
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
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
    env = dict(os.environ)
    if password is not None:
        args = ["sshpass", "-e", *args]
        env["SSHPASS"] = password
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    script = "\n".join([*commands, "bye"]) + "\n"
    out, err = await asyncio.wait_for(proc.communicate(script.encode()), within)
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
