"""The handlers the page calls, driven directly over the ingested UI corpus: an answer with
citation chips and its sources, a chip opening a PDF page image or a Markdown section with
the cited text marked, ratings stored per collection, and the first screen."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from ingest.pipeline import ingest_paths
from rag.backend import Backend
from rag.feedback import FeedbackStore
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from tests.ui.conftest import HOSTILE_QUESTION, PDF_PAGES, write_pdf
from ui import preview, source_images
from ui.handlers import Handlers
from ui.session import SessionState

ROOT = Path(__file__).resolve().parents[2]
BADGE = "Where is the office badge collected?"


@pytest.fixture(scope="module")
def handlers(ui_settings: Settings) -> Handlers:
    return Handlers(ui_settings, Backend.build(ui_settings, OfflineProvider()))


def click(
    handlers: Handlers, state: SessionState, turn: int, act: str, value: str | None = None, mark: int | None = None
) -> tuple:
    """What page.js sends for a button: a chip also names its citation mark."""
    return handlers.act(state, gr.SelectData(None, {"index": [turn, act, mark], "value": value}))


def highlighted_pixels(path: Path) -> int:
    """Pixels of the highlight's yellow over white paper."""
    with Image.open(path) as image:
        r, g, b = np.asarray(image.convert("RGB")).astype(int).transpose(2, 0, 1)
    return int(((r > 240) & (g > 200) & (g < 245) & (b < 180)).sum())


def test_an_answer_shows_chips_its_sources_once_in_rank_order_and_the_session_cost(
    handlers: Handlers, ui_settings: Settings
) -> None:
    state = SessionState()
    *streaming, final = handlers.respond(BADGE, state, "corpus", "hybrid", 4, "")
    assert streaming and all(len(update) == 12 for update in streaming)
    chat, box, ask, stop, _attach, details, sources, _image, _viewer, _drawer, _tabs, totals = final
    assert box == "" and ask["visible"] and not stop["visible"]
    assert "class='cite' data-act='cite' data-turn='0' data-n='1'" in chat
    assert "<mark>The office badge is collected from the reception desk on the second floor.</mark>" in chat
    assert "Offline mode: no Gemini key" not in chat  # said once at the top, not in every answer
    assert "data-route='offline'" in details
    assert sources.count("data-act='cite'") == 4  # top-k 4, each source once
    ranks = [int(part.split("'")[0]) for part in sources.split("data-n='")[1:]]
    assert ranks == [1, 2, 3, 4]
    assert "<li class='cited'>" in sources and "<li class='uncited'>" in sources
    assert "<b>1</b> answer</span>" in totals
    assert state.turns[0].spent_usd == 0.0 and "cost $0.0000" in chat
    assert "✓ 1 of 1 cited sentence supported" in chat  # the citation check, under the answer


def linked_image(settings: Settings, html: str) -> Path:
    """The file the viewer's image links to, found as `ui.source_images`'s route finds it."""
    found = re.search(r"<img src='source-images/([^'/]+)/([^'/]+)'", html)
    assert found is not None, html
    path = source_images.find(settings, unquote(found[1]), unquote(found[2]))
    assert path is not None
    return path


def test_a_chip_opens_the_pdf_page_with_the_cited_sentence_highlighted(
    handlers: Handlers, ui_settings: Settings
) -> None:
    state = SessionState()
    list(handlers.respond(BADGE, state, "corpus", "hybrid", 4, ""))
    _, sources, image, viewer, drawer, tabs, *_ = click(handlers, state, 0, "cite", "1")
    assert drawer["open"] and image["visible"] and "onboarding.pdf</b> · page 3" in viewer
    assert tabs["selected"] == "sources"  # also when the drawer showed Documents or Settings
    assert "alt='onboarding.pdf, page 3'" in image["value"]  # a screen reader names the page
    assert str(ui_settings.data_dir) not in image["value"]  # the link names no server path
    assert "aria-current=true" in sources
    assert highlighted_pixels(linked_image(ui_settings, image["value"])) > 2_000
    again = click(handlers, state, 0, "cite", "1")[2]["value"]
    assert again == image["value"]  # rendered once, then served from the page cache


def test_the_page_cache_keeps_its_size(ui_settings: Settings) -> None:
    settings = ui_settings.model_copy(update={"preview_cache_files": 2})
    handlers = Handlers(settings, Backend.build(settings, OfflineProvider()))
    state = SessionState()
    list(handlers.respond(BADGE, state, "corpus", "hybrid", 6, ""))
    record = state.turns[0].record
    assert record is not None
    for pdf in [c.n for c in record.sources if c.source == "onboarding.pdf"]:
        click(handlers, state, 0, "cite", str(pdf))
    assert len(list(settings.path("previews").glob("*.png"))) <= 2


def test_a_markdown_source_opens_as_its_section_rendered_safely_with_the_passage_marked(
    handlers: Handlers,
) -> None:
    state = SessionState()
    list(handlers.respond(HOSTILE_QUESTION, state, "corpus", "hybrid", 4, ""))
    record = state.turns[0].record
    assert record is not None
    hostile = next(c.n for c in record.sources if c.source == "hostile.md")
    _, _, image, viewer, _, *_ = click(handlers, state, 0, "cite", str(hostile))
    assert not image["visible"]
    assert "<h1>Hostile notes</h1>" in viewer and "<mark>" in viewer
    assert "<script" not in viewer and "<img" not in viewer and "&lt;script&gt;" in viewer


def test_a_rating_is_stored_per_collection_and_becomes_a_test_case(
    handlers: Handlers, ui_settings: Settings
) -> None:
    state = SessionState()
    list(handlers.respond(BADGE, state, "corpus", "hybrid", 4, ""))
    list(handlers.respond("How many days of paid vacation does every employee get per year?",
                          state, "corpus", "hybrid", 4, ""))
    group, title, _, _ = click(handlers, state, 0, "rate", "up")[6:]
    assert group["visible"] and "rated good" in title
    offered = click(handlers, state, 1, "rate", "down")[8]["choices"]
    vacation = state.turns[1].record
    assert vacation is not None
    # Each passage offered with its place: the same file's passages are told apart by section.
    labelled = list(zip([label for label, _ in offered], vacation.sources, strict=True))
    sections = [(label, c.heading.rsplit(">", 1)[-1].strip()) for label, c in labelled if c.heading]
    assert sections and all(label.endswith(f", {section}") for label, section in sections)
    assert all(label.startswith(f"[{c.n}] {c.source}") for label, c in labelled)
    right = next(c.n for c in vacation.sources if c.source == "handbook.md")
    assert "Saved" in handlers.save_feedback(state, "the handbook says 27", right)
    stored = FeedbackStore(ui_settings).list("corpus")
    assert [f.rating for f in stored[-2:]] == ["up", "down"]
    assert stored[-1].comment == "the handbook says 27" and stored[-1].right_source is not None

    command = ["-m", "rag.eval", "feedback", "--collection", "corpus", "--data-dir", str(ui_settings.data_dir)]
    out = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cases = [json.loads(line) for line in out.stdout.splitlines()]
    badge = next(c for c in cases if c["question"] == BADGE)
    assert "second floor" in badge["reference_answer"]
    assert badge["relevant"] == [{"source": "onboarding.pdf", "page": 3}]
    vacation_case = next(c for c in cases if "vacation" in c["question"])
    assert vacation_case["relevant"] == [{"source": "handbook.md"}] and "27 days" in vacation_case["reference_answer"]
    assert "test case(s) from the ratings of collection 'corpus'" in out.stderr


def test_the_first_screen_lists_the_collection_and_suggests_questions(handlers: Handlers) -> None:
    chat, _, _, choices = handlers.load(SessionState())
    assert "data-collection='corpus'" in chat and "3 documents" in chat
    assert chat.count("data-act='ask'") >= 3
    assert "corpus" in choices["choices"]


def test_a_blank_question_changes_nothing(handlers: Handlers) -> None:
    state = SessionState()
    assert len(list(handlers.respond("   ", state, "corpus", "hybrid", 4, ""))) == 1
    assert state.turns == []


def test_a_refused_question_goes_back_into_the_box(handlers: Handlers) -> None:
    """A 9,000-character question was refused and cleared from the box: the asker had to paste
    it again to trim it."""
    state = SessionState()
    long = "How many vacation days do we get? " + "x" * 9_000
    *_, last = handlers.respond(long, state, "corpus", "hybrid", 4, "")
    assert "the limit is 8,000" in state.turns[-1].error and last[1] == long.strip()
    *_, answered = handlers.respond("How many vacation days do we get?", state, "corpus", "hybrid", 4, "")
    assert state.turns[-1].record is not None and answered[1] == ""


def handlers_over(folder: Path, tmp_path: Path) -> Handlers:
    """The handlers over `folder`, ingested offline into a fresh data dir."""
    settings = Settings(data_dir=tmp_path / "data", api_key=None, tier="unlimited")
    assert ingest_paths([folder], settings, OfflineProvider()).exit_code == 0
    return Handlers(settings, Backend.build(settings, OfflineProvider()))


def garage(tmp_path: Path) -> Path:
    """A folder of one document."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "garage.md").write_text("# Garage\n\nThe visitor garage opens at 6 am on weekdays.\n")
    return folder


def open_first_source(folder: Path, tmp_path: Path, question: str) -> tuple[dict, str]:
    """Ingest `folder` offline, ask `question`, click source [1]: the page image's update and
    the viewer's HTML."""
    handlers = handlers_over(folder, tmp_path)
    state = SessionState()
    list(handlers.respond(question, state, "corpus", "hybrid", 4, ""))
    _, _, image, viewer, _, *_ = click(handlers, state, 0, "cite", "1")
    return image, viewer


def test_an_html_source_opens_as_its_extracted_text_with_the_passage_marked(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "garage.html").write_text(
        "<html><head><title>Garage</title><script>window.__pwned = 1</script></head><body>"
        "<h1>Garage</h1><p>Intro text about the building and its many floors.</p>"
        "<p>The visitor garage opens at 6 am and closes at 11 pm on weekdays.</p>"
        "<p>Book a space with:</p><pre>garage book --day monday\ngarage list</pre>"
        "<p>The <code>__init__</code> hook runs a*b*c times; see [the rules](https://evil.example/x).</p>"
        "<img src='http://127.0.0.1:9/leak'></body></html>"
    )
    image, viewer = open_first_source(folder, tmp_path, "When does the visitor garage open?")
    assert not image["visible"] and "garage.html" in viewer
    assert re.search(r"<p><mark>[^<]+</mark></p>", viewer)  # the quote cited, in its paragraph
    assert "<script" not in viewer and "<img" not in viewer and "__pwned" not in viewer
    # its extracted Markdown is rendered: a heading, a code block on its lines (UI walkthrough:
    # "## Examples", fences and code run onto one line)
    assert "<h1>Garage</h1>" in viewer and "<pre><code>garage book --day monday\ngarage list" in viewer
    assert "```" not in viewer and "# Garage" not in viewer
    # ... and its prose as written: no emphasis from "__init__", no link hiding its address (review)
    assert "The __init__ hook runs a*b*c times; see [the rules](https://evil.example/x)." in viewer
    assert "<a " not in viewer and "<strong>" not in viewer and "<em>" not in viewer


def test_a_slide_opens_as_that_slide_s_text(tmp_path: Path) -> None:
    from tests.fakes.media import pptx

    folder = tmp_path / "docs"
    folder.mkdir()
    pptx(folder / "deck.pptx")
    image, viewer = open_first_source(folder, tmp_path, "How many engineers will we hire?")
    assert not image["visible"] and "deck.pptx" in viewer and "slide 2" in viewer
    assert "twelve engineers" in viewer and "Revenue grew" not in viewer  # slide 2's text, not slide 1's


def test_a_source_s_full_text_starts_where_its_first_sentence_does(tmp_path: Path) -> None:
    """The popovers and the highlighted sentence read the passages as retrieval showed them:
    a chunk that starts mid-sentence with the start of its sentence (rag.sentences)."""
    from rag.settings import ChunkProfile
    from rag.store import Store

    settings = Settings(data_dir=tmp_path / "data", api_key=None, tier="unlimited")
    settings = settings.model_copy(update={"chunk_profiles": {
        **settings.chunk_profiles, "offline": ChunkProfile(size_tokens=30, overlap_tokens=10)}})
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "steps.txt").write_text("\n".join(
        f"Step {i} of the routine reads matrix {i} and then" if i % 2 == 0 else f"writes basis {i}." for i in range(40)
    ) + "\n")
    assert ingest_paths([folder], settings, OfflineProvider()).exit_code == 0
    handlers = Handlers(settings, Backend.build(settings, OfflineProvider()))
    state = SessionState()
    list(handlers.respond("Which step writes basis 13?", state, "corpus", "hybrid", 4, ""))
    record = state.turns[0].record
    assert record is not None
    stored = {c.id: c for c in Store(settings, OfflineProvider.embedding_id, "corpus").get(
        [s.chunk_id for s in record.sources])}
    passages = handlers._passages(state.turns[0])
    led = [s for s in record.sources if stored[s.chunk_id].lead]
    assert led
    for source in led:
        chunk = stored[source.chunk_id]
        assert passages[source.n] == chunk.lead + chunk.text and passages[source.n].startswith("Step ")


def test_a_markdown_table_opens_as_a_table_with_its_rows_marked(tmp_path: Path) -> None:
    """The viewer showed "| Model | RPM | ... |---|---|" as one paragraph of pipes: the marks
    around each line broke the table's rows."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "limits.md").write_text(  # a row is quoted as "Model: ...; RPM: 5": the whole passage is marked
        "# Free-tier rate limits\n\n| Model | RPM |\n|---|---|\n| gemini-2.5-flash | 10 |\n| gemini-2.5-pro | 5 |\n"
    )
    _, viewer = open_first_source(folder, tmp_path, "How many requests per minute does gemini-2.5-pro allow?")
    assert "<table>" in viewer and "|---|" not in viewer
    assert "<td><mark> gemini-2.5-pro </mark></td>" in viewer


def test_the_first_screen_counts_the_documents_an_upload_added(tmp_path: Path) -> None:
    """After two uploads the first screen still said "15 documents" where the Documents tab
    said 16: the chat was not drawn again."""
    handlers = handlers_over(garage(tmp_path), tmp_path)
    state = SessionState()
    handlers.corpus()  # as a page load does
    assert "1 document · " in handlers.chat(state)
    upload = tmp_path / "up" / "canteen.md"
    upload.parent.mkdir()
    upload.write_text("# Canteen\n\nThe canteen serves lunch from 11:30 to 14:00.\n")
    *_, chat = handlers.upload([str(upload)], "corpus", state)
    assert "2 documents · " in chat


def test_files_gradio_refuses_in_the_browser_are_named_in_the_upload_status(
    handlers: Handlers, ui_settings: Settings
) -> None:
    """Gradio refuses them with a toast alone, so the status kept the last upload's result;
    and the summary of the upload of the others, which replaces that status, named them no
    more (UI walkthrough)."""
    state = SessionState()

    def picked(*files: tuple[str, int]) -> str:  # what ui/upload.js sends for the files chosen
        return handlers.picked(state, gr.EventData(None, {"files": [{"name": n, "size": s} for n, s in files]}))

    status = picked(("canteen.md", 80), ("virus.exe", 80), ("scan.pdf", ui_settings.max_upload_bytes + 1))
    assert "❌ virus.exe: file type .exe is not supported" in status
    assert f"❌ scan.pdf: {ui_settings.max_upload_bytes + 1:,} bytes is over the upload limit" in status
    assert "canteen.md" not in status  # uploaded: its summary follows
    canteen = ui_settings.data_dir.parent / "browser" / "canteen.md"
    canteen.parent.mkdir()
    canteen.write_text("# Canteen\n\nThe canteen serves lunch from 11:30 to 14:00.\n")
    summary = handlers.upload([str(canteen)], "corpus", state, progress=lambda *a, **k: None)[0]  # type: ignore[arg-type]
    assert "canteen.md" in summary and "❌ virus.exe: file type .exe" in summary and "❌ scan.pdf" in summary
    assert picked(("canteen.md", 80)) == ""  # nothing refused: the last upload's status goes
    again = handlers.upload([str(canteen)], "corpus", state, progress=lambda *a, **k: None)[0]  # type: ignore[arg-type]
    assert "virus.exe" not in again  # named once, with the upload it was picked with


def test_each_chip_opens_its_source_at_the_sentence_it_stands_after(handlers: Handlers) -> None:
    state = SessionState()
    list(handlers.respond("How many vacation days do I get and when do they expire?", state, "corpus", "hybrid",
                          4, ""))
    assert state.turns[0].answer.count("[1]") == 2  # two sentences, one source
    first, second = (click(handlers, state, 0, "cite", "1", mark)[3] for mark in (0, 1))
    assert "<mark>Every employee gets 27 days of paid vacation per calendar year.</mark>" in first
    assert "<mark>Unused vacation days expire</mark>\n<mark>on the 31st of March of the following year.</mark>" \
        in second
    assert "<mark>Every employee" not in second  # the sentence wraps in the file: marked alone all the same


def test_refresh_redraws_the_first_screen_with_what_was_ingested_since(tmp_path: Path) -> None:
    folder = garage(tmp_path)
    handlers = handlers_over(folder, tmp_path)
    state = SessionState()
    assert "1 document · " in handlers.load(state)[0]
    (folder / "canteen.md").write_text("# Canteen\n\nThe canteen serves lunch from 11:30 to 14:00.\n")
    assert ingest_paths([folder], handlers.settings, OfflineProvider()).exit_code == 0  # python -m ingest meanwhile
    corpus, _, chat = handlers.refresh(state)
    assert "2 documents · " in corpus and "2 documents · " in chat


def test_the_first_screen_follows_the_collection_chosen_in_settings(tmp_path: Path) -> None:
    """After choosing another collection the first screen still marked the server's one
    "answering from this" and suggested its questions, which then went to the other one."""
    settings = Settings(data_dir=tmp_path / "data", api_key=None, tier="unlimited")
    for name, text in [("corpus", "# Garage\n\nThe garage opens at 6 am.\n"), ("canteen", "# Lunch\n\nAt noon.\n")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.md").write_text(text)
        assert ingest_paths([tmp_path / name], settings, OfflineProvider(), collection=name).exit_code == 0
    handlers = Handlers(settings, Backend.build(settings, OfflineProvider()))
    state, other = SessionState(), SessionState()
    assert "data-collection='corpus'><div class='card-head'><b>corpus</b><span class='badge'>" in \
        handlers.load(state)[0]
    chat = handlers.choose_collection("canteen", state)
    assert "<b>canteen</b><span class='badge'>" in chat and "<b>corpus</b><span class='badge'>" not in chat
    assert "“Lunch”" in chat and "“Garage”" not in chat  # the suggested questions are the canteen's
    assert "<b>corpus</b><span class='badge'>" in handlers.chat(other)  # another tab keeps its own
    assert "which holds no documents yet" in handlers.choose_collection("new-one", state)
    # a name no collection may have is refused on the first screen, not when asking (UI walkthrough)
    refused = handlers.choose_collection("Team Docs", state)
    assert "Collection name &#x27;Team Docs&#x27; is not allowed" in refused and "no documents yet" not in refused


def test_a_source_that_cannot_be_opened_says_why_in_the_viewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PDF damaged since it was ingested raised out of the click: an "Error" box covered the
    chat and the viewer stayed empty."""
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "badges.pdf", PDF_PAGES)
    handlers = handlers_over(folder, tmp_path)
    state = SessionState()
    list(handlers.respond(BADGE, state, "corpus", "hybrid", 4, ""))
    (folder / "badges.pdf").write_bytes(b"not a pdf any more")
    _, _, image, viewer, drawer, *_ = click(handlers, state, 0, "cite", "1")
    assert "badges.pdf cannot be read now: Failed to load document" in viewer and not image["visible"]
    assert "<mark>The office badge is collected" in viewer and drawer["open"]  # the passage itself still shows

    (folder / "badges.pdf").unlink()
    gone = click(handlers, state, 0, "cite", "1")[3]
    assert "badges.pdf is no longer where it was ingested from (moved or deleted)" in gone
    assert str(tmp_path) not in gone  # the server's folders are not told to whoever reads the answer

    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("ui.preview.pdf_page", broken)
    assert "RuntimeError: a bug" in click(handlers, state, 0, "cite", "1")[3]


def test_a_cited_sentence_with_emphasis_in_the_file_is_marked_alone(tmp_path: Path) -> None:
    """A bullet's "**Traffic**: …" is split as "Traffic: …": not found as written, the whole
    passage was marked instead of the one sentence."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "signals.md").write_text(
        "# Signals\n\n- **Traffic**: questions per minute, split by `route`.\n"
        "- **Errors**: failed answers per minute, split by cause.\n"
    )
    _, viewer = open_first_source(folder, tmp_path, "What is traffic split by?")
    assert viewer.count("<mark>") == 1
    assert "<mark><strong>Traffic</strong>: questions per minute, split by <code>route</code>.</mark>" in viewer


def test_a_giant_page_is_drawn_within_the_pixel_cap_for_ingest_and_the_viewer(tmp_path: Path) -> None:
    """A PDF states its own page size: a 7,200-point page rendered at the viewer's or the
    scans' scale made a multi-gigabyte bitmap in the server on each click of a citation."""
    from fpdf import FPDF

    from ingest.loaders import MAX_RENDER_PIXELS, _render

    pdf = FPDF(unit="pt", format=(7200, 7200))
    pdf.add_page()
    pdf.set_font("helvetica", size=24)
    pdf.text(72, 100, "Hotel stays are capped at three nights per trip for the bigpage policy.")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "big.pdf").write_bytes(bytes(pdf.output()))
    settings = Settings(data_dir=tmp_path / "data", api_key=None)
    provider = OfflineProvider()
    ingest_paths([folder], settings, provider)
    [chunk] = list(Store(settings, provider.embedding_id).chunks())
    shown = preview.pdf_page(settings, settings.collection, chunk, "Hotel stays are capped at three nights per trip")
    assert shown.found
    with Image.open(shown.image) as drawn:
        assert drawn.width * drawn.height <= MAX_RENDER_PIXELS
        assert highlighted_pixels(shown.image) > 500  # the boxes drawn where the sentence is, at that scale
    scan = _render((folder / "big.pdf").read_bytes(), 1, 200)
    assert scan is not None and scan.pixels <= MAX_RENDER_PIXELS


def test_a_key_limited_to_collections_sees_asks_and_adds_to_those_only(ui_settings: Settings, tmp_path: Path) -> None:
    """The mounted UI showed every collection to every logged-in key, answered from any name
    typed into the collection box and added files to it: a key's collections bound it here
    as they bind the API."""
    from types import SimpleNamespace

    from rag.server.auth import Caller

    keys = {"alice": Caller("alice", "ingest", frozenset({"corpus"})),
            "bob": Caller("bob", "ingest", frozenset({"team-x"}))}
    handlers = Handlers(ui_settings, Backend.build(ui_settings, OfflineProvider()), keys.get)
    alice, bob = SimpleNamespace(username="alice"), SimpleNamespace(username="bob")
    _, alice_sees = handlers.corpus(alice)
    bob_panel, bob_sees = handlers.corpus(bob)
    assert alice_sees["choices"] == ["corpus"] and bob_sees["choices"] == ["team-x"]
    assert "corpus" not in bob_panel
    alice_state, bob_state = SessionState(), SessionState()
    alice_first, *_ = handlers.load(alice_state, alice)
    bob_first, *_, bob_choices = handlers.load(bob_state, bob)  # the same handlers: every user's page load
    assert "corpus" in alice_first and "corpus" not in bob_first
    assert "corpus" in handlers.chat(alice_state)  # still, after bob's page load
    assert bob_state.collection == bob_choices["value"] == "team-x"  # not the server's, which bob cannot ask
    state = SessionState()
    *_, refused_chat = handlers.respond(BADGE, state, "corpus", "hybrid", 4, "", request=bob)
    assert "may not use collection" in refused_chat[0]
    assert state.turn(0).error == "Key 'bob' may not use collection 'corpus'; its collections: team-x."
    assert state.turn(0).record is None  # nothing retrieved, nothing answered
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nThe badge office moved to the third floor.\n")
    refused, *_ = handlers.upload([str(note)], "corpus", SessionState(), request=bob)
    assert "may not use collection 'corpus'; its collections: team-x." in refused
    assert "note.md" not in {c.source for c in Store(ui_settings, OfflineProvider.embedding_id, "corpus").chunks()}
    *_, answered = handlers.respond(BADGE, SessionState(), "corpus", "hybrid", 4, "", request=alice)
    assert "badge" in answered[0].lower() and "may not use" not in answered[0]
