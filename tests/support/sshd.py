"""OpenSSH's sshd on a loopback port with a throw-away config: the vendor's SFTP server."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from tests.support.infra import free_port, wait_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def sshd_available() -> bool:
    return Path(SSHD).exists()


@dataclass
class Sshd:
    """A running sshd; files land below `home` (the session's start directory)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.workdir / "home"

    @property
    def client_key_path(self) -> Path:
        return self.workdir / "client_ed25519"

    @property
    def host_key_path(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    def client_key(self) -> asyncssh.SSHKey:
        return asyncssh.read_private_key(self.client_key_path)

    def host_fingerprint(self) -> str:
        return asyncssh.read_public_key(str(self.host_key_path) + ".pub").get_fingerprint("sha256")

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        if not self.client_key_path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(self.client_key_path)
            os.chmod(self.client_key_path, 0o600)
            key.write_public_key(str(self.client_key_path) + ".pub")
        if not self.host_key_path.exists():
            self.new_host_key()
        (self.workdir / "authorized_keys").write_bytes(
            Path(str(self.client_key_path) + ".pub").read_bytes()
        )
        config = f"""
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key_path}
PidFile {self.workdir / "sshd.pid"}
AuthorizedKeysFile {self.workdir / "authorized_keys"}
AllowUsers {self.user}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d {self.home}
LogLevel ERROR
MaxStartups 400:30:800
MaxSessions 100
"""
        (self.workdir / "sshd_config").write_text(config)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)

    def new_host_key(self) -> None:
        """Give the server a new identity, as a vendor's rebuilt server would have."""
        for p in (self.host_key_path, Path(str(self.host_key_path) + ".pub")):
            p.unlink(missing_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(self.host_key_path)
        os.chmod(self.host_key_path, 0o600)
        key.write_public_key(str(self.host_key_path) + ".pub")

    def start(self) -> Sshd:
        self._prepare()
        log = open(self.workdir / "sshd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.workdir / "sshd_config")],
            stdout=log,
            stderr=log,
        )
        try:
            wait_port("127.0.0.1", self.port, timeout=10)
        except TimeoutError as exc:
            raise RuntimeError((self.workdir / "sshd.log").read_text()) from exc
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        time.sleep(0.1)
        self.start()
