"""A Twilio stand-in for SMS tests: its Messages API on a loopback port, checking the
account's credentials as Twilio does (HTTP basic auth: account SID, auth token)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.support.infra import free_port


@dataclass
class Twilio:
    url: str
    account_sid: str
    auth_token: str
    sent: list[tuple[str, str]] = field(default_factory=list)  # (to, body)

    def to(self, phone: str) -> list[str]:
        return [text for number, text in self.sent if number == phone]


@contextlib.contextmanager
def twilio_server(account_sid: str, auth_token: str) -> Iterator[Twilio]:
    port = free_port()
    twilio = Twilio(f"http://127.0.0.1:{port}", account_sid, auth_token)
    expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"] or 0)).decode())
            if self.headers.get("Authorization") != expected:
                self._answer(401, {"code": 20003, "message": "Authenticate"})
            elif self.path != path:
                self._answer(404, {"code": 20404, "message": "not found"})
            else:
                twilio.sent.append((form["To"][0], form["Body"][0]))
                self._answer(201, {"sid": f"SM{uuid.uuid4().hex}", "status": "queued"})

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test reads what was sent, not an access log

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield twilio
    finally:
        server.shutdown()
        server.server_close()
