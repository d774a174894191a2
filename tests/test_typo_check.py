"""scripts/typo_check.py: its misspellings are made by rule (one edit past the middle of the
longest name the asker marked as a name), so the study cannot pick the typos that suit it."""

from __future__ import annotations

from tests.fakes.scripts import load_script

typo_check = load_script("typo_check")


def test_the_longest_name_loses_a_letter_or_swaps_two_past_its_middle_by_the_questions_length():
    """An even-length question drops a letter, an odd one swaps two."""
    assert typo_check.misspelt("How do I call glp_simplex from C?!") == "How do I call glp_smplex from C?!"
    assert typo_check.misspelt("How do I call glp_simplex from C?") == "How do I call glp_smiplex from C?"
    assert typo_check.misspelt("What does Gemini 2.5 Flash cost?") == "What does Gemni 2.5 Flash cost?"


def test_a_question_naming_nothing_long_or_only_in_lower_case_words_is_left_out():
    """Words a question typed without capitals has as names were read as names by our rule,
    not marked by the asker: misspelling them would test the rule against itself."""
    assert typo_check.misspelt("What is 2 + 2?") is None
    assert typo_check.misspelt("how do i run asymptote inside a jupyter notebook?") is None
