"""`python -m ui`: serve the chat app on this machine."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from rag.commands import Parser, add_debug_flag, folder_path, run_command
from rag.server.ports import bind, port_number, url
from rag.settings import Settings, get_settings


def parse_args(argv: Sequence[str] | None, defaults: Settings) -> argparse.Namespace:
    parser = Parser(
        prog="python -m ui", description="Chat with your ingested documents in the browser."
    )
    parser.add_argument("--host", default=defaults.host, help=f"interface to listen on (default {defaults.host})")
    parser.add_argument("--port", type=port_number, default=defaults.port, help=f"port (default {defaults.port})")
    parser.add_argument("--collection", default=defaults.collection, help="collection to answer from")
    parser.add_argument("--data-dir", type=folder_path, default=defaults.data_dir, help="where stores live")
    parser.add_argument("--backend", choices=["gemrag", "file-search"], default=defaults.backend,
                        help=f"who retrieves: our retrieval, or Gemini File Search over the collection uploaded by "
                             f"python -m ingest --backend file-search (default {defaults.backend})")
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: serve(argv), argv)


def serve(argv: Sequence[str] | None) -> int:
    """Serves until Ctrl+C, which is how a server is stopped: that ends it with 0, not 130."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv, get_settings())
    settings = get_settings().model_copy(
        update={"data_dir": args.data_dir, "collection": args.collection, "backend": args.backend}
    )
    bind(args.host, args.port).close()  # a busy port fails now, before the models load; Gradio binds it itself
    from ui.app import create_app, launch

    demo = create_app(settings)
    launch(demo, settings, args.host, args.port)
    print(f"gemrag UI on {url(args.host, args.port)} (collection {settings.collection!r}); Ctrl+C stops it")
    with contextlib.suppress(KeyboardInterrupt):
        demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
