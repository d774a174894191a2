"""rag.text: the word-level helpers shared by retrieval, reranking and the offline answerer."""

from __future__ import annotations

import re
import threading

import pytest

from rag import text
from rag.text import (
    anchors,
    another_language,
    closed_up,
    content_words,
    english,
    everyday_typo,
    folded,
    may_be_misspelt,
    one_edit_apart,
    rejoined,
    share_present,
    typo_of,
)


def test_anchors_are_the_literal_tokens_of_a_question():
    assert anchors("What should an application do when the Gemini API returns HTTP 429?") == {"429"}
    assert anchors("Does os.path.join take --strict or RESOURCE_EXHAUSTED and embedContent?") == {
        "os.path.join", "strict", "resource_exhausted", "embedcontent"}
    assert anchors("Which flag turns the reply into an event stream?") == set()


def test_share_present_counts_the_literal_tokens_a_text_holds_whatever_their_case():
    assert share_present({"429", "resource_exhausted"}, "HTTP 429: RESOURCE_EXHAUSTED") == 1.0
    assert share_present({"429", "os.path.join"}, "Retry on 429.") == 0.5
    assert share_present(set(), "anything") == 0.0


def test_one_edit_apart_is_one_letter_dropped_added_changed_or_two_neighbours_swapped():
    assert one_edit_apart("gemni", "gemini") and one_edit_apart("gemini", "gemni")  # dropped, either way round
    assert one_edit_apart("bacth", "batch") and one_edit_apart("ab", "ba")  # swapped
    assert one_edit_apart("mathprog", "mathprug")  # changed
    assert one_edit_apart("glp_simplex", "glp_simplexx")  # added at the end
    assert not one_edit_apart("gemini", "gemini")  # the same word is no typo
    assert not one_edit_apart("abcd", "acdb")  # two edits
    assert not one_edit_apart("abcd", "abxy")
    assert not one_edit_apart("gemni", "gemimi")
    assert not one_edit_apart("gem", "gemini")  # lengths three apart


def test_a_typo_leaves_the_first_letter_of_a_name_and_of_its_parts():
    assert typo_of("glp_smplex", "glp_simplex") and typo_of("gemni", "gemini") and typo_of("mathrog", "mathprog")
    assert not typo_of("str.lstrip", "str.rstrip") and not typo_of("setattr", "getattr")
    assert typo_of("tm_ilm", "tm_lim") and typo_of("json.udmps", "json.dumps")  # a swap at a part's start
    assert not typo_of("str.strip", "str.lstrip") and not typo_of("timeit.epeat", "timeit.repeat")
    assert not typo_of("gemini", "gemini")


def test_a_typo_is_a_slip_of_a_finger_on_the_keyboard():
    """A key struck for its neighbour, twice or with a neighbour, or left out, is a typo; a
    letter for one far off the keyboard makes another name: "manim" is not "maxim"."""
    assert typo_of("mathprig", "mathprog") and typo_of("glp_simplrx", "glp_simplex")  # o-i, e-r: neighbours
    assert not typo_of("manim", "maxim") and not typo_of("mathprug", "mathprog")  # n-x, u-o: keys apart
    assert typo_of("glp_simplexx", "glp_simplex") and typo_of("mathprlog", "mathprog")  # twice, with a neighbour
    assert not typo_of("mathpzrog", "mathprog")  # z is near neither p nor r
    assert typo_of("gemni", "gemini") and typo_of("mathrog", "mathprog")  # any key left out
    assert typo_of("glp.simplex", "glp_simplex")  # one separator for another


def test_a_term_may_be_misspelt_unless_short_numeric_or_a_word():
    assert may_be_misspelt("gemni") and may_be_misspelt("glp_smplex") and may_be_misspelt("flsh")
    assert not may_be_misspelt("gpu")  # one edit from too many words
    assert not may_be_misspelt("v1beta") and not may_be_misspelt("1.5")  # versions
    assert not may_be_misspelt("studio") and not may_be_misspelt("java")  # words of their own


def test_english_is_a_dictionary_word_a_form_of_one_or_two_joined_never_a_name():
    """Each list alone misses words: the model's vocabulary lacks "clutters" and "recursion",
    the dictionary "colour"; a joined word ("throwaway"), a form ("declarations") and a
    British spelling ("optimise") count.
    Names are in neither, so a question typed without capitals still names them."""
    for word in ("clutters", "recursion", "colour", "throwaway", "declarations", "swapping"):
        assert english(word), word
    for british in ("summarises", "optimise", "initialised", "serialising", "visualisation", "tokenisers", "paralysed"):
        assert english(british), british  # the American "-ize" is in the lists
    for name in ("jupyter", "tracemalloc", "glpk", "kubernetes", "miplib", "redis", "mysql", "yaml"):
        assert not english(name), name  # "redis" is not "red" + "is": joined words are of three letters or more


@pytest.mark.parametrize(("first", "second", "whole"), [
    ("con", "figuration", "configuration"),  # a dictionary word
    ("arrow", "head", "arrowhead"),
    ("portabil", "ity", "portability"),  # a fragment is no word: joined
    ("integer", "valued", "integer-valued"),  # two words, not one: a compound
    ("floating", "point", "floating-point"),
    ("CNF", "SAT", "CNF-SAT"),  # a capital after the break: a name's parts
])
def test_a_word_hyphenated_at_a_line_end_is_closed_up_unless_a_compound(first: str, second: str, whole: str) -> None:
    assert closed_up(first, second) == whole


def test_rejoined_writes_each_broken_word_whole_on_its_first_line() -> None:
    ocr = "an optional con-\nfiguration file, an integer-\nvalued cost\n- a list item\nthe end-\n"
    assert rejoined(ocr, "-\n") == "an optional configuration\nfile, an integer-valued\ncost\n- a list item\nthe end-\n"
    assert rejoined("pages 10-\n20, RFC-\n1918", "-\n") == "pages 10-\n20, RFC-\n1918"  # numbers: a range, a name
    # Two words the dictionary lacks whole, joined as the page itself writes them elsewhere.
    assert rejoined("a name-\nspace of its own; each namespace", "-\n") == "a namespace\nof its own; each namespace"


def test_content_words_fold_accents_and_keep_letters_without_a_base():
    assert content_words("Crème brûlée, naïve café") == ["creme", "brulee", "naive", "cafe"]
    assert folded("Straße, Ærø") == "Straße, Ærø"  # no base letter with a mark: as they are
    # a Greek letter standing alone is read by its name, a Greek word as it is
    assert content_words("the correction \u03b3, 2\u03c0 and \u03d5 (\U0001d6fe in TeX's math italic)") == [
        "correction", "gamma", "pi", "phi", "gamma", "tex's", "math", "italic"]
    assert folded("\u03bb\u03cc\u03b3\u03bf\u03c2 in 10 \u03bcs") == "\u03bb\u03bf\u03b3\u03bf\u03c2 in 10 \u03bcs"


def test_an_everyday_typo_is_one_slip_from_a_common_word_which_short_names_are_not():
    for slip in ("jsut", "teh", "wiht", "waht", "yuo"):
        assert everyday_typo(slip), slip
    for name in ("lua", "gpu", "dpi", "jupyter", "glpk", "redis"):
        assert not everyday_typo(name), name


def test_the_word_lists_load_once_however_many_threads_ask_first():
    """Eight server threads asking their first lower-case question at once share one load."""
    text._dictionary.cache_clear()
    text._vocabulary_stems.cache_clear()
    loaded: list[object] = []
    threads = [threading.Thread(target=lambda: loaded.append(text.word_lists()[0])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loaded) == 8 and all(d is loaded[0] for d in loaded)


@pytest.mark.timeout(20)
def test_anchors_of_a_pasted_blob_come_back_at_once():
    """A question may be a pasted log line or a hash: the pattern starts where a token starts,
    so a 50,000-character word is read in one pass (it took minutes when every position
    inside it was tried)."""
    assert anchors("why does this fail: " + "a" * 50_000) == set()
    assert anchors("what is " + "x" * 50_000 + "2?") == {"x" * 50_000 + "2"}


@pytest.mark.parametrize("question", [
    "¿Con qué frecuencia se deben rotar las claves de API?", "Wie oft sollten API-Schlüssel gewechselt werden?",
    "À quelle fréquence faut-il changer les clés API ?", "Quanto custa o plano gratuito?",
    "Hoe vaak moet ik mijn API-sleutel vervangen?", "Quanto costa il piano gratuito e dove si trova?",
    "APIキーはどのくらいの頻度で変更すべきですか？",
])
def test_a_question_in_another_language_is_told_apart(question: str) -> None:
    assert another_language(question)


@pytest.mark.parametrize("question", [
    "Which Visual Studio Code extension gives Asymptote syntax highlighting?",  # terse, few function words
    "glpk glpsol swiglpk mathprog cplex tutorial?",  # names only
    "What does el nino mean con the API?", "Is the Die Hard DVD in the library?",  # a foreign word or two
    "asy -f pdf -noV",
])
def test_an_english_question_is_not_another_language(question: str) -> None:
    assert not another_language(question)


@pytest.mark.parametrize(("n", "written"), [(0, "0 chunks"), (1, "1 chunk"), (2, "2 chunks"), (1200, "1,200 chunks")])
def test_a_count_takes_its_noun_in_the_plural_unless_it_is_one(n, written):
    assert text.counted(n, "chunk") == written


def test_without_code_blanks_blocks_and_spans_in_place() -> None:
    """What reads citation marks reads this: "[1]" in code is the code's."""
    from rag.text import without_code

    answer = ("- Use `argv[1]` or ``a`[2]`` [3]\n  ```\n  x = y[4]\n  ````\n  [5]\n- ```\n  z[6]\n  ```\n"
              "~~~\n```\n[7]\n~~~\n[8]")
    masked = without_code(answer)
    assert len(masked) == len(answer) and masked.count("\n") == answer.count("\n")
    assert re.findall(r"\[\d\]", masked) == ["[3]", "[5]", "[8]"]  # "````" closes a "```" block, "```" no "~~~"


def test_line_roles_read_fences_as_commonmark_does() -> None:
    """A fence line that cannot close the open block is code; a block left open runs on."""
    from rag.text import line_roles

    lines = ["Run:", "~~~", "```ini", "```", "~~~~", "after", "````", "never closed", "```"]
    assert list(line_roles(lines)) == ["text", "open", "code", "code", "close", "text", "open", "code", "code"]


def test_unfenced_drops_only_the_fences_of_blocks() -> None:
    """A Markdown sample's "```" lines inside a "~~~" block are its code, as a reader sees it."""
    from rag.text import unfenced

    sample = "A README says:\n~~~markdown\n```python\nprint(1)\n```\n~~~\nDone."
    assert unfenced(sample) == "A README says:\n```python\nprint(1)\n```\nDone."
