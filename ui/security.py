"""The HTTP headers that keep the page to itself, whatever a document or an answer says.

The Content-Security-Policy lets the page load images, scripts, styles, fonts and
connections only from the app's own origin (plus `data:`/`blob:` URLs that Gradio builds
in the page), so even an image or script that slipped past rendering cannot reach or
report to another host. Gradio's page needs inline scripts and styles (its config is an
inline script), so those stay allowed; remote ones are not. No referrer leaves the page,
and the page cannot be framed by another site.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class SecurityHeaders:
    """ASGI middleware adding HEADERS to every HTTP response (streams included: it only
    touches the response's start message, never its body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def app_kwargs() -> dict[str, Any]:
    """What Gradio's `launch` and `mount_gradio_app` take to build the app with the headers."""
    return {"middleware": [Middleware(SecurityHeaders)]}
