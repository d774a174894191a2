"""Write one of our test sets in BEIR layout, so the BEIR path of `python -m rag.eval` can be
measured offline on documents we have (public BEIR sets are a download away, and this
machine has no network):

    python scripts/beir_export.py corpus/eval/testset.jsonl corpus/ OUT_DIR
    python -m rag.eval OUT_DIR --compare rerank=none,local

Each PDF page and each other file becomes one BEIR document (the unit our test sets label:
a file, or a page of a PDF), its text as ingest extracts it; each answerable case becomes a
query whose qrels are the documents of its relevant entries (every page of a PDF named
without a page). Unanswerable cases have no qrels and follow-ups no conversation in BEIR:
both are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ingest.loaders import LoadError, load, page_texts
from rag.eval.testset import load_testset
from rag.filetypes import SUPPORTED


def documents(root: Path) -> Iterator[tuple[str, str, str, int | None]]:
    """(id, title, text, page) for every document under `root`: one per PDF page, else one per file."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED):
        source = path.relative_to(root).as_posix()
        try:
            sections = load(path.read_bytes(), SUPPORTED[path.suffix.lower()])
        except LoadError as error:
            print(f"skipped {source}: {error}", file=sys.stderr)
            continue
        if path.suffix.lower() == ".pdf":
            for page, text in page_texts(sections).items():
                yield f"{source}#p{page}", f"{source} page {page}", text, page
        else:
            yield source, source, "\n\n".join(s.text for s in sections), None


def export(testset: Path, root: Path, out: Path) -> tuple[int, int]:
    """Writes corpus.jsonl, queries.jsonl and qrels/test.tsv; returns (documents, queries)."""
    docs = list(documents(root))
    pages: dict[str, list[str]] = {}
    for doc_id, _, _, page in docs:
        pages.setdefault(doc_id.split("#p")[0] if page is not None else doc_id, []).append(doc_id)
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for doc_id, title, text, _ in docs:
            corpus.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    queries = 0
    with (out / "queries.jsonl").open("w", encoding="utf-8") as q, (out / "qrels" / "test.tsv").open("w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for case in load_testset(testset).cases:
            judged = {
                doc_id: entry.grade
                for entry in case.relevant
                if entry.source is not None
                for doc_id in ([f"{entry.source}#p{entry.page}"] if entry.page else pages.get(entry.source, []))
            }
            if case.unanswerable or case.history or not judged:  # a follow-up needs its conversation
                continue
            q.write(json.dumps({"_id": case.id, "text": case.question}) + "\n")
            qrels.writelines(f"{case.id}\t{doc_id}\t{grade:g}\n" for doc_id, grade in judged.items())
            queries += 1
    return len(docs), queries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("testset", type=Path)
    parser.add_argument("corpus", type=Path, help="the folder the test set's sources are relative to")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    count, queries = export(args.testset, args.corpus, args.out)
    print(f"wrote {count} documents and {queries} queries to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
