from ui.corpus import DocumentInfo
from ui.suggest import suggestions


def test_a_suggestion_names_the_part_its_topic_is_under_without_the_manuals_numbering():
    manual = DocumentInfo("manual.pdf", chunks=40, pages=9, headings=(
        "1 Description", "2 Installation > 2.1 UNIX binary distributions"))
    handbook = DocumentInfo("handbook.md", chunks=20, pages=0, headings=("Handbook", "Handbook > Answer caching rules"))
    reference = DocumentInfo("glpk.pdf", chunks=30, pages=5, headings=("Introduction", "Introduction > LP problem"))

    assert suggestions([manual, handbook, reference]) == [
        "What does “Installation” say about “UNIX binary distributions”?",
        "What does glpk.pdf say about “LP problem”?",
        "What does “Handbook” say about “Answer caching rules”?",
    ]
