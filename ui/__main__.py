"""`python -m ui`: serve the chat app on this machine."""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from rag.commands import add_debug_flag, run_command
from rag.errors import ConfigError
from rag.settings import Settings, get_settings


def parse_args(argv: Sequence[str] | None, defaults: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ui", description="Chat with your ingested documents in the browser."
    )
    parser.add_argument("--host", default=defaults.host, help=f"interface to listen on (default {defaults.host})")
    parser.add_argument("--port", type=int, default=defaults.port, help=f"port (default {defaults.port})")
    parser.add_argument("--collection", default=defaults.collection, help="collection to answer from")
    parser.add_argument("--data-dir", type=Path, default=defaults.data_dir, help="where stores live")
    parser.add_argument("--backend", choices=["gemrag", "file-search"], default=defaults.backend,
                        help=f"who retrieves: our retrieval, or Gemini File Search over the collection uploaded by "
                             f"python -m ingest --backend file-search (default {defaults.backend})")
    add_debug_flag(parser)
    return parser.parse_args(argv)


def ensure_free(host: str, port: int) -> None:
    """Fail in a second with a plain message, before the models and stores are loaded."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror}; choose another port with --port") from None


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: serve(argv), argv)


def serve(argv: Sequence[str] | None) -> int:
    """Serves until Ctrl+C, which is how a server is stopped: that ends it with 0, not 130."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv, get_settings())
    settings = get_settings().model_copy(
        update={"data_dir": args.data_dir, "collection": args.collection, "backend": args.backend}
    )
    try:
        ensure_free(args.host, args.port)
    except OSError as exc:
        raise ConfigError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    from ui.app import create_app, launch

    demo = create_app(settings)
    launch(demo, settings, args.host, args.port)
    print(f"gemrag UI on http://{args.host}:{args.port} (collection {settings.collection!r}); Ctrl+C stops it")
    with contextlib.suppress(KeyboardInterrupt):
        demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
