"""What `python -m ingest --batch` saves on a folder, measured against the fake Gemini server.

    python scripts/batch_saving.py [FOLDER]      # default: corpus/

Starts the fake Gemini API (rag/testing/fake_gemini.py) on 127.0.0.1, then runs, each into a
fresh data dir: `python -m ingest FOLDER --dry-run` (both prices, from gemrag's own token
counts), `python -m ingest FOLDER` (online) and `python -m ingest FOLDER --batch` (a Batch API
job, charged on the token counts the fake reports per request). Prints the cost rows of
each and the ledger's record of the batch job. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini

REPO = Path(__file__).resolve().parents[1]
ROWS = ("tokens embedded", "figures and scans", "cost", "saved by")


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "corpus"
    with FakeGemini() as fake, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GEMINI_API_KEY": TEST_API_KEY, "GEMRAG_BASE_URL": fake.url,
               "GEMRAG_TIER": "unlimited", "GEMRAG_BATCH_POLL_S": "0.1", "GEMRAG_CONFIG": os.devnull,
               "PYTHONPATH": str(REPO)}
        for name, extra in (("dry run", ["--dry-run"]), ("online", []), ("--batch", ["--batch"])):
            data = Path(tmp) / name.strip("-").replace(" ", "-")
            run = subprocess.run([sys.executable, "-m", "ingest", str(folder), "--data-dir", str(data), "-q", *extra],
                                 env=env, capture_output=True, text=True, check=False)
            print(f"$ python -m ingest {folder.name}/ {' '.join(extra)}".rstrip() + f"   (exit {run.returncode})")
            for line in run.stdout.splitlines():
                if any(row in line for row in ROWS):
                    print(line)
            if name == "--batch":
                costs = subprocess.run([sys.executable, "-m", "rag", "costs", "--json"],
                                       env={**env, "GEMRAG_DATA_DIR": str(data)}, capture_output=True, text=True,
                                       check=False)
                spent = json.loads(costs.stdout)["sessions"]["ingest:corpus"]
                print(f"ledger, session ingest:corpus: {spent['calls']} call, {spent['usage']['prompt_tokens']:,} "
                      f"tokens (the fake's count), ${spent['cost_usd']:.6f}")
            print()
        print(f"fake: {len(fake.calls('batchEmbedContents'))} online embedding requests, "
              f"{len(fake.calls('asyncBatchEmbedContent'))} batch job(s) created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
