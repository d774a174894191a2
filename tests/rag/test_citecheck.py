"""Each sentence with [n] checked against passage n; uncited facts flagged."""

import pytest

from rag.chain import Chain
from rag.citecheck import CitationChecker, claims, supported_share
from rag.cli import describe
from rag.providers.gemini import GeminiProvider
from rag.providers.minilm import shared_minilm
from rag.types import Passage
from tests.fakes.tiny_corpus import build_store
from ui.render import details_html

PASSAGES = [
    Passage(1, "Employees receive 25 days of paid vacation per year. Unused days carry over until March.", "h.pdf", 2),
    Passage(2, "Expense reports must be submitted within 30 days of the purchase.", "h.pdf", 3),
]


@pytest.fixture(scope="module")
def checker():
    return CitationChecker(shared_minilm().embed)


def verdicts(checker, answer):
    return [(c.sentence, c.verdict) for c in checker.check(answer, PASSAGES)]


def test_claims_split_sentences_and_keep_their_markers():
    answer = "Based on your documents:\n\n- Days carry over. [1] Reports take 30 days [2][1].\n- In short:"
    assert claims(answer) == [("Days carry over.", (1,)), ("Reports take 30 days.", (2, 1)), ("In short:", ())]


def test_a_bracket_that_cites_nothing_does_not_end_a_claim(checker):
    """The offline answerer quoted Python's docs, "if the fieldnames are ['x', 'y', 'z'] and the
    defaults are (1, 2), ... [5]": its first half was flagged "uncited: states a fact without a
    citation", its second checked alone."""
    passages = [Passage(1, "For example, if the fieldnames are ['x', 'y', 'z'] and the defaults are (1, 2), "
                           "then x will be a required argument.", "collections.html", None)]
    answer = "- For example, if the fieldnames are ['x', 'y', 'z'] and the defaults are (1, 2), then x will be a " \
             "required argument. [1]"
    assert [(c.verdict, c.cited) for c in checker.check(answer, passages)] == [("supported", (1,))]


def test_a_quoted_reference_mark_keeps_the_citation_after_it():
    """BibTeX's manual says '“Designing BibTEX Styles” [3].': quoted, the answer's own [1] after
    it was dropped as an empty claim, and the sentence was checked against source 3 alone."""
    assert claims("- It is in “Designing BibTEX Styles” [3]. [1]\n- Styles sort by label [2].") == [
        ("It is in “Designing BibTEX Styles”.", (3, 1)), ("Styles sort by label.", (2,))]


def test_a_quote_and_a_faithful_paraphrase_are_supported(checker):
    assert verdicts(checker, "Unused days carry over until March. [1]") == [
        ("Unused days carry over until March.", "supported")]
    assert verdicts(checker, "Expenses need to be filed quickly after buying something [2].")[0][1] == "supported"


def test_the_meaning_test_embeds_once_per_answer_and_never_a_text_twice():
    """Its CPU is paid by every answer a server streams: one call for the distinct texts of all
    the claims the words did not settle, and nothing for texts already seen."""
    calls: list[list[str]] = []

    def embed(texts):
        calls.append(list(texts))
        return shared_minilm().embed(texts)

    checker = CitationChecker(embed)
    paraphrase = "Expenses need to be filed quickly after buying something"
    answer = f"{paraphrase} [2]. {paraphrase} [2]. Holidays left over move to the next spring [1]."
    first = checker.check(answer, PASSAGES)
    assert [c.verdict for c in first][:2] == ["supported", "supported"] and len(first) == 3
    [texts] = calls
    assert len(texts) == len(set(texts)) == 2 + 1 + 2  # two claims, passage 2's sentence, passage 1's two
    assert checker.check(answer, PASSAGES) == first and len(calls) == 1  # all from the cache


def test_a_wrong_number_or_the_wrong_source_is_unsupported(checker):
    wrong_number = "Reports are due within 45 days [2]."
    assert verdicts(checker, wrong_number) == [("Reports are due within 45 days.", "unsupported")]
    assert verdicts(checker, "Vacation days carry over until March. [2]")[0][1] == "unsupported"
    assert verdicts(checker, "The cafeteria serves lunch daily [1].")[0][1] == "unsupported"
    assert verdicts(checker, "Lunch is free [7].")[0][1] == "unsupported"  # a source that was not shown


def test_an_uncited_fact_is_flagged_and_an_uncited_connective_is_not(checker):
    checks = checker.check("The office opens at 9 on weekdays.\nIn short:", PASSAGES)
    assert [(c.verdict, c.flagged) for c in checks] == [("uncited", True)]
    assert supported_share(checks) is None
    mixed = checker.check("Unused days carry over until March. [1] Reports take 45 days [2].", PASSAGES)
    assert supported_share(mixed) == 0.5


def test_the_record_the_cli_and_the_ui_show_the_flagged_sentences(gemini_settings, fake_gemini):
    provider = GeminiProvider(gemini_settings)
    chain = Chain(gemini_settings, provider, build_store(gemini_settings, provider))
    fake_gemini.responder = lambda request: (
        "Employees receive 25 days of paid vacation per year [1]. They also get 40 days of sick leave [1]. "
        "The office opens at 9."
    )
    record = chain.ask("How much vacation and sick leave do employees get?")
    assert [c.verdict for c in record.checks] == ["supported", "unsupported", "uncited"]
    shown = describe(record)
    assert "! They also get 40 days of sick leave. (unsupported: 40 not in the cited passage)" in shown
    assert "! The office opens at 9. (uncited" in shown
    html = details_html(record)
    assert "1 of 2 cited sentences supported" in html and "data-verdict='uncited'" in html


def test_a_quoted_code_block_is_one_claim_with_its_lead_in_and_its_brackets_cite_nothing(checker):
    """An offline reply now quotes a code block with its lines and the mark after the block;
    each line had been a claim ("name = sys.argv[1]" citing passage 1, "```" a claim of its
    own), and a Gemini answer's block was as many uncited claims as it had lines."""
    passage = Passage(1, "Read the first argument like this:\n\n```python\nimport sys\nname = sys.argv[1]\n"
                         "print(len(name))\n```\n", "guide.md", None)
    offline = ("Based on your documents:\n\n- Read the first argument like this:\n  ```\n  import sys\n"
               "  name = sys.argv[1]\n  print(len(name))\n  ```\n  [1]\n- ```\n  import sys\n  ```\n  [1]")
    assert claims(offline) == [
        ("Read the first argument like this: import sys name = sys.argv[1] print(len(name))", (1,)),
        ("import sys", (1,)),
    ]
    checks = checker.check(offline, [passage])
    assert [(c.verdict, c.reason) for c in checks] == [("supported", "quoted")] * 2  # verbatim, fences aside
    gemini = "Run this [1]:\n\n```python\nname = sys.argv[1]\nprint(len(name))\n```\n\nIt prints 4 [2]."
    assert claims(gemini) == [("Run this: name = sys.argv[1] print(len(name))", (1,)), ("It prints 4.", (2,))]


def test_code_next_to_a_mark_stays_in_its_claim_and_a_lone_backtick_blanks_no_line(checker):
    """A review's repros: a lone backtick ("a backtick (`) on each side") paired with one on
    the next line, blanking the line end and the citation between (the check raised, and
    the sources lost [1]); the white space before a mark, matched on the blanked text, took
    the code before it ("`--no-cache` [2]"); a block after a closed claim ("... [1].") was
    checked as part of it, its "9000" unsupported."""
    from rag.chain import cited_numbers

    reply = ("Based on your documents:\n\n- In Markdown, wrap inline code in a backtick (`) on each side of it. [1]\n"
             "- Run `ls -la` to list all the files in the directory. [2]")
    assert claims(reply) == [("In Markdown, wrap inline code in a backtick (`) on each side of it.", (1,)),
                             ("Run `ls -la` to list all the files in the directory.", (2,))]
    assert cited_numbers(reply, 2) == [1, 2]
    assert claims("Set the option `--no-cache` [2].") == [("Set the option `--no-cache`.", (2,))]
    assert claims("- The build uses CMake [1]\n- `cmake --build build` [2]") == [
        ("The build uses CMake", (1,)), ("`cmake --build build`", (2,))]
    assert claims("- ```\n  --prune old\n  ```\n  [3]") == [("--prune old", (3,))]
    passages = [Passage(1, "The server listens on port 8080 by default.", "a.md", None)]
    answer = "The server listens on port 8080 by default [1].\n\n```bash\ndocker run -p 9000:8080 app\n```"
    assert [(c.sentence, c.verdict) for c in checker.check(answer, passages)] == [
        ("The server listens on port 8080 by default.", "supported"),
        ("docker run -p 9000:8080 app", "uncited")]


def test_a_bracket_that_cites_nothing_leaves_the_line_open_for_its_code_block():
    """A line is closed by a citation mark at its end, as `_CLOSED` says; it read any "]",
    so a line ending in a quoted list had its block checked as a claim of its own."""
    assert claims("The defaults are ['x', 'y']\n```\nf(*defaults)\n```\n[1]") == [
        ("The defaults are ['x', 'y'] f(*defaults)", (1,))]


def test_a_markdown_sample_keeps_its_own_fences_as_code(checker):
    """A "```" line inside a "~~~" block is a line of the sample, not a fence: the claim and
    the passage both keep it, and the quote is verbatim."""
    passage = Passage(1, "A README opens like this:\n\n~~~markdown\n```python\nprint(1)\n```\n~~~\n", "guide.md", None)
    reply = "- A README opens like this:\n  ~~~\n  ```python\n  print(1)\n  ```\n  ~~~\n  [1]"
    assert claims(reply) == [("A README opens like this: ```python print(1) ```", (1,))]
    assert [(c.verdict, c.reason) for c in checker.check(reply, [passage])] == [("supported", "quoted")]
