"""The port a server listens on, checked for both servers (`python -m rag.server` and
`python -m ui`): a port number is checked when the arguments are read, and the address is
bound before anything slow loads, so a typo or a busy port ends in one line and exit 2, not
in a banner followed by uvicorn's log line (exit 3) or an OverflowError from deep in Gradio.

It lives here rather than in `ui/` because `rag/` may not import `ui/`; `ui/` imports it.
"""

from __future__ import annotations

import argparse
import errno
import socket

from rag.errors import ConfigError


def port_number(text: str) -> int:
    """An argparse `type=`: anything outside 1-65535 is a usage error (exit 2) naming the
    value, where the socket layer would take 99999 modulo 65536 or raise OverflowError."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, the way uvicorn binds it (IPv6 for a host with a colon,
    SO_REUSEADDR so a port in TIME_WAIT still counts as free). The API server hands it to
    uvicorn, so no other process can take the port between the check and the serving; the
    UI closes it at once and lets Gradio bind the same address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:  # OverflowError: a configured port past 65535
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        hint = "; choose another port with --port" if getattr(exc, "errno", None) == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot serve on {host}:{port}: {reason}{hint}") from None
    return sock
