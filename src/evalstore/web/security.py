"""What keeps the dashboard safe by default: loopback binding, the token, response headers.

The dashboard is read-only; its one write (acknowledging an alert) needs the token.
A non-loopback address is refused unless a token is set, and then every request
must carry it: an `Authorization: Bearer` header, or the cookie a visit to
`/?token=...` sets (HttpOnly, SameSite=Strict). Writes take the header or a form
field only, never the cookie, so another site cannot make a browser send one.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from evalstore.errors import ConfigurationError

TOKEN_ENV = "EVALSTORE_DASHBOARD_TOKEN"
TOKEN_COOKIE = "evalstore_token"
MIN_TOKEN_LENGTH = 16

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # Plotly sets the styles of the charts it draws from its own code.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token, or with a weak one.

    Raises:
        ConfigurationError: what is wrong and what to do, in one line.
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            f"the dashboard token must be at least {MIN_TOKEN_LENGTH} characters "
            f"(for example: {TOKEN_ENV}=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe())'))"
        )
    if not is_loopback(host) and token is None:
        raise ConfigurationError(
            f"refusing to serve on {host}, which other machines can reach, without a token: "
            f"pass --token or set {TOKEN_ENV} (every request must then carry it), "
            "or bind to 127.0.0.1"
        )


def allowed_hosts(host: str, token: str | None) -> list[str] | None:
    """The `Host` headers a server bound to `host` answers: without a token, only the
    names of loopback (against DNS rebinding); with one, any (the token guards it)."""
    if token is not None:
        return None
    names = {"localhost", "127.0.0.1", "::1", "[::1]", host.strip("[]")}
    return sorted(names)


def token_matches(token: str, given: str | None) -> bool:
    """Compare in constant time."""
    return given is not None and hmac.compare_digest(token.encode(), given.encode())


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
