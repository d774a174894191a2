"""`python -m rag.eval TESTSET`: measure retrieval and answers, write the reports, guard
against regressions.

Errors a user can act on print as one line and a non-zero exit, never a traceback, and
never the API key.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ingest.display import Every, progress_shown
from ingest.filesearch import upload_collection
from rag.answer import MAX_K
from rag.commands import Parser, add_debug_flag, folder_path, run_command
from rag.eval import feedback, html
from rag.eval.beir import is_beir_dir, load_beir, materialise
from rag.eval.checkpoint import FILENAME as CHECKPOINT
from rag.eval.checkpoint import Checkpoint
from rag.eval.configs import parse_compare
from rag.eval.corpus import ensure_ingested, open_collection
from rag.eval.gate import GateResult, compare
from rag.eval.results import RunReport
from rag.eval.runner import Evaluator, Plan
from rag.eval.terminal import print_report
from rag.eval.testset import CaseError, TestSet, load_testset
from rag.filesearch import FileSearchStores
from rag.providers import Embedders, get_embedder, get_generator
from rag.providers.base import Embedder, Generator
from rag.settings import Settings, load_settings
from rag.store import Store, collection_name

WIDE = 160
EPILOG = """
TESTSET is a JSONL test set (format: rag/eval/testset.py) or a BEIR directory (corpus.jsonl,
queries.jsonl, qrels/test.tsv), which is ingested into its own collection beir-<name> and
scored on retrieval only, comparable with published BEIR tables.

A test set's corpus (--corpus, default: settings.eval_corpus, ./corpus) is ingested into
the collection eval-<folder name> first, incrementally; --collection NAME uses an existing
collection as it is instead. With --compare backend=gemrag,file-search the collection's
files are also uploaded to its Gemini File Search store (only those it lacks, by content
hash), and both answer every case: quality, citation checks, latency and cost per right
answer side by side (File Search has no retrieval-only call: retrieval rows are ours).

Writes OUT/report.json, OUT/report.html and a table here. Each finished case is appended to
OUT/checkpoint.jsonl: run the same command again after an interruption and finished cases
are skipped (--fresh starts over).

`python -m rag.eval feedback [--collection C] [--out FILE]` prints the answers rated in the
UI as test cases instead (see rag/eval/feedback.py).

Exit status: 0 done; 1 a regression beyond --max-drop against --baseline; 2 bad input or a
refused run (nothing valid in the test set, missing corpus, quota); 3 an unexpected error;
130 interrupted.
"""


@dataclass
class Outputs:
    json: Path
    html: Path


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m rag.eval",
        description="Measure retrieval and answer quality on a test set.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("testset", type=Path, help="a JSONL test set or a BEIR directory")
    parser.add_argument("--corpus", type=Path, help=f"the documents the test set asks about (default: "
                        f"{settings.eval_corpus})")
    parser.add_argument("--collection", help="evaluate an existing collection as it is, without ingesting")
    parser.add_argument("--out", type=Path, default=settings.eval_out_dir,
                        help=f"where the reports go (default: {settings.eval_out_dir})")
    parser.add_argument("--compare", action="append", default=[], metavar="AXIS=V1,V2",
                        help="run every combination side by side; axes: k, mode (vector, bm25, hybrid), "
                             "mmr (on, off), rerank (none, local, gemini), backend (gemrag, file-search: "
                             "the corpus uploaded to a Gemini File Search store); repeatable")
    parser.add_argument("--baseline", type=Path, help="an earlier run's report.json to compare with")
    parser.add_argument("--max-drop", type=_share, default=settings.eval_max_drop,
                        help=f"absolute drop on a headline metric that fails the run "
                             f"(default: {settings.eval_max_drop})")
    parser.add_argument("--workers", type=_positive, default=settings.eval_workers,
                        help=f"cases in flight at once (default: {settings.eval_workers})")
    parser.add_argument("--retrieval-only", action="store_true", help="skip answering and judging")
    parser.add_argument("--fresh", action="store_true", help="ignore the checkpoint of an earlier run")
    parser.add_argument("--data-dir", type=folder_path,
                        help="where stores live (default: GEMRAG_DATA_DIR or ./.gemrag)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars, nor progress lines in a log")
    add_debug_flag(parser)
    return parser


def _share(text: str) -> float:
    """--max-drop: an absolute drop from 0 to 1 (-1 flagged every metric as a regression)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def _positive(text: str) -> int:
    """--workers: 0 was quietly taken as 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def main(
    argv: Sequence[str] | None = None, embedder: Embedder | None = None, generator: Generator | None = None
) -> int:
    """`embedder` and `generator` replace the ones the settings choose (the tests pass fakes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["feedback"]:
        return feedback.main(argv[1:])
    return run_command(
        lambda: _evaluate(argv, embedder, generator), argv,
        interrupted="interrupted: finished cases are kept; run the same command again to continue.",
        refused=(CaseError,),
    )


def _evaluate(argv: Sequence[str], embedder: Embedder | None, generator: Generator | None) -> int:
    # Piped to a file or CI log, rich would wrap the tables at 80 columns.
    out, err = Console(width=None if sys.stdout.isatty() else WIDE), Console(stderr=True, soft_wrap=True)
    settings = load_settings()
    args = build_parser(settings).parse_args(argv)
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    check_outputs(args.out, args.baseline)
    embedder = embedder or get_embedder(settings)
    generator = generator or get_generator(settings)
    report, gate = evaluate(args, settings, embedder, generator, err, quiet=args.quiet)
    outputs = write_outputs(report, gate, args.out)
    print_report(report, out, gate)
    out.print(f"wrote {outputs.json} and {outputs.html}", highlight=False)
    if report.problems:  # listed with the tables on stdout; a CI log reading stderr saw nothing of them
        err.print(f"warning: {len(report.problems):,} skipped (test-set lines or corpus files, listed above and in "
                  f"{outputs.html}): the figures leave them out", markup=False, highlight=False)
    if gate is not None and not gate.differences:  # a gate that compared nothing passed: CI learnt nothing
        err.print(f"--baseline {args.baseline} measured none of this run's headline metrics (its "
                  f"configurations differ: compare with a run of the same --compare options)", style="red",
                  markup=False, highlight=False)
        return 2
    if gate is not None and not gate.passed:
        err.print(f"regression: {len(gate.regressions)} headline metric(s) dropped by more than "
                  f"{gate.max_drop:g} against {args.baseline}", style="red", markup=False, highlight=False)
        return 1
    return 0


def check_outputs(out: Path, baseline: Path | None) -> None:
    """Before anything runs: `--out` must be a folder this run may write, and not where the
    baseline lies, which the run would overwrite (the next run then compared with itself and
    passed)."""
    if out.exists() and not out.is_dir():
        raise CaseError(f"--out {out} is a file: name a folder for the reports")
    if baseline is not None and baseline.resolve() == (out / "report.json").resolve():
        raise CaseError(f"--baseline {baseline} is the report this run writes (--out {out}): copy it aside, or "
                        "write this run elsewhere")


def evaluate(
    args: argparse.Namespace,
    settings: Settings,
    embedder: Embedder,
    generator: Generator,
    console: Console,
    *,
    quiet: bool,
) -> tuple[RunReport, GateResult | None]:
    baseline = load_baseline(args.baseline) if args.baseline else None
    configs = parse_compare(args.compare, settings)
    beir = is_beir_dir(args.testset)
    answers = not (beir or args.retrieval_only)
    if answers and (too_many := sorted({c.top_k for c in configs if c.top_k > MAX_K})):
        # retrieval alone may look deeper; an answer's prompt takes at most MAX_K passages, and
        # every case would fail on it one by one
        raise CaseError(f"--compare k={too_many[0]}: answers take at most {MAX_K} passages (add --retrieval-only "
                        "to measure retrieval that deep)")
    file_search = any(c.backend == "file-search" for c in configs)
    if file_search:
        FileSearchStores(settings)  # no key: one line and exit 2 before anything is ingested
    testset, store, problems = prepare(args, settings, embedder, console, quiet=quiet)
    notes = [*unheld_labels(testset, store), *([upload_collection(settings, store.name).summary()] if file_search
                                               else [])]
    if args.fresh:
        (args.out / CHECKPOINT).unlink(missing_ok=True)
    evaluator = Evaluator(settings, generator, store, Checkpoint(args.out), Embedders(settings, embedder),
                          per_file=beir)
    plan = Plan(testset, configs, answers=answers, workers=args.workers)
    with case_progress(console, quiet, plan) as advance:
        report = evaluator.run(plan, advance)
    report.problems.extend(problems)
    report.notes.extend(notes)
    if baseline is not None:
        report.notes.extend(other_cases(report, baseline))
    return report, compare(report, baseline, args.max_drop) if baseline else None


def other_cases(report: RunReport, baseline: RunReport) -> list[str]:
    """A warning when the baseline was measured on other cases: its figures are then no
    measure of a change (a 3-case set passed against a 14-case baseline of another set)."""
    ours = {c.case_id for c in report.retrieval_cases} | {c.case_id for c in report.answer_cases}
    theirs = {c.case_id for c in baseline.retrieval_cases} | {c.case_id for c in baseline.answer_cases}
    if ours == theirs:
        return []
    return [f"warning: the baseline was measured on other cases ({len(ours & theirs)} of this run's {len(ours)} "
            f"in common, of its {len(theirs)}): its differences say little about a change"]


def prepare(
    args: argparse.Namespace, settings: Settings, embedder: Embedder, console: Console, *, quiet: bool
) -> tuple[TestSet, Store, list[str]]:
    """The test set and the collection it is asked against, ingested if need be."""
    if is_beir_dir(args.testset):
        beir = load_beir(args.testset)
        root = materialise(beir, settings.path("beir", beir.name, "docs"))
        name = args.collection or collection_name("beir", beir.name)
        with progress_shown(console, quiet) as on_progress:
            store, problems = ensure_ingested(settings, embedder, root, name, on_progress)
        return has_cases(beir.testset, args.testset), store, problems
    testset = has_cases(load_testset(args.testset), args.testset)  # before an ingest that may take long
    if args.collection and not args.corpus:
        return testset, open_collection(settings, args.collection), []
    root = args.corpus or settings.eval_corpus
    name = args.collection or collection_name("eval", root.resolve().name)
    with progress_shown(console, quiet) as on_progress:
        store, problems = ensure_ingested(settings, embedder, root, name, on_progress)
    return testset, store, problems


def has_cases(testset: TestSet, path: Path) -> TestSet:
    if not testset.cases:
        reasons = "; ".join(str(p) for p in testset.problems[:5]) or "the file has no cases"
        raise CaseError(f"{path} has no valid case: {reasons}")
    return testset


SHOWN_LABELS = 10  # unheld labels listed one by one; the rest counted


def unheld_labels(testset: TestSet, store: Store) -> list[str]:
    """The cases' relevant files and pages the collection holds no chunk of. A label with a
    typo, or naming a file renamed since the test set was written ("py/csv.html" after the
    folder became "python/"), scored 0 on retrieval with nothing saying why."""
    pages: dict[str, set[int | None]] = {}
    for meta in store.metadatas():
        page = meta.get("page")
        pages.setdefault(str(meta["source"]), set()).add(page if isinstance(page, int) else None)
    unheld = [
        f"case {case.id}: collection {store.name!r} holds no file {r.source!r}" if r.source not in pages
        else f"case {case.id}: collection {store.name!r} holds no text of page {r.page} of {r.source!r}"
        for case in testset.cases for r in case.relevant
        if r.source is not None and (r.source not in pages or (r.page is not None and r.page not in pages[r.source]))
    ]
    if len(unheld) > SHOWN_LABELS:
        unheld[SHOWN_LABELS:] = [f"... and {len(unheld) - SHOWN_LABELS} more such labels"]
    return [f"warning: {line}; that label can never be retrieved" for line in unheld]


def load_baseline(path: Path) -> RunReport:
    try:
        return RunReport.load(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CaseError(f"cannot read baseline {path}: not a report.json of this tool ({error})") from error


@contextmanager
def case_progress(console: Console, quiet: bool, plan: Plan) -> Iterator[Callable[[int], None]]:
    """A bar on a terminal; in a log, a line now and then (`Every`), as ingest prints: an
    evaluation of a hundred cases printed nothing for minutes."""
    if quiet:
        yield lambda _: None
        return
    if not console.is_terminal:
        every, done = Every(), 0

        def line(n: int) -> None:
            nonlocal done
            done += n
            if (elapsed := every.due()) is not None:
                console.print(f"progress {elapsed:.0f} s: {done:,} retrieval and answer steps done for "
                              f"{len(plan.testset.cases):,} cases", markup=False, highlight=False)

        yield line
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bars:
        task = bars.add_task("cases", total=None)
        yield lambda n: bars.advance(task, n)


def write_outputs(report: RunReport, gate: GateResult | None, out: Path) -> Outputs:
    out.mkdir(parents=True, exist_ok=True)
    json_path = report.save(out / "report.json")
    html_path = out / "report.html"
    html_path.write_text(html.render(report, gate), encoding="utf-8")
    return Outputs(json_path, html_path)
