"""Reading what has no text layer: figures described and scanned pages transcribed by the
cheap Gemini model when there is a key, scans read by Tesseract (ingest.ocr) offline.

The loaders ask a `Vision` for text and get None when nothing here can read the image; they
then list what was left out and why (`unread_reason`). Every Gemini call is reported through
`on_call` with its model and usage, so ingest prices it like its embeddings, and its attempts
that got no reply (a timeout, a dropped connection) through `on_lost`, since Google may have
billed them. A dry run's Vision (`estimate=True`) calls nothing: it counts what the run would
send and returns a placeholder of a description's typical length, so the chunks are counted too.

What the model said about an image is kept in the cache store (`descriptions`, keyed by
model, instruction and the image's bytes), so a PDF saved again with one word changed does
not pay for its figures twice, and a dry run does not count what is already known.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING

from ingest import ocr
from rag.errors import ChargeAbandoned, charging_lost
from rag.kv import KV, Table, Tolerant, open_kv
from rag.providers.base import Generator
from rag.settings import Settings
from rag.types import Attachment, Prompt, Usage

if TYPE_CHECKING:
    from PIL.Image import Image as PilImage

DESCRIBE = (
    "Describe this figure from a document for a search index: what it shows, every label, "
    "number and caption you can read, and what it says. Plain prose, no preamble."
)
TRANSCRIBE = (
    "Transcribe this scanned document page exactly: every word in reading order, headings on "
    "their own lines, tables as lines of cells. No commentary."
)
PAGE_OUTPUT_TOKENS = 800  # a dry run's guess at one transcribed page (a full page of prose)
GEMINI_INLINE_BYTES = 20 * 1024 * 1024  # the API's limit on one request with inline data
NO_KEY = "set GEMINI_API_KEY to have Gemini read it"
DESCRIPTIONS = Table("descriptions", None, 100_000)  # kept until evicted: an image's text does not go stale


OnCall = Callable[[str, Usage], None]


def configured_reader(settings: Settings) -> Generator | None:
    """The generator that reads images for a run outside a session (the CLI, the worker):
    Gemini with a key; offline none is built, as the offline answerer cannot see."""
    if not settings.online:
        return None
    from rag.providers import get_generator

    return get_generator(settings)


@dataclass(frozen=True)
class Image:
    """An image to read, with its size in pixels (for the size threshold)."""

    blob: Attachment
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


class Vision:
    def __init__(
        self,
        settings: Settings,
        generator: Generator | None,
        *,
        estimate: bool = False,
        on_call: OnCall | None = None,
        on_lost: ChargeAbandoned | None = None,
        before_call: OnCall | None = None,
    ) -> None:
        """`on_call`: each call that answered, with its model and usage; `on_lost`: its attempts
        that got no reply, which may have been billed though the call answered or failed;
        `before_call`: each call's worst case before it is sent (the budgets may refuse it)."""
        self.settings = settings
        # Only Gemini sees images: the offline generator's answers are extractive.
        self.generator = generator if generator is not None and generator.online else None
        self.estimate = estimate
        self.on_call = on_call
        self.on_lost = on_lost
        self.before_call = before_call
        self.tesseract = self.generator is None and ocr.available()
        self._lock = threading.Lock()
        self._known: KV | None = None

    @property
    def describes(self) -> bool:
        return self.generator is not None

    @property
    def identity(self) -> str:
        """What reads images in this run, and how: a file nothing here could read (a photo
        offline) is read again once that changes (a key set, Tesseract installed, another
        OCR setting), and not before (ingest.manifest, `refusals`)."""
        s = self.settings
        if self.generator is not None:
            return f"gemini {s.lite_model} {s.figure_min_pixels} {s.figure_max_output_tokens}"
        if self.tesseract:
            return f"tesseract {s.ocr_languages} {s.ocr_min_confidence:g} {s.ocr_min_words} {s.scan_dpi}"
        return "none"

    @property
    def unread_reason(self) -> str:
        """Why a page without a text layer could not be read here."""
        return f"no text layer, and no OCR: {ocr.INSTALL_HINT}, or {NO_KEY}"

    def worth_describing(self, image: Image) -> bool:
        return self.describes and image.pixels >= self.settings.figure_min_pixels

    def describe(self, image: Image) -> str | None:
        """A description of a figure, or None without a key or when the model gave none."""
        if self.generator is None:
            return None
        return self._ask(DESCRIBE, image, self.settings.figure_max_output_tokens)

    def read_page(self, image: Image) -> str | None:
        """The text of a scanned page: Gemini's transcription with a key, Tesseract's reading
        offline when it is installed, else None."""
        if self.generator is not None:
            return self._ask(TRANSCRIBE, image, None)
        if not self.tesseract:
            return None
        return ocr.read_image(image.blob.data, self.settings.ocr_languages, self.settings.scan_dpi)

    def read_words(self, data: bytes) -> str | None:
        """The printed words of an image file offline (a screenshot, a diagram's labels), as
        Tesseract reads them with confidence (`ocr_min_confidence`), one line per line; ""
        when fewer than `ocr_min_words` are legible (a photo); None without Tesseract.
        Raises OSError when `data` is not an image."""
        if not self.tesseract:
            return None
        lines = ocr.legible_words(grey_on_white(data), self.settings.ocr_languages, self.settings.ocr_min_confidence)
        if sum(len(line) for line in lines) < self.settings.ocr_min_words:
            return ""
        return "\n".join(" ".join(line) for line in lines)

    def _ask(self, instruction: str, image: Image, max_output_tokens: int | None) -> str | None:
        assert self.generator is not None
        model = self.settings.lite_model
        key = hashlib.sha256(f"{model}\0{instruction}\0".encode() + image.blob.data).hexdigest()
        known = self.known.get(DESCRIPTIONS, key)
        if known is not None:
            return known.decode()
        prompt = Prompt.of(instruction, images=(image.blob,), max_output_tokens=max_output_tokens)
        # Its worst case, as a call abandoned without a reply is charged (Prompt.estimated_tokens).
        worst = Usage(prompt_tokens=prompt.estimated_tokens, output_tokens=max_output_tokens or PAGE_OUTPUT_TOKENS)
        if self.estimate:
            self._charge(model, worst)
            return "x " * worst.output_tokens  # stands in for the text, so the dry run counts its chunks
        if self.before_call is not None:
            self.before_call(model, worst)
        with charging_lost(self._lose):
            generation = self.generator.generate(prompt, model=model)
        self._charge(generation.model, generation.usage)
        self._lose(generation.model, generation.abandoned)
        text = generation.text.strip()
        if text:
            self.known.put(DESCRIPTIONS, key, text.encode())
        return text or None

    @property
    def known(self) -> KV:
        """Descriptions already paid for; a store that fails only costs the saving."""
        if self._known is None:
            self._known = Tolerant(open_kv(self.settings, "cache"), "cache")
        return self._known

    def _charge(self, model: str, usage: Usage) -> None:
        if self.on_call is not None:
            with self._lock:
                self.on_call(model, usage)

    def _lose(self, model: str, attempts: Sequence[Usage]) -> None:
        if self.on_lost is not None and attempts:
            with self._lock:
                self.on_lost(model, attempts)


def image_of(data: bytes) -> Image:
    """An image's bytes as an `Image`; formats Gemini does not take inline (TIFF, JPEG 2000,
    GIF, a PDF's raw bitmaps) are re-encoded as PNG. Raises OSError when it is not an image."""
    from PIL import Image as Pil

    with Pil.open(BytesIO(data)) as picture:
        if picture.format in ("PNG", "JPEG", "WEBP"):
            return Image(Attachment(f"image/{picture.format.lower()}", data), *picture.size)
        return png_of(picture)


def grey_on_white(data: bytes) -> bytes:
    """An image file as a greyscale PNG for Tesseract, transparency laid on white: dark text
    on a transparent background (a screenshot's, a logo's) would otherwise read as black."""
    from PIL import Image as Pil

    with Pil.open(BytesIO(data)) as picture:
        rgba = picture.convert("RGBA")
    flat = Pil.new("RGBA", rgba.size, "white")
    flat.alpha_composite(rgba)
    out = BytesIO()
    flat.convert("L").save(out, "PNG")
    return out.getvalue()


def png_of(picture: PilImage) -> Image:
    """A PIL image encoded as PNG (CMYK and other modes PNG cannot hold go through RGB)."""
    if picture.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        picture = picture.convert("RGB")
    out = BytesIO()
    picture.save(out, "PNG")
    return Image(Attachment("image/png", out.getvalue()), *picture.size)
