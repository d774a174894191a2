"""`python -m rag models`: the model catalogue as it stands, and what this key can use.

A user choosing or debugging a model needs the dated facts in one place: status, shutdown
and replacement, prices, limits, thinking control and the day each row was read, next to
the models this configuration uses and, with a key, what `models.list` offers that key.
The catalogue is local, so a key Gemini refuses does not hide it: the table is printed, then
one line about the key, and the exit code is 2 (README "Exit codes": a key refusal).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from rag.catalogue import ModelRow, Price
from rag.commands import Parser, run_command
from rag.errors import InvalidKey
from rag.lifecycle import Listing, cached_listing
from rag.settings import FIELD_ROLES, Settings, get_settings, load_settings


def _usd(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")


def _prices(price: Price) -> tuple[str, str, str, str]:
    long = (
        f"{_usd(price.input_long)} / {_usd(price.output_long)} >{(price.long_context_tokens or 0) // 1000}k"
        if price.input_long is not None
        else ""
    )
    return _usd(price.input), _usd(price.cached_input), _usd(price.output), long


def _thinking(row: ModelRow) -> str:
    if row.thinking.control == "level":
        return "level: " + "/".join(row.thinking.levels)
    return "budget" if row.thinking.control == "budget" else "—"


def _lifecycle(row: ModelRow) -> str:
    parts: list[str] = [row.status]
    if row.shutdown:
        parts.append(f"until {row.shutdown.isoformat()}" if row.status != "shut down" else row.shutdown.isoformat())
    if row.replacement:
        parts.append(f"→ {row.replacement}")
    return " ".join(parts)


def catalogue_table(settings: Settings, listing: Listing | None) -> Table:
    today = datetime.now(UTC).date()
    used = {getattr(settings, field): field for field in FIELD_ROLES}
    table = Table(title="Model catalogue (rag/catalogue.toml; USD per 1M tokens today)", title_justify="left")
    columns = ["model", "role", "status", "in", "cached in", "out", "long prompts", "context", "thinking", "read"]
    if listing is not None:
        columns.append("this key")
    for name in columns:
        table.add_column(name, no_wrap=name in ("model", "read"))
    for name, row in sorted(settings.models.items(), key=lambda item: (item[1].role, item[0])):
        label = f"{name} ({used[name].removesuffix('_model')})" if name in used else name
        cells = [
            label,
            row.role,
            _lifecycle(row),
            *_prices(row.price_on(today)),
            f"{row.context_tokens:,}",
            _thinking(row),
            f"{row.read} (copy {row.copy_dated})" if row.copy_dated else str(row.read),
        ]
        if listing is not None:
            cells.append("yes" if name in listing else "no")
        table.add_row(*cells)
    return table


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    return run_command(lambda: _models(argv, settings), argv)


def _models(argv: Sequence[str] | None, settings: Settings | None) -> int:
    parser = Parser(
        prog="python -m rag models",
        description="The model catalogue (status, prices, limits, date read) and, with a key, what the key can use.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    refused: InvalidKey | None = None
    listing: Listing | None = None
    try:
        settings = settings or get_settings()
        if settings.online:
            from rag.providers.gemini import GeminiProvider

            listing = cached_listing(settings, GeminiProvider(settings).list_models)
    except InvalidKey as error:
        # The settings themselves are valid (the key check is what failed): load them unchecked.
        refused, settings = error, settings or load_settings(check_models=False)
    if args.json:
        rows = {name: row.model_dump(mode="json", by_alias=True) for name, row in settings.models.items()}
        configured = {field: getattr(settings, field) for field in FIELD_ROLES}
        print(json.dumps({"configured": configured, "models": rows, "key_can_use": listing}, indent=2))
    else:
        _print_table(settings, listing, key_refused=refused is not None)
    if refused is not None:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    return 0


def _print_table(settings: Settings, listing: Listing | None, *, key_refused: bool) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=240)
    console.print(catalogue_table(settings, listing))
    for field in FIELD_ROLES:
        model = getattr(settings, field)
        note = f" — {settings.replaced[model]}" if model in settings.replaced else ""
        console.print(f"{field} = {model} ({settings.models[model].status}){note}")
    if listing is not None:
        extra = sorted(set(listing) - set(settings.models))
        unknown = f"; not in the catalogue: {', '.join(extra)}" if extra else "."
        console.print(f"This key can use {len(listing)} models{unknown}")
    elif not key_refused:  # a refused key has its own line, on stderr
        console.print("No key set (or offline): set GEMINI_API_KEY to see which models the key can use.")
    console.print("Each row's sources and notes: python -m rag models --json.")
