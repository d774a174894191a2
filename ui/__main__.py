"""`python -m ui`: serve the chat app on this machine."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from rag.errors import GemragError
from rag.settings import Settings, get_settings


def parse_args(argv: Sequence[str] | None, defaults: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ui", description="Chat with your ingested documents in the browser."
    )
    parser.add_argument("--host", default=defaults.host, help=f"interface to listen on (default {defaults.host})")
    parser.add_argument("--port", type=int, default=defaults.port, help=f"port (default {defaults.port})")
    parser.add_argument("--collection", default=defaults.collection, help="collection to answer from")
    parser.add_argument("--data-dir", type=Path, default=defaults.data_dir, help="where stores live")
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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = parse_args(argv, get_settings())
        settings = get_settings().model_copy(update={"data_dir": args.data_dir, "collection": args.collection})
        ensure_free(args.host, args.port)
        from ui.app import create_app, launch

        demo = create_app(settings)
        launch(demo, settings, args.host, args.port)
        print(f"gemrag UI on http://{args.host}:{args.port} (collection {settings.collection!r}); Ctrl+C stops it")
        demo.block_thread()
    except GemragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
