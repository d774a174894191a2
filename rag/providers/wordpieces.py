"""A text's MiniLM word pieces, known once and carried with it.

Ingest's chunker tokenises each section once to size its lines and chunks, and hands each
chunk's word pieces to the offline embedder, which then does not tokenise the chunk again.
This works because BERT's tokenizer splits at every space before it looks inside a word:
the pieces of any stretch of text that starts and ends at a space are a slice of the whole
text's pieces.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Sequence

# A character of a word to BERT: anything but white space, and also the white space that
# BERT's normaliser deletes instead of splitting at (vertical tab, form feed, the C0
# separators, NEL): "unbeliev\x0cably" is one word to BERT, two to Python's \S+.
BERT_WORD_CHAR = r"(?:[^\s]|[\x0b\x0c\x1c-\x1f\x85])"
BERT_RUN = re.compile(BERT_WORD_CHAR + "+")  # what BERT reads as one run between spaces


class WordPieces:
    """A text's word pieces: their ids (no [CLS]/[SEP], no truncation) and where each starts
    in the text (where the run between spaces holding it starts, `BERT_RUN`). The pieces of
    a stretch of the text that starts and ends at a space are `between` its bounds."""

    __slots__ = ("ids", "starts")

    def __init__(self, ids: array[int], starts: Sequence[int]) -> None:
        self.ids = ids
        self.starts = starts

    def between(self, start: int, end: int) -> array[int]:
        """The ids of the pieces that start in text[start:end]."""
        return self.ids[bisect_left(self.starts, start) : bisect_left(self.starts, end)]

    def count(self, start: int, end: int) -> int:
        """How many pieces start in text[start:end]."""
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)


class Tokenized(str):
    """A text that carries its MiniLM word-piece ids (`WordPieces.between`). MiniLM embeds
    it from those ids; any other embedder reads the plain string it is."""

    ids: array[int]

    def __new__(cls, text: str, ids: array[int]) -> Tokenized:
        self = super().__new__(cls, text)
        self.ids = ids
        return self

    def __reduce__(self) -> tuple[type[Tokenized], tuple[str, array[int]]]:
        """Pickled and copied with its ids (str's own way passes the text alone)."""
        return Tokenized, (str(self), self.ids)
