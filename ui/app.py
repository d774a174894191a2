"""The page: the conversation with its composer; a drawer (the right sidebar, an overlay on a
phone) with the open answer's sources and the source viewer, the documents and the settings."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from rag.backend import Backend
from rag.server.mounts import CallerOf
from rag.settings import Settings
from ui import browser_copies, render, security, source_images
from ui.handlers import SOURCES_TAB, Handlers
from ui.session import SessionState

HERE = Path(__file__).parent
PAGE_JS = (HERE / "page.js").read_text(encoding="utf-8")  # the chat's and the sources' buttons
UPLOAD_JS = (HERE / "upload.js").read_text(encoding="utf-8")  # names the files picked for upload
CSS = (HERE / "page.css").read_text(encoding="utf-8")
# Rules for Gradio's outer frame, which its scoped `css` cannot reach: less padding on a phone,
# and on a wide screen room for the open drawer. Gradio measures that room once, when the page
# mounts, before the content has its width, so the chat could end up under the drawer. Beside
# the chat the drawer takes at most half the window, and below 1024 px, where Gradio's page is
# 768 px wide and centred, the page moves left while it is open: at 900 px the 520 px drawer
# left the chat a 186 px column beside 98 px of empty margin.
DRAWER_PX = 520
DRAWER_WIDTH = f"min({DRAWER_PX}px, 50vw)"
OPEN = ":has(.sidebar.open.right)"
HEAD = (
    "<style>@media (max-width: 640px) { .app { padding-left: 8px !important; padding-right: 8px !important; } }"
    f"@media (min-width: 769px) {{ #drawer.sidebar.right {{ width: {DRAWER_WIDTH} !important; "
    f"right: calc(-1 * {DRAWER_WIDTH}) !important; }} .sidebar-parent{OPEN} {{ padding-right: "
    f"max(0px, calc({DRAWER_WIDTH} - 2px - (100vw - min(980px, 100vw)) / 2)) !important; }} }}"
    f"@media (min-width: 769px) and (max-width: 1023px) {{ .gradio-container{OPEN} {{ margin-left: 0 !important; }} "
    f".sidebar-parent{OPEN} {{ padding-right: max(0px, calc({DRAWER_WIDTH} - 2px - (100vw - 768px))) !important; }} }}"
    "</style>"
)
IMAGE_LABEL = "Image to ask about (optional): Gemini reads it with your documents"
IMAGE_OFFLINE = "Images need a Gemini key: the offline answerer reads text only"
AUTOMATIC_MODEL = "Automatic: Flash, Pro for long contexts"
OFFLINE_MODEL = "The extractive answerer (offline)"  # offline, "Automatic: Flash, Pro..." named models it never calls
SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
# Our own theme: an indigo accent instead of Gradio's orange, system fonts (a web font would be
# a fetch from another origin), and focus rings strong enough to see.
THEME = gr.themes.Base(
    primary_hue=gr.themes.colors.indigo,
    secondary_hue=gr.themes.colors.slate,
    neutral_hue=gr.themes.colors.slate,
    radius_size=gr.themes.sizes.radius_md,
    font=SYSTEM_FONTS,
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
).set(
    body_background_fill="#f6f7fb",
    block_border_width="1px",
    button_primary_background_fill="*primary_600",
    button_primary_background_fill_hover="*primary_700",
    button_primary_text_color="white",
    input_border_color_focus="*primary_500",
)


def create_app(settings: Settings) -> gr.Blocks:
    """The app as `python -m ui` serves it: the generator the key chooses, and one set of
    stores, ledger and chain shared by every browser session, its local model loaded before
    the first question."""
    backend = Backend.build(settings)
    backend.warm_up()
    return build_app(settings, backend)


def build_app(settings: Settings, backend: Backend, caller_of: CallerOf | None = None) -> gr.Blocks:
    """`caller_of`: a logged-in user's key (its role and collections), when the API server
    mounts the app with keys configured (rag.server.mounts); None serves everyone as the
    local user."""
    browser_copies.use_for_gradio(settings)  # before any component exists: each reads it (page images too)
    handlers = Handlers(settings, backend, caller_of)
    generator = backend.generator
    with gr.Blocks(title="gemrag: ask your documents") as demo:
        state = gr.State(lambda: SessionState())  # called per page load: one session per tab
        with gr.Row(elem_id="topbar", equal_height=True):
            gr.HTML("<h1>gemrag <span>ask your documents</span></h1>", elem_id="brand", js_on_load=None)
            totals = gr.HTML(elem_id="totals", js_on_load=None)  # filled per session on page load
        gr.Markdown(render.OFFLINE_LINE, visible=not settings.online, elem_id="offline-banner")
        chat = gr.HTML(elem_id="chat", js_on_load=PAGE_JS)
        with gr.Group(visible=False, elem_id="feedback") as feedback:
            feedback_title = gr.Markdown(elem_id="feedback-title")
            with gr.Row():
                right_source = gr.Dropdown(label="The right source (optional)", choices=[], elem_id="feedback-source")
                comment = gr.Textbox(label="Comment (optional)", elem_id="feedback-comment", max_lines=4)
            with gr.Row():
                save = gr.Button("Save feedback", size="sm", elem_id="feedback-save")
                feedback_status = gr.Markdown(elem_id="feedback-status")
        with gr.Row(elem_id="composer", equal_height=True):
            question = gr.Textbox(
                label="Your question", show_label=False, elem_id="question", scale=8, autofocus=True, container=False,
                lines=1, max_lines=8, placeholder="Ask your documents (Shift+Enter: new line)",
            )
            ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=84)
            stop = gr.Button("Stop", variant="secondary", elem_id="stop", scale=1, min_width=84, visible=False)
        with gr.Row(elem_id="extras"):
            new_chat = gr.Button("New chat", size="sm", variant="secondary", elem_id="new-chat")
            image = gr.Image(
                label=IMAGE_LABEL if generator.online else IMAGE_OFFLINE, elem_id="attach", type="filepath",
                sources=["upload"], interactive=generator.online, height=110, buttons=[],
            )
        with (
            gr.Sidebar(position="right", open=False, width=DRAWER_PX, elem_id="drawer", label="Sources") as drawer,
            gr.Tabs() as tabs,
        ):
            with gr.Tab("Sources", elem_id="tab-sources", id=SOURCES_TAB):
                viewer = gr.HTML(elem_id="viewer", js_on_load=None)  # the opened source first: it was asked for
                # HTML, not gr.Image: Gradio would link the image by its path on the server.
                page_image = gr.HTML(elem_id="page-image", visible=False, js_on_load=None)
                sources = gr.HTML(render.sources_html(None, None), elem_id="sources", js_on_load=PAGE_JS)
                details = gr.HTML(elem_id="details", js_on_load=None)
            with gr.Tab("Documents", elem_id="tab-corpus"):
                corpus = gr.HTML(elem_id="corpus", js_on_load=None)  # filled on page load: ingest may have run
                upload = gr.File(
                    label=f"Add documents (up to {settings.max_upload_mb:g} MB each)",
                    file_count="multiple", file_types=handlers.upload_types(), elem_id="upload",
                )
                upload_status = gr.Markdown(elem_id="upload-status")
                picked = gr.HTML(elem_id="upload-watch", js_on_load=UPLOAD_JS, visible="hidden")
                refresh = gr.Button("Refresh", size="sm")
            with gr.Tab("Settings", elem_id="tab-settings"):
                collection = gr.Dropdown(
                    label="Collection", choices=[settings.collection],
                    value=settings.collection, elem_id="collection", allow_custom_value=True,
                )
                mode = gr.Radio(["hybrid", "vector", "bm25"], value=settings.retrieval_mode, label="Retrieval")
                top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages per answer (top-k)")
                models = dict.fromkeys([generator.flash_model, generator.pro_model])
                model = gr.Dropdown(
                    label="Model",
                    choices=[(AUTOMATIC_MODEL, ""), *models] if generator.online else [(OFFLINE_MODEL, "")],
                    value="", interactive=generator.online,
                    info=None if generator.online else "Offline mode has one model: the extractive answerer.",
                )

        panel = [details, sources, page_image, viewer, drawer, tabs]
        form = [feedback, feedback_title, right_source, comment]
        # An event's progress shows on what it fills, never on the drawer: that wraps the whole page,
        # which went blank under "queue: 1/1" while another session's answer streamed.
        gr.on([question.submit, ask.click], handlers.respond,
              [question, state, collection, mode, top_k, model, image],
              [chat, question, ask, stop, image, *panel, totals], concurrency_limit=settings.ui_concurrency,
              show_progress_on=[chat])
        stop.click(handlers.stop, [state], [chat], concurrency_limit=None)
        chat.select(handlers.act, [state], [*panel, *form], show_progress_on=[viewer])
        sources.select(handlers.act, [state], [*panel, *form], show_progress_on=[viewer])
        save.click(handlers.save_feedback, [state, comment, right_source], [feedback_status])
        new_chat.click(handlers.new_chat, [state], [chat, *panel, feedback], show_progress_on=[chat])
        # Its progress shows on the status alone: on every output, it greyed the conversation,
        # answers asked meanwhile too, for the whole ingest (UI walkthrough).
        upload.upload(handlers.upload, [upload, collection, state], [upload_status, corpus, collection, upload, chat],
                      show_progress_on=[upload_status])
        picked.picked(handlers.picked, [state], [upload_status], concurrency_limit=None, show_progress="hidden")
        refresh.click(handlers.refresh, [state], [corpus, collection, chat])
        collection.change(handlers.choose_collection, [collection, state], [chat])
        demo.load(handlers.load, [state], [chat, totals, corpus, collection])
    assert isinstance(demo, gr.Blocks)  # what `with` gives back is untyped in gradio
    return demo


def launch(demo: gr.Blocks, settings: Settings, host: str, port: int) -> None:
    demo.queue(default_concurrency_limit=settings.ui_concurrency).launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        theme=THEME,
        css=CSS,
        head=HEAD,
        max_file_size=settings.max_upload_bytes,
        show_error=False,
        footer_links=[],
        app_kwargs=security.app_kwargs(),
    )
    source_images.add_route(demo.app, settings)
