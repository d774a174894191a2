"""Images and scans through `python -m ingest`: with a key (the fake Gemini), figures in PDFs
and image files are described by the Flash-Lite model, stored as figure chunks and cited as
"p. 1, figure", and scanned pages transcribed, each call priced in the run's cost; offline,
Tesseract reads scanned pages when installed, and what cannot be read is listed as skipped."""

import shutil

import pytest

from ingest.cli import main
from ingest.spending import ledger_session
from rag import cli as rag_cli
from rag.chain import Chain
from rag.costs import Ledger, price_usd
from rag.providers.gemini import GeminiProvider
from rag.store import Store
from rag.testing.fake_gemini import IMAGE_TOKENS, count_tokens, inline_images
from rag.types import Usage, estimate_tokens
from tests.fakes import media
from tests.ingest.conftest import billed_tokens

GENERATE = "generateContent"
FIGURE_TEXT = "Figure: An image of 300x240 pixels, mostly #ff0000."


def _image_calls(fake_gemini):
    return [r for r in fake_gemini.calls(GENERATE) if inline_images(r.body)]


def _ingest(settings, provider, folder, *extra):
    """The CLI, with `provider` as embedder and as the session's generator."""
    argv = [str(folder), "--data-dir", str(settings.data_dir), "-q", *extra]
    return main(argv, embedder=provider, generator=provider)


def _chunks(settings, provider):
    return {(c.source, c.page, c.kind): c for c in Store(settings, provider.embedding_id).chunks()}


def test_an_image_in_a_pdf_becomes_a_cited_figure_chunk(tmp_path, gemini_settings, fake_gemini, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    media.pdf_with_figure(docs / "report.pdf", "Sales report. The chart below shows the quarter.")
    (docs / "logo.png").write_bytes(media.png((64, 48), (0, 128, 0)))
    provider = GeminiProvider(gemini_settings)

    assert _ingest(gemini_settings, provider, docs) == 0

    calls = _image_calls(fake_gemini)
    assert len(calls) == 2  # the red figure and the PNG file; the 20 px icon is under the threshold
    assert {c.model for c in calls} == {gemini_settings.lite_model}
    sent = [data for c in calls for _, data in inline_images(c.body)]
    assert media.png((64, 48), (0, 128, 0)) in sent  # an image file goes as it is
    chunks = _chunks(gemini_settings, provider)
    figure = chunks[("report.pdf", 1, "figure")]
    assert figure.text == FIGURE_TEXT and figure.place == "p. 1, figure"
    assert chunks[("report.pdf", 1, "text")].text.startswith("Sales report.")
    assert chunks[("logo.png", None, "figure")].text == "Figure: An image of 64x48 pixels, mostly #008000."
    out = capsys.readouterr().out
    assert "figures and scans read by Gemini" in out

    record = Chain(gemini_settings, provider).ask("What does the image of 300x240 pixels, mostly red, show?")
    cited = {c.place: c for c in record.citations}
    assert cited["p. 1, figure"].source == "report.pdf"
    assert " report.pdf p. 1, figure" in rag_cli.describe(record)


def test_figure_calls_are_priced_in_the_run_and_estimated_by_a_dry_run(tmp_path, gemini_settings, fake_gemini):
    from ingest.pipeline import ingest_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    media.pdf_with_figure(docs / "report.pdf", "Sales report.")
    provider = GeminiProvider(gemini_settings)

    dry = ingest_paths([docs], gemini_settings, provider, dry_run=True, generator=provider)
    assert _image_calls(fake_gemini) == [] and dry.vision_calls == 1
    embed_price = gemini_settings.models[gemini_settings.embedding_model].price.input / 1e6
    assert dry.cost_usd > dry.tokens * embed_price  # the figure's estimate is in the total
    from ingest.vision import DESCRIBE
    from rag.types import IMAGE_TOKENS as HELD_PER_IMAGE

    # The image at the count an abandoned attempt is charged (it was 258 a 768-pixel tile, Gemini 2.5's rule).
    assert dry.vision_tokens == estimate_tokens(DESCRIBE) + HELD_PER_IMAGE + gemini_settings.figure_max_output_tokens

    report = ingest_paths([docs], gemini_settings, provider, generator=provider)
    usage = Usage(count_tokens(DESCRIBE) + IMAGE_TOKENS, count_tokens(FIGURE_TEXT.removeprefix("Figure: ")))
    assert report.vision_calls == 1 and report.vision_tokens == usage.total_tokens
    vision_usd = price_usd(gemini_settings, gemini_settings.lite_model, usage)
    assert report.cost_usd == pytest.approx(billed_tokens(fake_gemini) * embed_price + vision_usd)
    assert vision_usd > 0
    # Both calls are in the ledger, as the run charged them: the figure and the embeddings.
    spent = Ledger(gemini_settings).models(ledger_session("corpus"))
    assert spent[gemini_settings.lite_model].cost_usd == pytest.approx(vision_usd)
    assert spent[gemini_settings.embedding_model].usage.prompt_tokens == billed_tokens(fake_gemini)


def test_a_scanned_page_is_transcribed_by_gemini(tmp_path, gemini_settings, fake_gemini):
    docs = tmp_path / "docs"
    docs.mkdir()
    media.scanned_pdf(docs / "minutes.pdf", "Board minutes, typed page.")
    fake_gemini.reply("The board approved the budget for the new warehouse.")
    provider = GeminiProvider(gemini_settings)

    assert _ingest(gemini_settings, provider, docs) == 0

    (call,) = _image_calls(fake_gemini)  # the scan is transcribed, not also described as a figure
    ((mime, page),) = inline_images(call.body)
    assert mime == "image/png" and page.startswith(b"\x89PNG")
    assert "Transcribe" in call.body["contents"][0]["parts"][0]["text"]
    scanned = _chunks(gemini_settings, provider)[("minutes.pdf", 2, "text")]
    assert scanned.text == "The board approved the budget for the new warehouse."


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs Tesseract (apt-get install tesseract-ocr)")
def test_offline_tesseract_reads_a_scanned_page(tmp_path, settings, offline_provider):
    docs = tmp_path / "docs"
    docs.mkdir()
    media.scanned_pdf(docs / "invoice.pdf", None)

    assert _ingest(settings, offline_provider, docs) == 0

    (chunk,) = Store(settings, offline_provider.embedding_id).chunks()
    assert chunk.page == 1 and chunk.kind == "text"
    assert " ".join(chunk.text.split()) == media.SCANNED_WORDS


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs Tesseract (apt-get install tesseract-ocr)")
def test_a_word_a_scan_hyphenates_at_a_line_end_is_read_whole():
    """As a born-digital PDF's: "con-" over "figuration" was two pieces nothing matched."""
    from io import BytesIO

    from ingest import ocr

    png = BytesIO()
    media.text_picture("Settings go in an optional con-\nfiguration file, one per user.").save(png, format="PNG")
    read = ocr.read_image(png.getvalue(), "eng", 150)
    assert "optional configuration" in read and "con-" not in read


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs Tesseract (apt-get install tesseract-ocr)")
def test_offline_tesseract_reads_the_printed_words_of_an_image_file_and_skips_a_photo(
    tmp_path, settings, offline_provider, capsys
):
    docs = tmp_path / "docs"
    docs.mkdir()
    media.text_picture(media.SCANNED_WORDS).save(docs / "screenshot.png")
    media.photo().save(docs / "holiday.jpg")

    assert _ingest(settings, offline_provider, docs) == 0  # skipped is not failed

    (chunk,) = Store(settings, offline_provider.embedding_id).chunks()
    assert (chunk.source, chunk.kind, " ".join(chunk.text.split())) == ("screenshot.png", "text", media.SCANNED_WORDS)
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped holiday.jpg: an image with no printed words Tesseract can read (a photo?)" in out


def test_offline_without_ocr_scans_and_images_are_listed_as_skipped(
    tmp_path, settings, offline_provider, monkeypatch, capsys
):
    docs = tmp_path / "docs"
    docs.mkdir()
    media.scanned_pdf(docs / "invoice.pdf", None)
    media.scanned_pdf(docs / "mixed.pdf", "A typed first page about invoices.")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really decoded offline")
    (docs / "chart.webp").write_bytes(b"RIFF....WEBP")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no tesseract on PATH

    assert _ingest(settings, offline_provider, docs) == 0  # skipped is not failed

    out = " ".join(capsys.readouterr().out.split())
    assert "skipped invoice.pdf: page 1 skipped: no text layer, and no OCR: install Tesseract" in out
    assert "apt-get install tesseract-ocr" in out and "set GEMINI_API_KEY" in out
    assert "note mixed.pdf: page 2 skipped: no text layer" in out
    for image in ("photo.jpg", "chart.webp"):
        assert f"skipped {image}: an image: offline it has no text to index (set GEMINI_API_KEY" in out
    stored = {(c.source, c.page) for c in Store(settings, offline_provider.embedding_id).chunks()}
    assert stored == {("mixed.pdf", 1)}


def test_a_damaged_image_file_fails_with_the_reason(tmp_path, gemini_settings, fake_gemini, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    provider = GeminiProvider(gemini_settings)

    assert _ingest(gemini_settings, provider, docs) == 1

    assert "failed broken.png: not a readable image" in " ".join(capsys.readouterr().out.split())
    assert _image_calls(fake_gemini) == []


def test_a_spent_quota_while_describing_stops_the_run_and_the_rerun_describes_once(
    tmp_path, gemini_settings, fake_gemini
):
    from ingest.pipeline import ingest_paths
    from rag.testing.fake_gemini import Fault

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nThe chart is in the report.\n")
    media.pdf_with_figure(docs / "report.pdf", "Sales report.")
    provider = GeminiProvider(gemini_settings)
    fake_gemini.inject(Fault.rate_limited("0s"), times=None, method=GENERATE)

    stopped = ingest_paths([docs], gemini_settings, provider, generator=provider)

    assert stopped.exit_code == 2 and "quota" in (stopped.stopped or "").lower()
    assert "report.pdf" not in {c.source for c in Store(gemini_settings, provider.embedding_id).chunks()}
    fake_gemini.clear_faults()
    fake_gemini.clear_log()
    resumed = ingest_paths([docs], gemini_settings, provider, generator=provider)
    assert resumed.exit_code == 0 and resumed.vision_calls == 1 and len(_image_calls(fake_gemini)) == 1
    assert ("report.pdf", 1, "figure") in _chunks(gemini_settings, provider)


def test_a_changed_pdf_does_not_pay_again_for_the_figure_it_kept(tmp_path, gemini_settings, fake_gemini):
    from ingest.pipeline import ingest_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    media.pdf_with_figure(docs / "report.pdf", "Sales report, first draft.")
    provider = GeminiProvider(gemini_settings)
    assert ingest_paths([docs], gemini_settings, provider, generator=provider).vision_calls == 1
    media.pdf_with_figure(docs / "report.pdf", "Sales report, final version.")
    fake_gemini.clear_log()

    dry = ingest_paths([docs], gemini_settings, provider, dry_run=True, generator=provider)
    again = ingest_paths([docs], gemini_settings, provider, generator=provider)

    assert dry.vision_calls == again.vision_calls == 0 and _image_calls(fake_gemini) == []
    assert [f.status.value for f in again.files] == ["updated"]
    chunks = _chunks(gemini_settings, provider)
    assert chunks[("report.pdf", 1, "figure")].text == FIGURE_TEXT
    assert chunks[("report.pdf", 1, "text")].text.startswith("Sales report, final version.")


def _impatient_logo_run(tmp_path, gemini_settings):
    """An image file ingested by a client that stops waiting for a reply after a second (the
    fake's slow replies take 1.5 s): its description is the run's only generateContent call."""
    from ingest.pipeline import ingest_paths

    settings = gemini_settings.model_copy(update={"request_timeout_s": 1.0})
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "logo.png").write_bytes(media.png((64, 48), (0, 128, 0)))
    provider = GeminiProvider(settings)
    return ingest_paths([docs], settings, provider, generator=provider)


def test_a_figure_attempt_abandoned_on_timeout_is_charged_though_its_retry_answered(
    tmp_path, gemini_settings, fake_gemini
):
    """Google may serve and bill a call the client stopped waiting for: the ledger held only
    the retry's description."""
    from ingest.vision import DESCRIBE
    from rag.testing.fake_gemini import Fault
    from rag.types import IMAGE_TOKENS as HELD_PER_IMAGE

    lite = gemini_settings.lite_model
    fake_gemini.inject(Fault.slow(1.5), times=1, method=GENERATE, model=lite)

    report = _impatient_logo_run(tmp_path, gemini_settings)

    assert report.exit_code == 0 and report.vision_calls == 1 and len(_image_calls(fake_gemini)) == 2
    answered = fake_gemini.billed_for(lite, count=2)[-1]
    spent = Ledger(gemini_settings).models(ledger_session("corpus"))[lite]
    assert spent.calls == 2 and spent.usage.output_tokens == answered.output_tokens
    # The abandoned attempt on its prompt counted locally, its image at the bound gemrag holds
    # (more than the fake bills): a page sent and timed out was charged as if it had no page.
    assert spent.usage.prompt_tokens == answered.prompt_tokens + estimate_tokens(DESCRIBE) + HELD_PER_IMAGE
    assert report.cost_usd == pytest.approx(Ledger(gemini_settings).session(ledger_session("corpus")).cost_usd)


def test_a_figure_whose_every_attempt_timed_out_stops_the_run_and_each_attempt_is_charged(
    tmp_path, gemini_settings, fake_gemini
):
    from rag.testing.fake_gemini import Fault

    lite = gemini_settings.lite_model
    fake_gemini.inject(Fault.slow(1.5), times=None, method=GENERATE, model=lite)

    report = _impatient_logo_run(tmp_path, gemini_settings)

    attempts = len(_image_calls(fake_gemini))
    assert report.exit_code == 2 and "no answer before the request timeout" in (report.stopped or "")
    spent = Ledger(gemini_settings).models(ledger_session("corpus"))[lite]
    assert attempts >= 2 and (spent.calls, spent.usage.output_tokens) == (attempts, 0)
    assert report.cost_usd == pytest.approx(spent.cost_usd) and spent.cost_usd > 0


def test_a_budget_that_cannot_cover_a_figure_stops_the_run_before_the_call(tmp_path, gemini_settings, fake_gemini):
    """Ingest never checked a budget: with every budget at 0 it described figures and embedded
    on Gemini all the same, and an ingest key spent past its own limit."""
    from ingest.pipeline import ingest_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    media.pdf_with_figure(docs / "report.pdf", "Sales report.")
    spent = gemini_settings.model_copy(update={"daily_budget_usd": 0.0})
    provider = GeminiProvider(spent)

    stopped = ingest_paths([docs], spent, provider, generator=provider)

    assert stopped.exit_code == 2 and "daily budget would be exceeded" in (stopped.stopped or "")
    assert _image_calls(fake_gemini) == [] and fake_gemini.calls("batchEmbedContents") == []
    assert Ledger(spent).total().cost_usd == 0
