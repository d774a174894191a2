"""The port a server listens on, checked for both servers (`python -m rag.server` and
`python -m ui`): a port number is checked when the arguments are read, and the address is
bound before anything slow loads, so a typo or a busy port ends in one line and exit 2, not
in a banner followed by uvicorn's log line (exit 3) or an OverflowError from deep in Gradio.

It lives here rather than in `ui/` because `rag/` may not import `ui/`; `ui/` imports it.
"""

from __future__ import annotations

import argparse
import errno
import os
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
    """A socket bound to host:port as asyncio's server binds one: the host's first address
    (`localhost` resolved, "[::1]" as a URL writes it), SO_REUSEADDR on POSIX only (a port
    in TIME_WAIT counts as free; on Windows it would share a port another process listens
    on) and IPv6 alone on an IPv6 address ("::" is not also 0.0.0.0). The API server hands
    it to uvicorn, so no other process can take the port between the check and the serving;
    the UI closes it at once and lets Gradio bind the same address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, OverflowError) as exc:  # an unknown host; OverflowError: a configured port past 65535
        raise ConfigError(f"cannot serve on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    sock = socket.socket(family, kind, proto)
    if os.name == "posix":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = "; choose another port with --port" if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def url(host: str, port: int) -> str:
    """The address a browser or curl takes: an IPv6 host in brackets ("http://[::1]:8000")."""
    bare = host.strip("[]")
    return f"http://[{bare}]:{port}" if ":" in bare else f"http://{bare}:{port}"
