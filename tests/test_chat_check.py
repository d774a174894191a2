"""scripts/chat_check.py: each question is asked after the one listed before it in its set
(another topic), and the table counts what changed."""

from __future__ import annotations

from rag.eval.testset import TestCase
from tests.fakes.scripts import load_script

chat_check = load_script("chat_check")
typo_check = load_script("typo_check")


def test_a_question_is_asked_after_the_one_before_it_and_the_first_after_the_last():
    cases = [TestCase("a", "first?"), TestCase("b", "second?"), TestCase("c", "third?")]
    assert chat_check.previous(cases[1], cases) == ["first?"]
    assert chat_check.previous(cases[0], cases) == ["third?"]
    assert chat_check.alone(cases[1], cases) == []


def test_the_table_counts_hits_refusals_rewrites_and_follow_ups_per_set():
    outcome = typo_check.Outcome
    rows = [
        (outcome("glpk", "g1", "q1", True, False), outcome("glpk", "g1", "q1 (other words)?", False, False)),
        (outcome("glpk", "g2", "q2", True, False), outcome("glpk", "g2", "q2", True, True)),
    ]
    follow = [outcome("glpk", "f1", "and then?", True, False), outcome("glpk", "f2", "what about it?", False, True)]
    assert chat_check.table(rows, follow).splitlines()[2] == "| glpk | 2 | 1.000 → 0.500 | 0 → 1 | 1 | 1 of 2, 1 |"
