"""Support's view of a source: declared in YAML, tested and listed from the command line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from courier.cli.main import app
from courier.common.settings import get_settings
from tests.support.sshd import Sshd


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COURIER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _spec(tmp_path: Path, sshd: Sshd, fingerprint: str, extra: str = "") -> Path:
    path = tmp_path / "acme.yaml"
    path.write_text(
        f"""
tenant: acme
sources:
  - name: payroll-vendor
    pattern: "leave_*.csv"
    remote:
      host: 127.0.0.1
      port: {sshd.port}
      user: {sshd.user}
      private_key: file:{sshd.client_key_path}
      host_key_sha256: "{fingerprint}"
    directory: {sshd.home}
{extra}"""
    )
    return path


def test_source_is_applied_tested_and_listed(
    cli_env: CliRunner, sshd: Sshd, tmp_path: Path
) -> None:
    (sshd.home / "leave_20261101.csv").write_text("employee_id\n")
    (sshd.home / "other.txt").write_text("x")
    past = time.time() - 600
    os.utime(sshd.home / "leave_20261101.csv", (past, past))
    assert cli_env.invoke(app, ["tenants", "create", "acme"]).exit_code == 0

    applied = cli_env.invoke(
        app, ["feeds", "apply", str(_spec(tmp_path, sshd, sshd.host_fingerprint()))]
    )
    assert applied.exit_code == 0, applied.output
    assert "source acme/payroll-vendor" in applied.output

    tested = cli_env.invoke(app, ["sources", "test", "payroll-vendor"])
    assert tested.exit_code == 0, tested.output
    assert "host key matches" in tested.output
    assert "leave_20261101.csv" in tested.output and "other.txt" not in tested.output

    listed = cli_env.invoke(app, ["sources", "list"])
    assert "payroll-vendor" in listed.output


def test_wrong_fingerprint_is_reported_by_source_test(
    cli_env: CliRunner, sshd: Sshd, tmp_path: Path
) -> None:
    cli_env.invoke(app, ["tenants", "create", "acme"])
    wrong = "SHA256:" + "A" * 43
    assert cli_env.invoke(app, ["feeds", "apply", str(_spec(tmp_path, sshd, wrong))]).exit_code == 0
    tested = cli_env.invoke(app, ["sources", "test", "payroll-vendor"])
    assert tested.exit_code == 1
    assert "does not match the pinned" in tested.output


def test_spec_with_a_plain_password_is_refused_with_its_line(
    cli_env: CliRunner, sshd: Sshd, tmp_path: Path
) -> None:
    cli_env.invoke(app, ["tenants", "create", "acme"])
    spec = _spec(tmp_path, sshd, sshd.host_fingerprint())
    spec.write_text(
        spec.read_text().replace(f"private_key: file:{sshd.client_key_path}", "password: hunter2")
    )
    result = cli_env.invoke(app, ["feeds", "apply", str(spec)])
    assert result.exit_code == 1
    assert "line 4" in result.output and "secret reference" in result.output
