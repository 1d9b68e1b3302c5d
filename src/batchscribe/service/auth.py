"""Who may use the service: one shared token, compared in constant time.

A request carries the token as `Authorization: Bearer TOKEN` (API clients), as the `token`
query parameter (event emitters that cannot set headers; weaker: URLs end up in logs and
proxies' histories), or as the cookie the web view's login form sets (HttpOnly, SameSite=Strict).
Every path but /healthz and the login form needs it. Without a configured token the service is
open, which `serve` allows only on a loopback address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path
from typing import Optional

from starlette.requests import Request

from batchscribe.errors import OptionsError

COOKIE = "batchscribe_token"
OPEN_PATHS = ("/healthz", "/login")
MIN_TOKEN_CHARS = 16


def load_token(token_file: Optional[Path] = None) -> Optional[str]:
    """The token from `token_file` (its first line), else from BATCHSCRIBE_TOKEN; None if neither is set.

    Raises OptionsError for an unreadable file or a token too short to resist guessing."""
    if token_file is not None:
        try:
            words = token_file.read_text().split()
        except OSError as error:
            raise OptionsError(f"--token-file {token_file}: cannot be read: {error.strerror}") from None
        token = words[0] if words else ""
    else:
        token = os.environ.get("BATCHSCRIBE_TOKEN", "").strip()
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS:
        raise OptionsError(
            f"the service token must be at least {MIN_TOKEN_CHARS} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: Optional[str]) -> None:
    """Refuse to serve a non-loopback address without a token (OptionsError)."""
    if token is None and not is_loopback(host):
        raise OptionsError(
            f"--host {host} is reachable from other machines: set BATCHSCRIBE_TOKEN or --token-file "
            "so that only holders of the token can enqueue jobs or read transcripts"
        )


def offered_token(request: Request) -> Optional[str]:
    """The token a request presents: header, then query parameter, then cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or request.cookies.get(COOKIE)


def token_matches(offered: Optional[str], token: str) -> bool:
    """Constant-time comparison (no early exit that would leak how much of a guess was right); both
    sides are hashed first, so not even the token's length shows in the timing."""
    if offered is None:
        return False
    return hmac.compare_digest(hashlib.sha256(offered.encode()).digest(), hashlib.sha256(token.encode()).digest())


def allowed(request: Request, token: Optional[str]) -> bool:
    return token is None or request.url.path in OPEN_PATHS or token_matches(offered_token(request), token)


class TokenAuth:
    """ASGI middleware: 401 (JSON) for API calls without the token, a redirect to /login for pages.

    Runs before the body is read, so an unauthenticated 100 MB POST costs nothing."""

    def __init__(self, app, token: Optional[str]):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or allowed(Request(scope), self.token):
            await self.app(scope, receive, send)
            return
        wants_page = scope["method"] == "GET" and b"text/html" in dict(scope["headers"]).get(b"accept", b"")
        if wants_page:
            headers = [(b"location", b"/login"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 303, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b'{"error": "a valid token is needed: Authorization: Bearer TOKEN (or ?token=TOKEN)"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"www-authenticate", b'Bearer realm="batchscribe"')]  # fmt: skip
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
