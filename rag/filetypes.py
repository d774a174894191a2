"""The file types the product reads, by extension, and how each is read (ingest's loaders).

In the core, not in ingest: the router recognises a file name in a question by its
extension, and the API refuses an upload it could not read before queuing it, and neither
may import ingest, which builds on the core.
"""

from __future__ import annotations

SUPPORTED = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
    ".pptx": "pptx",
    # Described by Gemini with a key (ingest.vision); offline, Tesseract reads their printed words.
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".webp": "image",
}
