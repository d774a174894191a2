"""`python tests/ingest/crash_run.py STEP N WHEN -- INGEST_ARGS...`: runs the ingest CLI with
the fake embedder and kills itself with SIGKILL on the Nth call of STEP (before or after
the call), so a test can crash a real ingest process at an exact point. Every call of a
step is printed (`upsert 3`), so a test can also kill it from outside at a seen point.
STEP `none` only prints. FAKE_EMBED_DELAY_S slows each embedding call. Needs the repo
root on PYTHONPATH (for `tests.*`)."""

from __future__ import annotations

import os
import signal
import sys
import threading

from ingest import cli
from ingest.manifest import Manifest
from rag.store import Store
from tests.ingest.fake_embedder import FakeEmbedder

STEPS = {
    "embed": (FakeEmbedder, "embed_documents"),
    "upsert": (Store, "upsert"),
    "commit": (Manifest, "commit"),
    "forget": (Manifest, "forget"),
    "delete": (Store, "delete"),
    "bump": (Store, "bump_version"),
}


def watch(step: str, kill_at: int, when: str) -> None:
    owner, name = STEPS[step]
    original = getattr(owner, name)
    calls = 0
    counting = threading.Lock()  # embedding runs on several threads: each call gets its own number

    def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        with counting:
            calls += 1
            nth = calls
            sys.stdout.write(f"{step} {nth}\n")  # one write: steps run in several threads
            sys.stdout.flush()
        if nth == kill_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, *args, **kwargs)
        if nth == kill_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


def main() -> int:
    step, kill_at, when, separator, *argv = sys.argv[1:]
    assert separator == "--", __doc__
    for name in STEPS:
        watch(name, int(kill_at) if name == step else 0, when)
    delay = float(os.environ.get("FAKE_EMBED_DELAY_S", "0"))
    return cli.main(argv, embedder=FakeEmbedder(delay_s=delay))


if __name__ == "__main__":
    sys.exit(main())
