"""`python -m rag.eval`: see rag/eval/cli.py."""

import sys

from rag.eval.cli import main

sys.exit(main())
