"""The page: chat on the left; the answer's sources, the corpus and the settings on the right."""

from __future__ import annotations

import gradio as gr

from rag.chain import Chain
from rag.providers import get_provider
from rag.settings import Settings
from ui import browser_copies, render, security
from ui.handlers import Handlers
from ui.session import SessionState

CSS = """
.gr-totals { display: flex; flex-wrap: wrap; gap: 6px; }
.gr-stat { flex: 1 1 90px; border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 4px 8px; }
.gr-stat span { display: block; font-size: 0.75em; opacity: 0.7; }
.gr-sources ul { padding-left: 1em; margin: 4px 0; }
.gr-sources li.uncited { opacity: 0.6; }
.gr-q { font-weight: 600; margin-bottom: 4px; }
.gr-score { font-size: 0.8em; opacity: 0.7; }
.gr-passage blockquote { white-space: pre-wrap; max-height: 320px; overflow-y: auto; margin: 6px 0;
  border-left: 3px solid var(--color-accent); padding-left: 8px; }
.gr-details { font-size: 0.9em; }
.gr-details th, .gr-details td { padding: 2px 8px; border: none; }
.gr-details th { text-align: left; font-weight: 600; white-space: nowrap; }
.gr-corpus td, .gr-corpus th { padding: 2px 8px; }
"""


def create_app(settings: Settings) -> gr.Blocks:
    """The app as `python -m ui` serves it: the configured provider behind one shared chain."""
    return build_app(settings, Chain(settings, get_provider(settings)))


def build_app(settings: Settings, chain: Chain) -> gr.Blocks:
    browser_copies.use_for_gradio(settings)  # before any component exists: each reads it
    handlers = Handlers(settings, chain)
    with gr.Blocks(title="gemrag: ask your documents") as demo:
        state = gr.State(lambda: SessionState())  # called per page load: one session per tab
        gr.Markdown("## gemrag · ask your documents")
        gr.Markdown(render.OFFLINE_BANNER, visible=not settings.online, elem_id="offline-banner")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(
                    label="Chat", elem_id="chat", height=540, sanitize_html=True, allow_tags=False,
                    latex_delimiters=[], feedback_options=None, buttons=["copy"],
                    placeholder="Ask about your documents. Answers cite their sources as [n].",
                )
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask a question about your documents", show_label=False,
                        elem_id="question", scale=6, autofocus=True,
                    )
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=70)
                    stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=1, min_width=70)
                totals = gr.HTML(elem_id="totals")  # filled per session on page load
            with gr.Column(scale=2), gr.Tabs():
                with gr.Tab("Sources", elem_id="tab-sources"):
                    details = gr.HTML(elem_id="details")
                    sources = gr.HTML(render.sources_html(None), elem_id="sources")
                    picker = gr.Radio(label="Show passage", choices=[], elem_id="citations")
                    passage = gr.HTML(elem_id="passage")
                with gr.Tab("Corpus", elem_id="tab-corpus"):
                    corpus = gr.HTML(elem_id="corpus")  # filled on page load: ingest may have run since
                    upload = gr.File(
                        label=f"Add documents (up to {settings.max_upload_mb:g} MB each)",
                        file_count="multiple", file_types=handlers.upload_types(), elem_id="upload",
                    )
                    upload_status = gr.Markdown(elem_id="upload-status")
                    refresh = gr.Button("Refresh", size="sm")
                with gr.Tab("Settings", elem_id="tab-settings"):
                    collection = gr.Dropdown(
                        label="Collection", choices=[settings.collection],
                        value=settings.collection, elem_id="collection", allow_custom_value=True,
                    )
                    mode = gr.Radio(["hybrid", "vector", "bm25"], value=settings.retrieval_mode, label="Retrieval")
                    top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages per answer (top-k)")
                    models = dict.fromkeys([chain.provider.flash_model, chain.provider.pro_model])
                    model = gr.Dropdown(
                        label="Model",
                        choices=[("Automatic: Flash, Pro for long contexts", ""), *models],
                        value="", interactive=chain.provider.online,
                        info=None if chain.provider.online else "Offline mode has one model: the extractive answerer.",
                    )

        panel = [details, sources, picker, passage]
        gr.on([question.submit, ask.click], handlers.respond, [question, state, collection, mode, top_k, model],
              [chat, question, *panel, totals], concurrency_limit=settings.ui_concurrency)
        stop.click(handlers.stop, [state], [chat], concurrency_limit=None)
        chat.select(handlers.select_answer, [state], panel)
        chat.clear(handlers.clear, [state], [*panel, totals])
        picker.input(handlers.show_passage, [picker, state], [passage])
        upload.upload(handlers.upload, [upload, collection], [upload_status, corpus, collection])
        refresh.click(handlers.corpus, None, [corpus, collection])
        demo.load(handlers.totals, [state], [totals])
        demo.load(handlers.corpus, None, [corpus, collection])
    return demo


def launch(demo: gr.Blocks, settings: Settings, host: str, port: int) -> None:
    demo.queue(default_concurrency_limit=settings.ui_concurrency).launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        css=CSS,
        max_file_size=int(settings.max_upload_mb * 1_000_000),
        show_error=False,
        app_kwargs=security.app_kwargs(),
    )
