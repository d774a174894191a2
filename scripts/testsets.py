"""Test sets over real documents nobody on the team wrote: install them, check every label,
ingest them, evaluate, and choose the fusion weight by cross-validation.

    python scripts/testsets.py install [NAME...]    # apt-get the package if need be, copy the chosen files
    python scripts/testsets.py verify [NAME...]     # every quoted piece of evidence is in its file (and page)
    python scripts/testsets.py eval NAME [rag.eval options...]
    python scripts/testsets.py crossval [--alphas 0.1,0.2,...] [--out DIR]

A set is `corpus/eval/NAME.jsonl` (cases) with `corpus/eval/NAME.sources.json` (the Debian
package, where it installs the documents, and the files chosen from it, with why). The files
are copied into `DATA_DIR/testsets/NAME/` and that folder is ingested into `eval-NAME`, so a
set never touches the user's collections. `sample` is the sample corpus (`corpus/`), whose
test set is `corpus/eval/testset.jsonl`.

Why a script and not `python -m rag.eval` options: installing a Debian package is a
machine-setup step, not something the product should do on a user's behalf.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.chain import Chain
    from rag.eval.testset import TestCase
    from rag.providers.offline import OfflineProvider
    from rag.store import Store
    from rag.types import Passage

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT / "corpus" / "eval"
SAMPLE = "sample"
DEFAULT_ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CV_METRIC = "ndcg10"


@dataclass(frozen=True)
class DocSet:
    """One test set and the documents it asks about."""

    name: str
    testset: Path
    package: str | None = None  # the Debian package that ships the documents
    installed_root: Path | None = None  # where the package puts them
    files: tuple[str, ...] = ()  # the chosen files, relative to installed_root

    def corpus(self, data_dir: Path) -> Path:
        """The folder that is ingested: the sample corpus itself, or the copy of the chosen files."""
        return ROOT / "corpus" if self.installed_root is None else data_dir / "testsets" / self.name


def doc_sets() -> dict[str, DocSet]:
    sets = {SAMPLE: DocSet(SAMPLE, EVAL_DIR / "testset.jsonl")}
    for spec in sorted(EVAL_DIR.glob("*.sources.json")):
        raw = json.loads(spec.read_text(encoding="utf-8"))
        name = spec.name.removesuffix(".sources.json")
        sets[name] = DocSet(name, EVAL_DIR / f"{name}.jsonl", raw["package"], Path(raw["root"]), tuple(raw["files"]))
    return sets


def pick(names: Sequence[str]) -> list[DocSet]:
    sets = doc_sets()
    unknown = [n for n in names if n not in sets]
    if unknown:
        raise SystemExit(f"unknown test set(s) {', '.join(unknown)}; known: {', '.join(sets)}")
    return [sets[n] for n in names] if names else list(sets.values())


def packaged() -> list[str]:
    """The sets over documents from a Debian package (the sample corpus is checked by tests/test_sample_corpus.py)."""
    return [name for name, doc_set in doc_sets().items() if doc_set.installed_root is not None]


def data_dir() -> Path:
    return Path(os.environ.get("GEMRAG_DATA_DIR", ".gemrag"))


@dataclass(frozen=True)
class Retrieved:
    """One case as the offline answerer meets it: the question after the follow-up rewrite
    and the passages the default retrieval shows for it (and, as the chain tells the
    answerer, the key terms they miss that their documents hold,
    `rag.keyterms.mentioned_elsewhere`, and the question's words no document holds,
    `AnswerTask.unheard_of`)."""

    doc_set: DocSet
    case: TestCase
    question: str
    shown: list[Passage]
    mentioned_elsewhere: frozenset[str]
    unheard_of: frozenset[str]
    provider: OfflineProvider
    chain: Chain
    store: Store


def retrieved_cases(
    names: Sequence[str],
    variant: Callable[[str], str | None] | None = None,
    history: Callable[[TestCase, Sequence[TestCase]], Sequence[str]] | None = None,
) -> Iterator[Retrieved]:
    """Every case of the sets through the default retrieval (the follow-up rewrite, hybrid
    search, the second ranking stage, k = top_k), offline, against the collection `eval NAME`
    built (same GEMRAG_DATA_DIR): what the study scripts (refusal_fit, answer_fit,
    typo_check, chat_check) read. `variant` asks another question in the case's place (None
    skips the case): typo_check misspells a name the question asks about. `history` gives
    the questions asked before it (from the case and all the set's cases; default: the
    case's own): chat_check asks a question after another one."""
    from rag.answer import AskOptions
    from rag.chain import Chain, passages
    from rag.eval.testset import load_testset
    from rag.keyterms import mentioned_elsewhere, plain_words
    from rag.providers.offline import OfflineProvider
    from rag.settings import load_settings
    from rag.store import collection_name
    from rag.stores import Stores
    from rag.types import Message

    settings = load_settings().model_copy(update={"data_dir": data_dir(), "answer_cache": False})
    provider = OfflineProvider()
    chain = Chain(settings, provider)
    for doc_set in pick(names):
        store = Stores(settings).get(collection_name("eval", doc_set.corpus(data_dir()).resolve().name))
        cases = load_testset(doc_set.testset).cases
        for case in cases:
            asked = case.question if variant is None else variant(case.question)
            if asked is None:
                continue
            before = case.history if history is None else history(case, cases)
            question = chain.rewrite(asked, [Message("user", q) for q in before]).question
            shown = passages(chain.retrieve(store, question, AskOptions(collection=store.name)).hits)
            misspelt = partial(chain.retriever.misspelt_in, store)
            elsewhere = mentioned_elsewhere(question, shown, store.mentions, misspelt)
            unheard = chain.retriever.unheard_of(store, plain_words(question))
            yield Retrieved(doc_set, case, question, shown, elsewhere, unheard, provider, chain, store)


# --- install -------------------------------------------------------------------------------


def install(doc_set: DocSet) -> Path:
    """The set's corpus folder, holding exactly the chosen files (the package installed first
    when its files are missing)."""
    target = doc_set.corpus(data_dir())
    if doc_set.installed_root is None:
        return target
    assert doc_set.package is not None
    missing = [f for f in doc_set.files if not (doc_set.installed_root / f).is_file()]
    if missing:
        apt_install(doc_set.package, missing[0])
    for name in doc_set.files:
        source, copy = doc_set.installed_root / name, target / name
        if not (copy.is_file() and filecmp.cmp(source, copy, shallow=False)):
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
    chosen = set(doc_set.files)
    for stale in [p for p in target.rglob("*") if p.is_file() and p.relative_to(target).as_posix() not in chosen]:
        stale.unlink()  # a file dropped from the selection must not stay in the corpus
    return target


def apt_install(package: str, missing: str) -> None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SystemExit(f"{missing} is missing: install the Debian package {package} "
                         f"(as root: apt-get update && apt-get install -y {package})")
    print(f"installing {package} (apt-get) ...", file=sys.stderr)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install_command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    for command in (["apt-get", "update", "-qq"], install_command):
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)


# --- verify --------------------------------------------------------------------------------


@cache
def document_text(path: Path) -> tuple[str, ...]:
    """The text ingest indexes, normalised for matching: one entry per PDF page, or one for
    the whole file."""
    from ingest.loaders import load, page_texts

    kind = "pdf" if path.suffix == ".pdf" else "html" if path.suffix == ".html" else "markdown"
    sections = load(path.read_bytes(), kind)
    if kind != "pdf":
        return (normalise(" ".join(s.text for s in sections)),)
    texts = page_texts(sections)
    return tuple(normalise(texts.get(page, "")) for page in range(1, max(texts) + 1))


def normalise(text: str) -> str:
    """Case, whitespace, typographic quotes and PDF hyphenation at line ends do not count."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"-\s*\n\s*", "-", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def verify(doc_set: DocSet) -> list[str]:
    """Why each case's labels cannot be trusted, if any: an evidence quote that is not in
    the file or page it names, or a relevant file outside the chosen documents."""
    from rag.eval.testset import load_testset

    testset = load_testset(doc_set.testset)
    problems = [f"{doc_set.testset.name}: {p}" for p in testset.problems]
    corpus = doc_set.corpus(data_dir())
    chosen = set(doc_set.files) if doc_set.files else None
    for case in testset.cases:
        where = f"{doc_set.name} {case.id}"
        for rel in case.relevant:
            if rel.source and chosen is not None and rel.source not in chosen:
                problems.append(f"{where}: relevant {rel.source} is not among the chosen files")
        if not case.unanswerable and not case.evidence:
            problems.append(f"{where}: no evidence quoted")
        for item in case.evidence:
            page, source = item.page, item.source
            if not any(r.source == source and (r.page is None or r.page == page) for r in case.relevant):
                problems.append(f"{where}: evidence from {source} p.{page} is not a relevant source")
            pages = document_text(corpus / source)
            text = pages[page - 1] if page else " ".join(pages)
            if normalise(item.quote) not in text:
                problems.append(f"{where}: {item.quote!r} not found in {source}{f' page {page}' if page else ''}")
    return problems


# --- evaluate ------------------------------------------------------------------------------


def evaluate(doc_set: DocSet, options: Sequence[str], out: Path | None = None) -> int:
    from rag.eval.cli import main as eval_main

    corpus = install(doc_set)
    out = out or Path("eval-out") / doc_set.name
    return eval_main([str(doc_set.testset), "--corpus", str(corpus), "--out", str(out), *options])


@dataclass(frozen=True)
class Fusion:
    """One fusion setting tried in cross-validation."""

    fusion: str
    alpha: float = 0.0

    @property
    def label(self) -> str:
        return "rrf" if self.fusion == "rrf" else f"convex {self.alpha:.1f}"


Scores = dict[str, dict[Fusion, dict[str, float]]]  # set name -> fusion setting -> metric -> value


def crossval(sets: list[DocSet], alphas: Sequence[float], out: Path, options: Sequence[str]) -> str:
    """Score every fusion setting on every set (retrieval only, hybrid), then for each set
    choose the weight on the others and report it on that one. Done for the fused order alone
    and, when the settings name a second ranking stage, for the order after it (the default
    pipeline). Returns Markdown tables."""
    from rag.settings import load_settings

    stages = list(dict.fromkeys(["none", load_settings().rerank]))
    settings = [Fusion("rrf"), *(Fusion("convex", a) for a in alphas)]
    scores: dict[str, Scores] = {stage: {} for stage in stages}
    for doc_set in sets:
        for setting in settings:
            run_out = out / doc_set.name / setting.label.replace(" ", "-")
            with fusion_env(setting):
                code = evaluate(doc_set, ["--retrieval-only", "--fresh", "--quiet", "--compare", "mode=hybrid",
                                          *options], run_out)
            if code not in (0, 1):
                raise SystemExit(f"evaluation of {doc_set.name} with {setting.label} failed (exit {code})")
            rows = {r["variant"]: r for r in json.loads((run_out / "report.json").read_text(encoding="utf-8"))
                    ["retrieval"]}
            for stage in stages:
                row = next(r for label, r in rows.items() if label.startswith(hybrid_label(stage)))
                scores[stage].setdefault(doc_set.name, {})[setting] = {m: row[m] for m in
                                                                       ("hit", "recall", "mrr", "ndcg10")}
    convex = [s for s in settings if s.fusion == "convex"]
    report = "\n\n".join(f"#### Hybrid, second ranking stage: {stage}\n\n{markdown_scores(scores[stage], settings)}"
                          f"\n\n{markdown_crossval(scores[stage], convex)}" for stage in stages)
    (out / "crossval.md").write_text(report + "\n", encoding="utf-8")
    return report


def hybrid_label(rerank: str) -> str:
    """How rag.eval names the hybrid row of a second stage (without MMR): 'hybrid k=6',
    'hybrid+local k=6'."""
    return "hybrid k=" if rerank == "none" else f"hybrid+{rerank} k="


@contextmanager
def fusion_env(setting: Fusion) -> Iterator[None]:
    """The settings override (GEMRAG_FUSION, GEMRAG_FUSION_ALPHA) for one run, restored after it."""
    keys = {"GEMRAG_FUSION": setting.fusion, "GEMRAG_FUSION_ALPHA": str(setting.alpha or 0.5)}
    before = {key: os.environ.get(key) for key in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def markdown_scores(scores: Scores, settings: list[Fusion]) -> str:
    names = list(scores)
    lines = ["| fusion | " + " | ".join(f"{n} nDCG@10 / MRR / hit@k" for n in names) + " | mean nDCG@10 |",
             "|---|" + "---|" * (len(names) + 1)]
    for s in settings:
        cells = [f"{scores[n][s]['ndcg10']:.3f} / {scores[n][s]['mrr']:.3f} / {scores[n][s]['hit']:.3f}"
                 for n in names]
        mean = sum(scores[n][s]["ndcg10"] for n in names) / len(names)
        lines.append(f"| {s.label} | " + " | ".join(cells) + f" | {mean:.3f} |")
    return "\n".join(lines)


def markdown_crossval(scores: Scores, convex: list[Fusion]) -> str:
    """Leave one set out: the weight with the best mean nDCG@10 on the other sets, scored on it."""
    lines = ["| held-out set | weight chosen on the others | its nDCG@10 there | default 0.5 there | rrf there |",
             "|---|---|---|---|---|"]
    for held in scores:
        others = [n for n in scores if n != held]
        best = max(convex, key=lambda s: (sum(scores[n][s][CV_METRIC] for n in others), -abs(s.alpha - 0.5)))
        default = next((s for s in convex if abs(s.alpha - 0.5) < 1e-9), None)
        rrf = next(s for s in scores[held] if s.fusion == "rrf")
        default_cell = f"{scores[held][default][CV_METRIC]:.3f}" if default else "-"
        lines.append(f"| {held} | {best.alpha:.1f} | {scores[held][best][CV_METRIC]:.3f} | {default_cell} | "
                     f"{scores[held][rrf][CV_METRIC]:.3f} |")
    overall = max(convex, key=lambda s: (sum(scores[n][s][CV_METRIC] for n in scores), -abs(s.alpha - 0.5)))
    lines.append(f"\nChosen on all sets (mean nDCG@10): convex {overall.alpha:.1f}")
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/testsets.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "verify"):
        commands.add_parser(name).add_argument("names", nargs="*",
                                               help=f"test sets (default: {', '.join(packaged())})")
    run = commands.add_parser("eval", help="python -m rag.eval on one set; further options go to it")
    run.add_argument("name")
    cv = commands.add_parser("crossval", help="fusion settings on every set, weight chosen by leave-one-set-out")
    cv.add_argument("names", nargs="*")
    cv.add_argument("--alphas", default=",".join(map(str, DEFAULT_ALPHAS)))
    cv.add_argument("--out", type=Path, default=Path("eval-out") / "crossval")
    args, rest = parser.parse_known_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.command == "install":
        for doc_set in pick(args.names or packaged()):
            print(f"{doc_set.name}: {install(doc_set)}")
        return 0
    if args.command == "verify":
        problems = [p for doc_set in pick(args.names or packaged()) for p in verify_installed(doc_set)]
        print("\n".join(problems) or "every label checked against its document")
        return 1 if problems else 0
    if args.command == "eval":
        return evaluate(pick([args.name])[0], rest)
    print(crossval(pick(args.names), [float(a) for a in args.alphas.split(",")], args.out, rest))
    return 0


def verify_installed(doc_set: DocSet) -> list[str]:
    if doc_set.installed_root is None:
        raise SystemExit(f"{doc_set.name}: its labels are checked by tests/test_sample_corpus.py")
    install(doc_set)
    return verify(doc_set)


if __name__ == "__main__":
    sys.exit(main())
