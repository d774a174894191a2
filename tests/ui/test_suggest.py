from rag.stores import StoredFile
from ui.suggest import suggestions


def test_a_suggestion_names_the_part_its_topic_is_under_without_the_manuals_numbering():
    manual = StoredFile("manual.pdf", chunks=40, pages=9, headings=(
        "1 Description", "2 Installation > 2.1 UNIX binary distributions"))
    handbook = StoredFile("handbook.md", chunks=20, pages=None, headings=(
        "Handbook", "Handbook > Answer caching rules"))
    reference = StoredFile("glpk.pdf", chunks=30, pages=5, headings=("Introduction", "Introduction > LP problem"))

    assert suggestions([manual, handbook, reference]) == [
        "What does “Installation” say about “UNIX binary distributions”?",
        "What does glpk.pdf say about “LP problem”?",
        "What does “Handbook” say about “Answer caching rules”?",
    ]
