"""Apps mounted beside the API by other packages, found through the `gemrag.mounts` entry
point group: `ui/` declares one that mounts the Gradio app at /ui. The server never imports
`ui/` itself, so the dependency points from the UI to the core, not back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from fastapi import FastAPI

from rag.backend import Backend
from rag.server.auth import Caller
from rag.settings import Settings

GROUP = "gemrag.mounts"
CallerOf = Callable[[str], Caller | None]  # a logged-in name's key (`ApiKeys.caller_of`)


def logged_in(caller_of: CallerOf | None, name: str) -> Caller | None:
    """The key of a mounted app's logged-in user `name`: None without API keys (the local
    user, who may do all); a name no key has any more (removed since the login) may do nothing."""
    if caller_of is None:
        return None
    return caller_of(name) or Caller(name, "ask", frozenset())


@dataclass(frozen=True)
class MountContext:
    settings: Settings
    backend: Backend  # the stores, ledger, budget and chain the API serves from
    # With API keys configured, a mounted app must log its users in: name and key.
    check_login: Callable[[str, str], bool] | None
    # The key of a logged-in name (None: no key has it): what a mounted app lets the user do,
    # and in which collections, is what the API lets that key do. None without API keys:
    # every user is the local admin.
    caller_of: CallerOf | None = None
    # The mounted apps' upload routes, which a mount adds to: a POST there may carry a file
    # up to max_upload_bytes, where any other request body is held to max_request_kb.
    upload_paths: list[str] = field(default_factory=list)


Mount = Callable[[FastAPI, MountContext], None]


def discovered() -> list[EntryPoint]:
    return sorted(entry_points(group=GROUP), key=lambda e: e.name)


def mount_all(app: FastAPI, context: MountContext, found: list[EntryPoint] | None = None) -> list[str]:
    """Loads and mounts each entry point; returns their names for the start-up message."""
    names = []
    for entry in discovered() if found is None else found:
        mount: Mount = entry.load()
        mount(app, context)
        names.append(entry.name)
    return names
