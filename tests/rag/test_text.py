"""rag.text: the word-level helpers shared by retrieval, reranking and the offline answerer."""

from __future__ import annotations

from rag.text import anchors, english, may_be_misspelt, one_edit_apart, share_present, typo_of


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


def test_a_term_may_be_misspelt_unless_short_numeric_or_a_word():
    assert may_be_misspelt("gemni") and may_be_misspelt("glp_smplex") and may_be_misspelt("flsh")
    assert not may_be_misspelt("gpu")  # one edit from too many words
    assert not may_be_misspelt("v1beta") and not may_be_misspelt("1.5")  # versions
    assert not may_be_misspelt("studio") and not may_be_misspelt("java")  # words of their own


def test_english_is_a_dictionary_word_a_form_of_one_or_two_joined_never_a_name():
    """Each list alone misses words: the model's vocabulary lacks "clutters" and "recursion",
    the dictionary "colour"; a joined word ("throwaway") and a form ("declarations") count.
    Names are in neither, so a question typed without capitals still names them."""
    for word in ("clutters", "recursion", "colour", "throwaway", "declarations", "swapping"):
        assert english(word), word
    for name in ("jupyter", "tracemalloc", "glpk", "kubernetes", "miplib"):
        assert not english(name), name
