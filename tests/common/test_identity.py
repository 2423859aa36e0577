"""The process identity: readable, unique per process start, short enough for its columns."""

from __future__ import annotations

import os
import re

import pytest

from courier.common.identity import MAX_LENGTH, instance_name


def test_names_service_host_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "worker-7")
    name = instance_name("poller")
    assert re.fullmatch(rf"poller@worker-7:{os.getpid()}:[0-9a-f]{{6}}", name), name
    assert instance_name("poller") != name  # a restart with the same pid is someone else


def test_a_long_host_name_is_cut_not_the_unique_part(monkeypatch: pytest.MonkeyPatch) -> None:
    host = "courier-exporter-" + "x" * 240  # a fully qualified name may run to 253
    monkeypatch.setattr("socket.gethostname", lambda: host)
    name = instance_name("exporter")
    assert len(name) == MAX_LENGTH
    assert name.startswith("exporter@courier-exporter-x")
    assert re.search(rf":{os.getpid()}:[0-9a-f]{{6}}$", name), name
