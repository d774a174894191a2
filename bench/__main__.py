"""`python -m bench [NAME ...] [--smoke|--quick|--full] [--out DIR]`.

Each sub-benchmark runs in its own process with a hard time limit, prints its tables as
they are measured and hands them back through a JSONL file, so a sub-benchmark that
fails or runs out of time costs only its own figures. The run's JSON (machine, date,
commit, every figure with its unit) goes to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import (
    PROFILES,
    ChildFailed,
    Machine,
    Profile,
    Run,
    Table,
    compile_sources,
    git_commit,
    in_fresh_process,
    measure,
    table_from_dict,
)
from bench.report import markdown
from rag.commands import Parser, add_debug_flag, run_command
from rag.errors import ConfigError

BENCHES = {
    "ingest": "bench.ingest_bench",
    "gemini-ingest": "bench.gemini_ingest_bench",
    "retrieval": "bench.retrieval_bench",
    "answer": "bench.answer_bench",
    "serve": "bench.serve_bench",
}
# Nothing measured may reach a real API or read a developer's config.
UNSET = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "LANGSMITH_GATEWAY",
         "REDIS_URL", "CHROMA_URL", "GOOGLE_GEMINI_BASE_URL")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"sub-benchmarks (default: all): {', '.join(BENCHES)}")
    size = parser.add_mutually_exclusive_group()
    for name in PROFILES:
        size.add_argument(f"--{name}", dest="profile", action="store_const", const=name)
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="where the JSON goes (default bench/out)")
    parser.add_argument("--work", type=Path, help="scratch folder for corpora and stores (default: a temp dir)")
    add_debug_flag(parser)
    parser.set_defaults(profile="quick")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: measure_all(argv), argv)


def measure_all(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        raise ConfigError(f"unknown sub-benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    for var in UNSET:
        os.environ.pop(var, None)
    os.environ["GEMRAG_CONFIG"] = os.devnull
    compile_sources()
    profile = PROFILES[args.profile]
    run = Run(profile.name, Machine.describe(), git_commit())
    work = args.work or Path(tempfile.mkdtemp(prefix="gemrag-bench-"))
    try:
        for name in args.names or list(BENCHES):
            run.tables += run_one(name, profile, work / name, run.problems)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    run.finished = datetime.now(UTC).isoformat(timespec="seconds")
    run.load_average_end = os.getloadavg()
    path = run.write(args.out)
    (args.out / f"latest-{profile.name}.md").write_text(markdown(run))
    for problem in run.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"wrote {path}")
    return 1 if run.problems else 0


def run_one(name: str, profile: Profile, work: Path, problems: list[str]) -> list[Table]:
    work.mkdir(parents=True, exist_ok=True)
    results = work / "tables.jsonl"
    try:
        in_fresh_process(measure, BENCHES[name], profile, work, results, timeout_s=profile.timeout_s)
    except ChildFailed as failure:
        problems.append(f"{name}: {failure}")
    if not results.exists():
        return []
    return [table_from_dict(json.loads(line)) for line in results.read_text().splitlines()]


if __name__ == "__main__":
    sys.exit(main())
