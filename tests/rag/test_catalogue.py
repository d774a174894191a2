"""The model catalogue: complete, dated, sourced rows; defaults that exist; bad rows refused."""

from __future__ import annotations

from datetime import date

import pytest

from rag.catalogue import catalogue_rows
from rag.errors import ConfigError
from rag.settings import FIELD_ROLES, Settings, load_settings

TODAY = date(2026, 12, 1)


def test_every_catalogue_row_is_dated_sourced_and_priced() -> None:
    models = Settings().models
    assert set(models) == set(catalogue_rows())
    for name, row in models.items():
        assert row.read is not None and row.sources, name
        assert all(url.startswith("https://") for url in row.sources), name
        assert row.price.input >= 0 and (row.role == "embedding" or row.price.output is not None), name
        if row.replacement:
            assert row.replacement in models and not models[row.replacement].retired_on(TODAY), name
        if row.thinking.control == "level":
            assert row.thinking.default in row.thinking.levels, name


def test_defaults_are_current_catalogue_models_of_their_role() -> None:
    """Answers, escalation, cheap steps and embeddings run on models that exist today: stable,
    except Pro, which Google offers only as a preview."""
    s = Settings()
    for field, roles in FIELD_ROLES.items():
        row = s.models[getattr(s, field)]
        assert row.role == roles[0], field
        assert not row.retired_on(TODAY), field
        assert row.status == ("preview" if field == "pro_model" else "stable"), field


def test_shut_down_models_name_a_live_replacement() -> None:
    models = Settings().models
    for old in ("gemini-2.5-flash", "gemini-2.5-pro"):
        assert models[old].retired_on(TODAY)
        assert not models[models[old].replacement or ""].retired_on(TODAY)


def test_thinking_levels_round_up_to_one_the_model_accepts() -> None:
    models = Settings().models
    assert models["gemini-3.8-flash"].thinking.nearest("minimal") == "low"
    assert models["gemini-3.5-flash-lite"].thinking.nearest("minimal") == "minimal"
    assert models["gemini-3.1-pro-preview"].thinking.nearest("high") == "high"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"flash_model": "gemini-9-flash"}, r"flash_model: 'gemini-9-flash' is not in the model catalogue"),
        ({"flash_model": "gemini-embedding-001"}, r"flash_model: 'gemini-embedding-001' has the role 'embedding'"),
        ({"embedding_model": "gemini-3.8-flash"}, r"embedding_model: 'gemini-3.8-flash' has the role 'flash'"),
        (
            {"models": {"gemini-x": {"role": "flash", "status": "stable", "context_tokens": 1, "output_tokens": 1,
                                     "price": {"input": 0.1}}}},
            r"models\.gemini-x: price\.output is missing",
        ),
        ({"models": {"gemini-3.8-flash": {"price": {"inputt": 1.0}}}}, r"models\.gemini-3\.8-flash\.price\.inputt"),
    ],
)
def test_bad_model_configuration_is_one_error_naming_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)


def test_a_toml_row_with_a_missing_price_stops_the_cli_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    from rag.cli import main

    toml = tmp_path / "gemrag.toml"
    toml.write_text('flash_model = "gemini-x"\n[models."gemini-x"]\nrole = "flash"\nstatus = "stable"\n'
                    'context_tokens = 1000\noutput_tokens = 100\nprice = { input = 0.1 }\n')
    monkeypatch.setenv("GEMRAG_CONFIG", str(toml))
    monkeypatch.chdir(tmp_path)
    from rag.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["ask", "anything"]) == 2  # bad input (the exit table in rag/commands.py)
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models.gemini-x: price.output is missing" in err
