"""Acronyms a corpus defines, and questions that spell them out (rag.acronyms)."""

import pytest

from rag.acronyms import defined, definitions, spelled_out
from rag.bm25 import Terms


@pytest.mark.parametrize(("text", "found"), [
    ("- **RPM**, requests per minute: how many calls the project may make.", ("RPM", "requests per minute")),
    ("Quotas in tokens per minute (TPM) bind first.", ("TPM", "tokens per minute")),
    ("RPD (requests per day) resets at midnight.", ("RPD", "requests per day")),
    ("A mixed integer programming (MIP) problem.", ("MIP", "mixed integer programming")),
    ("Ask the Department of Energy (DOE) for it.", ("DOE", "Department of Energy")),
    ("Two LPs (linear programs) in a row.", ("LPs", "linear programs")),
])
def test_a_definition_in_any_of_its_usual_shapes_is_read(text, found):
    acronym, words = found
    assert list(definitions(text)) == [(acronym, tuple(words.split()))]


@pytest.mark.parametrize("text", [
    "This is VERY (really) important.",  # capitals for emphasis, not spelled out by the words beside them
    "Set MAX, the largest value.",
    "see the LP file format",  # used, not defined
    "NOTE: quotas change.",
])
def test_capitals_that_do_not_spell_out_their_neighbours_are_no_definition(text):
    assert list(definitions(text)) == []


def test_a_question_spelling_out_a_defined_acronym_is_searched_for_it_too():
    terms = Terms()
    acronyms = defined(["RPM, requests per minute: calls in a rolling minute.", "Tokens per minute (TPM)."], terms)
    assert acronyms == [("rpm", ("request", "per", "minut")), ("tpm", ("token", "per", "minut"))]
    question = terms("How many requests per minute does the free tier allow?")
    assert spelled_out(question, acronyms) == ["rpm"]
    assert spelled_out(terms("How many requests does a minute allow per user?"), acronyms) == []  # not in a row
    assert spelled_out(terms("what is the RPM in requests per minute?"), acronyms) == []  # already asked by it


def test_an_index_saved_and_loaded_keeps_the_acronyms_its_texts_define(tmp_path):
    from rag.bm25 import BM25Index
    from rag.types import Chunk

    texts = ["RPM, requests per minute: calls in a minute.", "| Model | RPM |\n| flash | 10 |"]
    chunks = [Chunk(id=f"c{i}", text=t, source="q.md", index=i, start=0, end=len(t), content_hash=f"h{i}")
              for i, t in enumerate(texts)]
    BM25Index.build(chunks, Terms()).save(tmp_path)
    loaded = BM25Index.load(tmp_path, Terms())
    assert loaded.acronyms == [("rpm", ("request", "per", "minut"))]
    assert loaded.query_terms("requests per minute for flash") == ["request", "per", "minut", "flash", "rpm"]
