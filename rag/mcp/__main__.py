"""`python -m rag.mcp`: the MCP server on stdio (for desktop assistants and coding agents that
launch it), or `--http` on streamable HTTP at http://127.0.0.1:8765/mcp.

The HTTP transport has no authentication of its own, so it listens on loopback only; put
the API (python -m rag.server, with keys) in front for remote use."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from rag import runtime  # noqa: F401  (telemetry off before chromadb loads)
from rag.chain import Chain
from rag.commands import Parser, folder_path
from rag.errors import GemragError
from rag.mcp.tools import build_server
from rag.providers import get_generator
from rag.server.auth import is_loopback
from rag.server.ports import bind, port_number
from rag.settings import load_settings
from rag.stores import Stores


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m rag.mcp", description="Serve search and ask over MCP.")
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP: loopback only (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8765, help="HTTP port (default 8765)")
    parser.add_argument("--collection", default=None, help="default collection")
    parser.add_argument("--data-dir", type=folder_path, default=None, help="where local stores live")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # stdout carries the protocol on stdio
    if args.http and not is_loopback(args.host):
        print(f"error: refusing to serve MCP on {args.host}: its HTTP transport has no authentication; "
              "use 127.0.0.1, or the HTTP API with keys (python -m rag.server).", file=sys.stderr)
        return 2
    try:
        overrides = {k: v for k, v in (("collection", args.collection), ("data_dir", args.data_dir)) if v is not None}
        settings = load_settings(**overrides)
        # Checked before serving: an assistant launched from another folder read .gemrag there,
        # created it, and every call then failed with "no collection".
        stores = Stores(settings)
        stores.open(settings.collection)
        server = build_server(Chain(settings, get_generator(settings), stores=stores))
        if args.http:  # a busy port was a banner, then uvicorn's bind error and exit 3
            bind(args.host, args.port).close()
    except GemragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.http:
        print(f"gemrag MCP on http://{args.host}:{args.port}/mcp", file=sys.stderr, flush=True)
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
