"""The Gradio chat UI."""

from rag import runtime  # noqa: F401  (must run before any ui module imports gradio)
