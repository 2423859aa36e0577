"""The console's HTTP surface: security headers on every response, and when TLS is on.

Pages run no inline script: htmx and console.js are files under /static. The two inline
blocks the console does serve are allowed by their SHA-256 in the policy, computed here
from the very text that is served (the sign-in page's style, which cannot link the
stylesheet because /static needs a signed-in viewer, and the API docs' Swagger UI start
script), so a change to either cannot drift from the policy and nothing injected into a
page can run.

TLS is on when the console's public address (`COURIER_CONSOLE_BASE_URL`) is https, as it
is behind a proxy that ends TLS, or when the request itself came over https. The public
address decides without trusting any forwarded header.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from courier.common.settings import Settings

SIGNIN_TEMPLATE = Path(__file__).parent / "templates" / "signin.html"

# Browsers remember HTTPS-only for a year; subdomains are left to their own owners.
HSTS = "max-age=31536000"

# The API docs page, rendered once: its inline start script is hashed into the policy.
API_DOCS_HTML: str = bytes(
    get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="Courier console API",
        swagger_js_url="/static/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui.css",
        swagger_favicon_url="data:,",
    ).body
).decode()


def inline_blocks(html: str, tag: str) -> list[str]:
    """The text of each inline `<tag>` block (one without a `src`) in `html`."""
    return re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)


def source_hashes(blocks: Iterable[str]) -> list[str]:
    """CSP source expressions allowing exactly these inline blocks."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in blocks
    ]


def content_security_policy() -> str:
    """Only the console's own files and the hashed blocks above; never framed."""
    signin = SIGNIN_TEMPLATE.read_text()
    scripts = " ".join(["'self'", *source_hashes(inline_blocks(API_DOCS_HTML, "script"))])
    styles = " ".join(["'self'", *source_hashes(inline_blocks(signin, "style"))])
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


@dataclass(frozen=True)
class Policy:
    """The headers every response carries, and whether TLS is on for every request."""

    headers: tuple[tuple[bytes, bytes], ...]
    tls: bool

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        headers = {
            "Content-Security-Policy": content_security_policy(),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "Cross-Origin-Opener-Policy": "same-origin",
        }
        return cls(
            tuple((k.lower().encode(), v.encode()) for k, v in headers.items()),
            tls_on(settings),
        )


def tls_on(settings: Settings) -> bool:
    """Whether people reach the console over https (see the module's docstring)."""
    return settings.console_base_url.startswith("https://")


class SecurityHeaders:
    """ASGI middleware outside everything else, so errors (even a 500) get the headers."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(self.policy.headers)
        if self.policy.tls or scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", HSTS.encode()))
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def protect(app: FastAPI, settings: Settings) -> None:
    """Put `SecurityHeaders` around the app's whole middleware stack (FastAPI's own
    `add_middleware` would sit inside the handler that answers unexpected errors)."""
    policy = Policy.of(settings)
    build = app.build_middleware_stack

    def build_protected() -> ASGIApp:
        return SecurityHeaders(build(), policy)

    app.build_middleware_stack = build_protected  # type: ignore[method-assign]
