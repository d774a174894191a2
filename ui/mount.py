"""The chat UI on the API server: `python -m rag.server` finds this through the
`gemrag.mounts` entry point (pyproject.toml) and mounts it at /ui, so the server itself never
imports `ui/`. With API keys configured the UI asks for a login: the key's name and the key."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI
from starlette.routing import Mount

from rag.server.mounts import MountContext
from ui import security, source_images
from ui.app import CSS, HEAD, THEME, build_app

PATH = "/ui"


def mount(app: FastAPI, context: MountContext) -> None:
    settings = context.settings
    demo = build_app(settings, context.backend, context.caller_of)
    demo = demo.queue(default_concurrency_limit=settings.ui_concurrency)
    gr.mount_gradio_app(
        app,
        demo,
        path=PATH,
        auth=context.check_login,
        css=CSS,
        theme=THEME,
        head=HEAD,
        max_file_size=settings.max_upload_bytes,
        show_error=False,
        footer_links=[],  # as under python -m ui: no "Use via API" or Gradio's own Settings beside ours
        app_kwargs=security.app_kwargs(),
    )
    context.upload_paths.append(f"{PATH}/gradio_api/upload")  # Gradio's own upload route, as max_file_size allows
    source_images.add_route(_mounted(app), settings, context.caller_of)


def _mounted(app: FastAPI) -> FastAPI:
    """The Gradio app `mount_gradio_app` put at PATH: it gives back only the outer app."""
    for route in app.routes:
        if isinstance(route, Mount) and route.path == PATH and isinstance(route.app, FastAPI):
            return route.app
    raise RuntimeError(f"no Gradio app mounted at {PATH}")
