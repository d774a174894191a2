"""The images the source viewer shows (a cited PDF page with the passage highlighted, an
ingested image file), served by a route of the UI's own: source-images/{collection}/{name}.

Gradio serves an Image component's file through its file route, whose URL is the file's
absolute path on the server (/gradio_api/file=/home/…/.gemrag/gradio/…/image.png): anyone
reading a shared server's page learned where its data dir is. This route's URL names a
collection and a preview's file name, nothing of the server's folders, and it serves only a
preview `ui.preview` rendered of a file the collection holds now, from the previews folder
itself: no other name, no path out of the folder, no link followed out of it.

What a reader sends still goes through Gradio's own upload route, which answers with the
path of its copy under the data dir: an uploader learns that path, a reader of answers no
longer does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, params
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute

from rag.errors import ConfigError
from rag.server.mounts import CallerOf, logged_in
from rag.settings import Settings
from rag.store import check_collection_name
from ui import preview

PREFIX = "source-images"
ROUTE = f"/{PREFIX}/{{collection}}/{{name}}"


def url(collection: str, image: Path) -> str:
    """The image's URL relative to the page, which is the Gradio app's root (/ under
    `python -m ui`, /ui/ under `python -m rag.server`, or wherever a proxy puts it), so it
    resolves to this route in either."""
    return f"{PREFIX}/{quote(collection, safe='')}/{quote(image.name, safe='')}"


def find(settings: Settings, collection: str, name: str) -> Path | None:
    """The preview `name` of a file `collection` holds, or None: a name `ui.preview` does not
    give its viewer images, a file that is not a plain file right in the previews folder (a
    symbolic link is refused, wherever it points), or a preview of a file the collection no
    longer holds (or never did)."""
    try:
        check_collection_name(collection)
    except ConfigError:
        return None
    shown = preview.SHOWN.fullmatch(name)
    if shown is None:
        return None
    folder = settings.path(preview.FOLDER).resolve()
    path = folder / name
    if path.is_symlink() or not path.is_file():  # `name` has no separator: the folder is its parent
        return None
    return path if preview.holds(settings, collection, shown["content"]) else None


def add_route(app: FastAPI, settings: Settings, caller_of: CallerOf | None = None) -> None:
    """Adds the route to the Gradio app (`python -m ui`'s, or the one mounted under the API),
    behind the login Gradio asks for its own config (`_guard`): with API keys configured, only
    a logged-in reader sees a page, and only of a collection their key reaches (`caller_of`)."""
    login = _login(app)

    def serve(collection: str, name: str, user: str | None = Depends(login)) -> FileResponse:
        caller = logged_in(caller_of, user or "")
        reached = caller is None or caller.reaches(collection)
        found = find(settings, collection, name) if reached else None
        if found is None:  # another collection's looks like no image at all
            raise HTTPException(status_code=404, detail="no such source image")
        return FileResponse(found, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    app.add_api_route(ROUTE, serve, methods=["GET"], dependencies=_guard(app), include_in_schema=False)


def _guard(app: FastAPI) -> list[Any]:
    """The dependencies Gradio guards its /config with (its login check), taken from that route
    so its rules are not copied here: whoever may load the page's config may see its images.
    A Gradio without the route fails the start-up rather than leaving this one unguarded."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path == "/config":
            return list(route.dependencies)
    raise RuntimeError("Gradio's app has no /config route to take its login check from")


def _login(app: FastAPI) -> Callable[..., Any]:
    """Gradio's own dependency for the logged-in name, the one its login check reads (taken
    from that check, not copied); a Gradio that has none fails the start-up."""
    for guard in _guard(app):
        for parameter in inspect.signature(guard.dependency).parameters.values():
            if isinstance(parameter.default, params.Depends) and parameter.default.dependency is not None:
                return parameter.default.dependency
    raise RuntimeError("Gradio's login check reads no logged-in user to take")
