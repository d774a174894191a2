"""`python -m ingest PATH...`: the command line over ingest.pipeline.

Errors a user can act on print as one message and a non-zero exit, never a traceback, and
never the API key.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from ingest.batchjobs import BatchRun, Origin, nothing_to_resume
from ingest.discover import Filters
from ingest.display import Every, details, headline, progress_shown, summary, upload_bar
from ingest.pipeline import LockWait, ingest_paths, may_exist, pending_batch, recorded_embedder
from ingest.vision import configured_reader
from rag.commands import Parser, add_debug_flag, folder_path, run_command
from rag.errors import ConfigError
from rag.filetypes import SUPPORTED
from rag.providers.base import Embedder, Generator
from rag.settings import Settings, load_settings
from rag.store import check_collection_name

EPILOG = f"""
Reads {", ".join(sorted(SUPPORTED))}. With GEMINI_API_KEY, images (files, and those in
PDFs of at least figure_min_pixels) are described by the Flash-Lite model and cited as
figures, and PDF pages without a text layer are transcribed; --dry-run estimates that cost.
Offline, such pages, and the printed words of image files (screenshots, diagrams), are
read by Tesseract when installed (apt-get install tesseract-ocr); else they are skipped
with the reason, as is an image with no words Tesseract reads with confidence (a photo).
Other files are skipped and listed, as are hidden entries (--include-hidden takes them),
symlinks leaving PATH or broken, links to a file or folder PATH reads anyway (stored under
its real name, once), FIFOs and devices; a folder that cannot be read is a failure. Each
file is stored under its path relative to the PATH that found it (a single file under its
name; bytes of a name that are not UTF-8, and control characters such as a newline, written
out as \\xNN or \\n). A file of the same name already ingested from another folder that
still has it is not replaced: it is listed as failed.

Re-running is cheap: a file whose size and mtime are unchanged is not even read, one whose
content hash is unchanged is not parsed or embedded again; a changed file's chunks are
replaced, and only its new chunks are embedded. A file refused for making more than
max_chunks_per_file chunks, or an image nothing here could read (a photo offline), is
listed again without being read, until it changes or what decided does (the limit, a key,
Tesseract or its settings).

--prune: files that were ingested from the same PATH before and no longer exist there
(deleted, moved away, or a link removed) lose their chunks, and so does a file that can no
longer be read (emptied, turned binary, over the size limit): without --prune its previous
version stays, and the run says so. A deleted PATH with --prune removes what was ingested
from it. Without --prune nothing is ever removed. Files that merely fall outside
--include/--exclude are not pruned.

--rebuild: drop the collection and its manifest and ingest from scratch (needed to
switch embedders, e.g. after setting GEMINI_API_KEY).

--batch (Gemini): new chunks are embedded by Batch API jobs at half the price, finished
within a day. The run submits the jobs (recorded in the manifest first, so nothing is ever
submitted twice), waits for them with a progress bar and stores the vectors; with
--no-wait it exits once they are submitted, and `python -m ingest --resume` (same
--collection and --data-dir; no PATH needed) collects them later, as does running the same
--batch command again. A job that fails or expires leaves its chunks to online embedding,
at the standard price (said in the output). --dry-run shows the cost both ways.

One run at a time writes a collection: a second is refused (exit 2), or with --wait waits
for the first to end.

Exit status: 0 all well; 1 some file failed (listed, the rest was ingested); 2 the run
was refused or stopped (quota, API key, mixed embedders; work done so far is kept);
3 an unexpected error. Killing a run is safe: run it again.
"""


def _path(text: str) -> Path:
    """A PATH argument. An empty one is refused: `Path("")` is the current folder, so
    `python -m ingest "$DOCS"` with DOCS unset ingested wherever the shell stood."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty PATH (an unset shell variable?); name a file or folder")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m ingest",
        description="Ingest documents into a collection, incrementally and crash-safely.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", type=_path,
                        help="files or folders (recursive); with --resume, default: those of the pending jobs")
    parser.add_argument("--collection", help="collection name (default: settings.collection, 'corpus')")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="only files whose stored path matches (repeatable; '*' also crosses '/')")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="skip files whose stored path matches (repeatable)")
    parser.add_argument("--include-hidden", action="store_true",
                        help="also read hidden files and folders (names starting with '.'); else listed as skipped")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be added, updated and removed, tokens and cost; write nothing")
    parser.add_argument("--prune", action="store_true",
                        help="remove the chunks of files gone from PATH (see below)")
    parser.add_argument("--rebuild", action="store_true", help="drop the collection and ingest from scratch")
    parser.add_argument("--batch", action="store_true",
                        help="embed new chunks by Gemini Batch API jobs (half price, up to a day; see below)")
    parser.add_argument("--resume", action="store_true",
                        help="collect and store the collection's pending batch jobs")
    parser.add_argument("--no-wait", action="store_true",
                        help="with --batch or --resume: do not wait for the jobs (collect them with --resume)")
    parser.add_argument("--wait", action="store_true",
                        help="if another ingest into the collection is running, wait for it to end, saying so "
                             "every 30 s (default: exit 2)")
    parser.add_argument("--data-dir", type=folder_path,
                        help="where the store and manifest live (default: GEMRAG_DATA_DIR or ./.gemrag)")
    parser.add_argument("--backend", choices=["gemrag", "file-search"],
                        help="file-search: also upload the collection's files to its Gemini File Search store, "
                             "only those the store lacks by content hash (default: settings.backend)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, nor progress lines in a log")
    add_debug_flag(parser)
    return parser


def _interrupted(argv: Sequence[str] | None) -> str:
    """What Ctrl-C leaves: batch jobs are named only where the run may have submitted some."""
    args = sys.argv[1:] if argv is None else argv
    jobs = " (and submitted batch jobs keep running)" if {"--batch", "--resume"} & set(args) else ""
    return f"interrupted: files completed so far are kept{jobs}; run the same command again."


def main(
    argv: Sequence[str] | None = None, embedder: Embedder | None = None, generator: Generator | None = None
) -> int:
    """`embedder` and `generator` (which reads images and scans) replace the ones the
    settings choose (the tests pass fakes)."""
    return run_command(
        lambda: _ingest(argv, embedder, generator), argv,
        interrupted=_interrupted(argv),
    )


def _ingest(argv: Sequence[str] | None, embedder: Embedder | None, generator: Generator | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.paths and not args.resume:
        parser.error("give at least one PATH (or --resume to collect pending batch jobs)")
    if args.no_wait and not (args.batch or args.resume):
        parser.error("--no-wait goes with --batch or --resume")
    if args.paths and not args.prune and not any(may_exist(Path(p)) for p in args.paths):
        # Nothing to read at all: a mistyped path, refused before a collection is opened. One
        # missing path of several is reported with the run's other failures; with --prune a
        # deleted folder is how its files are removed.
        links = all(Path(p).is_symlink() for p in args.paths)  # exists() is False for a loop too
        what = "a broken symlink or a symlink loop" if links else "no such file or folder"
        raise ConfigError(f"{what}: {', '.join(map(str, args.paths))}; nothing was ingested")
    out, err = Console(), Console(stderr=True)
    # Retry warnings from the embedder print above the progress bar, not through it.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=err)])
    settings = load_settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    if args.backend:
        settings = settings.model_copy(update={"backend": args.backend})
    if settings.backend == "file-search":
        # Imported here (and in `_upload`): the File Search backend loads google-genai (half a
        # second), which an offline run, above all one with nothing to do, never needs.
        from rag.filesearch import FileSearchStores

        FileSearchStores(settings)  # no key: one line and exit 2 before anything is ingested
    # Checked here, for a dry run too (it opens no collection), and "" is no name: it took the default.
    collection = check_collection_name(settings.collection if args.collection is None else args.collection)
    origin = _origin(args, settings, collection)
    if embedder is None:
        embedder = _embedder(settings, collection, args.rebuild)
    batch = BatchRun(origin, wait=not args.no_wait, resume=args.resume) if args.batch or args.resume else None
    with progress_shown(err, args.quiet) as on_progress:
        report = ingest_paths(
            [Path(p) for p in origin.paths],
            settings,
            embedder,
            collection=args.collection,
            filters=Filters(origin.include, origin.exclude, origin.include_hidden),
            prune=origin.prune,
            rebuild=args.rebuild,
            dry_run=args.dry_run,
            on_progress=on_progress,
            generator=generator or configured_reader(settings),
            batch=batch,
            wait=LockWait(None, None if args.quiet else _waiting(err, collection)) if args.wait else None,
        )
    out.print(headline(report), highlight=False, soft_wrap=True)
    out.print(summary(report))
    for line in details(report):
        out.print(line, highlight=False, soft_wrap=True)
    if settings.backend == "file-search" and not report.dry_run and not report.stopped:
        out.print(_upload(settings, report.collection, err, quiet=args.quiet), highlight=False, soft_wrap=True)
    return report.exit_code


def _waiting(err: Console, collection: str) -> Callable[[float], None]:
    """What `--wait` prints while another ingest holds the collection: a line at once, then
    every `LINE_EVERY_S`, as a run's progress lines."""
    every = Every()

    def say(waited: float) -> None:
        if every.due() is not None:
            err.print(f"waiting: another ingest into collection {collection!r} is running ({waited:.0f} s so far)",
                      markup=False, highlight=False, soft_wrap=True)

    return say


def _upload(settings: Settings, collection: str, err: Console, *, quiet: bool) -> str:
    """The collection's files to its File Search store, with a progress bar; the summary line."""
    from ingest.filesearch import upload_collection

    with upload_bar(err, err.is_terminal and not quiet) as on_upload:
        return upload_collection(settings, collection, on_progress=on_upload).summary()


def _origin(args: argparse.Namespace, settings: Settings, collection: str) -> Origin:
    """The paths and options to run with: the command line's, or for a bare --resume those
    the pending batch jobs were submitted with."""
    if args.paths:
        return Origin([str(p) for p in args.paths], args.include, args.exclude, args.include_hidden, args.prune)
    pending = pending_batch(settings, collection)
    if pending is None:
        raise nothing_to_resume(collection)
    return pending


def _embedder(settings: Settings, collection: str, rebuild: bool) -> Embedder:
    """A collection keeps the embedder that built it (a key set later does not change it);
    --rebuild starts over with the one the settings choose."""
    from rag.providers import Embedders, get_embedder

    recorded = None if rebuild else recorded_embedder(settings, collection)
    return Embedders(settings).get(recorded) if recorded else get_embedder(settings)
