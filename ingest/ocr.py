"""Offline reading of scanned pages with Tesseract, an OCR engine we call, not write.

The `tesseract` command (Debian: `apt-get install tesseract-ocr`) is run on each page image
through a pipe. The CLI rather than a Python wrapper: pytesseract would only run the same
command through temporary files, and one fewer dependency is one fewer thing to install.
"""

from __future__ import annotations

import shutil
import subprocess

OCR_TIMEOUT_S = 120.0  # one page; a stuck process must not hang the run
INSTALL_HINT = "install Tesseract (Debian: apt-get install tesseract-ocr) to read scans offline"


class OcrError(Exception):
    """Tesseract ran and failed on a page; the message says how."""


def available() -> bool:
    return shutil.which("tesseract") is not None


def read_image(image: bytes, languages: str, dpi: int) -> str:
    """The text Tesseract reads in a PNG (or any image format it knows)."""
    command = ["tesseract", "stdin", "stdout", "-l", languages, "--dpi", str(dpi)]
    try:
        done = subprocess.run(command, input=image, capture_output=True, timeout=OCR_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OcrError(f"Tesseract took over {OCR_TIMEOUT_S:g} s on one page") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OcrError(f"Tesseract failed: {message[-1] if message else f'exit status {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace")
