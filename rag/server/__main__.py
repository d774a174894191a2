"""`python -m rag.server`: serve the HTTP API (and the UI at /ui) with uvicorn.
`python -m rag.server keygen NAME ROLE`: make an API key and the hashed line that configures it."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence

from rag import runtime  # noqa: F401  (telemetry off before chromadb and gradio load)
from rag.commands import Parser, folder_path
from rag.errors import GemragError
from rag.logs import configure as configure_logging
from rag.server.auth import ROLES, ApiKeys, is_loopback, new_key
from rag.server.ports import bind, port_number, url
from rag.server.streaming import Draining
from rag.settings import load_settings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m rag.server", description="Serve the gemrag HTTP API.")
    commands = parser.add_subparsers(dest="command")
    keygen = commands.add_parser("keygen", help="print a new API key and the line that configures it")
    keygen.add_argument("name", help="who the key is for; sessions and costs are kept per name")
    keygen.add_argument("role", choices=ROLES, help="ask < ingest < admin")
    keygen.add_argument("--collections", type=comma_list, default=[], metavar="NAME,...",
                        help="the only collections the key may use (default: all)")
    commands.add_parser("openapi", help="print the API's OpenAPI schema (rag/server/openapi.json is this)")
    parser.add_argument("--host", default=None, help="interface to listen on (default: settings.host, 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=None, help="port (default: settings.server_port, 8000)")
    parser.add_argument("--collection", default=None, help="default collection to answer from")
    parser.add_argument("--data-dir", type=folder_path, default=None, help="where local stores live")
    parser.add_argument("--no-mounts", action="store_true", help="serve the API only, without /ui")
    parser.add_argument("--backend", choices=["gemrag", "file-search"], default=None,
                        help="who retrieves: our retrieval, or Gemini File Search (default: settings.backend)")
    return parser.parse_args(argv)


def comma_list(value: str) -> list[str]:
    """One or more names: an empty list (an unset variable in `--collections "$TEAMS"`)
    would make a key that reaches every collection."""
    names = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not names:
        raise argparse.ArgumentTypeError("name at least one collection (leave the option out for all)")
    return names


def keygen(name: str, role: str, collections: Sequence[str]) -> int:
    key, line = new_key(name, role, collections)  # type: ignore[arg-type]  # argparse choices= checked the role
    reach = f"collections {', '.join(collections)}" if collections else "every collection"
    print(f"API key for {name!r} ({role}, {reach}); it is shown only now:\n  {key}")
    print(f"Configure the server with this line (hash only) in GEMRAG_API_KEYS or the api_keys_file:\n  {line}")
    return 0


def openapi() -> int:
    from rag.server.app import create_app

    app = create_app(load_settings(api_keys="", cors_origins=[]), mounts=[])
    print(json.dumps(app.openapi(), indent=1, sort_keys=True))
    return 0


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    chosen = (("collection", args.collection), ("data_dir", args.data_dir), ("backend", args.backend))
    overrides = {k: v for k, v in chosen if v is not None}
    settings = load_settings(**overrides)
    configure_logging(settings)
    host = args.host or settings.host
    port = args.port or settings.server_port
    keys = ApiKeys.load(settings.api_keys, settings.api_keys_file)
    if not keys.configured and not is_loopback(host):
        print(f"error: refusing to listen on {host} without API keys: anyone who can reach it could spend your "
              "Gemini quota. Configure keys (python -m rag.server keygen NAME ROLE) or use --host 127.0.0.1.",
              file=sys.stderr)
        return 2
    # Bound before the app loads its models, and served as is: a busy port ends here in a
    # second, and the banner below is only printed for a port that is ours.
    with bind(host, port) as sock:
        if not keys.configured:
            print("No API keys configured: serving loopback clients only, without authentication.")
        from rag.server.app import create_app

        app = create_app(settings, mounts=[] if args.no_mounts else None)
        mounted = ", ".join(f"/{name}" for name in app.state.mounted) or "none"
        print(f"gemrag API on {url(host, port)} (docs at /docs, mounted: {mounted}); Ctrl+C stops it", flush=True)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=settings.drain_s)
        server = Draining(config, app.state.services.drain, settings.drain_s)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is how a server stops: exit 0, as uvicorn.run does
            server.run(sockets=[sock])
    return 0 if server.started else 3  # not started: the app's startup failed, and uvicorn logged why


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        if args.command == "keygen":
            return keygen(args.name, args.role, args.collections)
        return openapi() if args.command == "openapi" else serve(args)
    except GemragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
