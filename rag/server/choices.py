"""What a caller may choose for one answer (the API's `k`, the CLI's --k): one bound, so the
terminal cannot send what the API refuses.

Kept free of FastAPI so `python -m rag ask` can import it without loading the server.
"""

from __future__ import annotations

MAX_K = 50  # passages in one prompt: past this the prompt grows (and costs) without better answers
