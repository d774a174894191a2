"""Offline reading of scanned pages with Tesseract, an OCR engine we call, not write.

The `tesseract` command (Debian: `apt-get install tesseract-ocr`) is run on each page image
through a pipe. The CLI rather than a Python wrapper: pytesseract would only run the same
command through temporary files, and one fewer dependency is one fewer thing to install.
"""

from __future__ import annotations

import shutil
import subprocess

from rag.text import rejoined

OCR_TIMEOUT_S = 120.0  # one page or image; a stuck process must not hang the run
INSTALL_HINT = "install Tesseract (Debian: apt-get install tesseract-ocr) to read scans offline"


class OcrError(Exception):
    """Tesseract ran and failed on a page; the message says how."""


def available() -> bool:
    return shutil.which("tesseract") is not None


def read_image(image: bytes, languages: str, dpi: int) -> str:
    """The text Tesseract reads in a PNG (or any image format it knows), a word a scanned
    page hyphenates at a line end ("con-" over "figuration") written whole (`rejoined`), as
    a born-digital PDF's is."""
    return rejoined(_tesseract(image, ["-l", languages, "--dpi", str(dpi)]), "-\n")


def legible_words(image: bytes, languages: str, min_confidence: float) -> list[list[str]]:
    """The words Tesseract reads in an image with `min_confidence` (0-100) or more, line by
    line (lines left with none are dropped). For an image file, not a scanned page: the
    image may be a photo or a chart, where Tesseract also "reads" shadows and tick marks,
    with low confidence. The resolution is left to Tesseract: a screenshot has none set."""
    table = _tesseract(image, ["-l", languages, "tsv"])
    lines: dict[tuple[str, ...], list[str]] = {}
    for row in table.splitlines()[1:]:  # level page block paragraph line word left top width height conf text
        cells = row.split("\t")
        if len(cells) == 12 and cells[11].strip() and float(cells[10]) >= min_confidence:
            lines.setdefault(tuple(cells[1:5]), []).append(cells[11].strip())
    return list(lines.values())


def _tesseract(image: bytes, options: list[str]) -> str:
    command = ["tesseract", "stdin", "stdout", *options]
    try:
        done = subprocess.run(command, input=image, capture_output=True, timeout=OCR_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OcrError(f"Tesseract took over {OCR_TIMEOUT_S:g} s on one image") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OcrError(f"Tesseract failed: {message[-1] if message else f'exit status {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace")
