"""Untrusted text made safe for the page: document text and model output both.

A PDF can contain `<script>` and a model can be talked into writing `<img onerror=...>` or a
Markdown image that phones home. Plain text is escaped. Markdown we render ourselves goes
without raw HTML, and an image is shown as the literal text the author wrote (it would load
from its host with no click); the result passes an allow-list sanitiser (nh3, the Rust
ammonia library: an allow-list HTML parser is not something to write ourselves), which
keeps links only to http(s) and mailto and makes them open with rel="noopener noreferrer".
Text for a Gradio Markdown component (rendered by Gradio, not by us) is made inert instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "em", "strong", "del", "a", "table", "thead", "tbody", "tr", "th", "td", "mark",
})
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_LINK_TARGET = re.compile(r"\](?=[(\[:])")


def _image_as_text(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = "".join(child.content for child in token.children or [])
    return escape(f"![{alt}]({token.attrGet('src') or ''})")


_MARKDOWN.add_render_rule("image", _image_as_text)


def text(value: str) -> str:
    """Plain text made inert for HTML (and for Markdown, which renders entities back)."""
    return escape(value, quote=True)


def inert_markdown(value: str) -> str:
    """Untrusted text for a Gradio Markdown component: `<`, `>` and `&` escaped, and no
    Markdown link, image, reference or definition left in it (each needs a `]` directly
    followed by `(`, `[` or `:`; an invisible word joiner goes between them). The text shows
    as written; a bare http(s) URL still becomes a link, followed only when clicked."""
    return _LINK_TARGET.sub("]\u2060", escape(value, quote=False))


def markdown(source: str) -> str:
    """Markdown rendered to sanitised HTML."""
    return sanitise(_MARKDOWN.render(source))


# An HTML page's extracted text: its headings, code blocks, lists and tables are written as
# Markdown (ingest.loaders), its prose is the page's own words: "__init__" and "a*b*c" are no
# emphasis, and "[the docs](https://...)" in a page's text is no link hiding its address.
_BLOCKS = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").disable(
    ["emphasis", "link", "image", "autolink"])


def block_markdown(source: str) -> str:
    """Markdown's blocks rendered to sanitised HTML, its text inline as written."""
    return sanitise(_BLOCKS.render(source))


def sanitise(fragment: str) -> str:
    """Allow-listed tags only, no attributes but a link's href; links open safely."""
    return nh3.clean(
        fragment,
        tags=set(TAGS),
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
