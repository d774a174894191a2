"""The startup model check against the fake server: retired models replaced or refused, the
key's listing cached for a day (an unreachable API listed once per command), a key that may
not list models told what it lacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import date

import pytest

from rag.errors import ConfigError
from rag.lifecycle import check_models
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings, checked_models
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, Fault
from tests.fakes.gemini_cli import gemini_env, run

TODAY = date(2026, 12, 1)


def _check(settings: Settings, today: date = TODAY):
    return check_models(settings, GeminiProvider(settings).list_models, today)


def test_current_defaults_pass_and_the_listing_is_fetched_once_a_day(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    first = _check(gemini_settings)
    assert first.retired == () and first.settings == gemini_settings
    assert first.listing is not None and gemini_settings.flash_model in first.listing
    _check(gemini_settings)
    pages = len(fake_gemini.calls("list"))
    assert pages >= 3  # the fake pages by 4: every page was read once, the second check read none
    _check(gemini_settings)
    assert len(fake_gemini.calls("list")) == pages


def test_a_shut_down_model_is_replaced_and_says_so(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    settings = gemini_settings.model_copy(update={"flash_model": "gemini-2.5-flash", "pro_model": "gemini-2.5-pro"})
    checked = _check(settings)
    assert checked.settings.flash_model == "gemini-3.5-flash-lite"  # Google's named replacement
    # ... but a Pro by today's Pro: Google's replacement (gemini-3.8-flash) stopped escalation
    assert checked.settings.pro_model == "gemini-3.1-pro-preview"
    assert checked.settings.replaced["gemini-3.5-flash-lite"] == (
        "gemini-2.5-flash is retired since 2026-12-01; gemini-3.5-flash-lite answered"
    )
    assert [r.field for r in checked.retired] == ["flash_model", "pro_model"]


def test_on_retired_fail_stops_with_one_line_naming_model_date_and_replacement(gemini_settings: Settings) -> None:
    settings = gemini_settings.model_copy(update={"flash_model": "gemini-2.5-flash", "on_retired": "fail"})
    with pytest.raises(ConfigError) as refused:
        _check(settings)
    message = str(refused.value)
    line = "flash_model: gemini-2.5-flash is retired since 2026-12-01; its replacement is gemini-3.5-flash-lite"
    assert line in message
    assert "\n" not in message


def test_a_model_the_key_no_longer_lists_counts_as_retired_from_today(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    fake_gemini.retire("gemini-3.1-flash-lite")  # earlier than its catalogue date (2027-05-07)
    settings = gemini_settings.model_copy(update={"lite_model": "gemini-3.1-flash-lite"})
    checked = _check(settings)
    assert checked.settings.lite_model == "gemini-3.5-flash-lite"
    assert "not offered to this key since 2026-12-01" in checked.retired[0].line("replace")


def test_a_catalogue_shutdown_date_applies_on_its_day(gemini_settings: Settings) -> None:
    settings = gemini_settings.model_copy(update={"lite_model": "gemini-3.1-flash-lite"})
    assert _check(settings, date(2027, 5, 6)).retired == ()
    later = _check(settings, date(2027, 5, 7))
    assert later.settings.lite_model == "gemini-3.5-flash-lite"


def test_a_key_that_cannot_list_models_is_told_what_it_lacks(gemini_settings: Settings, fake_gemini: FakeGemini):
    fake_gemini.inject(Fault.key_cannot_list(), times=None, method="list")
    with pytest.raises(ConfigError) as refused:
        _check(gemini_settings)
    message = str(refused.value)
    assert "cannot list models (403 PERMISSION_DENIED" in message and "ModelService.ListModels" in message
    assert TEST_API_KEY not in message


def test_an_unreachable_api_checks_shutdown_dates_only(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    fake_gemini.inject(Fault.server_error(503), times=None, method="list")
    settings = gemini_settings.model_copy(update={"flash_model": "gemini-2.5-flash", "max_attempts": 1})
    checked = _check(settings)
    assert checked.listing is None and checked.settings.flash_model == "gemini-3.5-flash-lite"


def test_settings_are_checked_only_with_a_key(settings: Settings, gemini_settings: Settings) -> None:
    assert checked_models(settings) is settings  # offline: no listing, nothing to check
    off = gemini_settings.model_copy(update={"check_models": False, "flash_model": "gemini-2.5-flash"})
    assert checked_models(off) is off


def _cli(fake: FakeGemini, tmp_path, *args: str, config: str = "") -> subprocess.CompletedProcess[str]:
    toml = tmp_path / "gemrag.toml"
    toml.write_text(config)
    env = os.environ | {
        "GEMINI_API_KEY": TEST_API_KEY,
        "GEMRAG_BASE_URL": fake.url,
        "GEMRAG_DATA_DIR": str(tmp_path / "data"),
        "GEMRAG_CONFIG": str(toml),
        "GEMRAG_REQUEST_TIMEOUT_S": "5",
    }
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_python_m_rag_models_prints_the_catalogue_and_what_the_key_can_use(fake_gemini: FakeGemini, tmp_path):
    out = _cli(fake_gemini, tmp_path, "models")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "gemini-3.8-flash (flash)" in text and "gemini-3.1-pro-preview (pro)" in text
    assert "shut down 2026-12-01 → gemini-3.5-flash-lite" in text and "2026-12-01 (copy 2026-10-07)" in text
    assert "this key" in text and "This key can use" in text
    data = json.loads(_cli(fake_gemini, tmp_path, "models", "--json").stdout)
    assert data["models"]["gemini-3.8-flash"]["price"]["input"] == 0.75
    assert data["models"]["gemini-3.8-flash"]["sources"] and "gemini-3.8-flash" in data["key_can_use"]


@pytest.mark.slow
def test_a_retired_model_in_gemrag_toml_stops_a_command_when_told_to(fake_gemini: FakeGemini, tmp_path) -> None:
    out = _cli(fake_gemini, tmp_path, "ask", "anything",
               config='flash_model = "gemini-2.5-flash"\non_retired = "fail"\n')
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "gemini-2.5-flash is retired since 2026-12-01; its replacement is gemini-3.5-flash-lite" in out.stderr
    assert "Traceback" not in out.stderr and TEST_API_KEY not in out.stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_an_unreachable_api_is_listed_once_per_command(fake_gemini: FakeGemini, tmp_path) -> None:
    env = gemini_env(fake_gemini, tmp_path / "data", base_url=f"http://127.0.0.1:{_closed_port()}", max_attempts=2)
    done = run("rag", "ask", "anything", env=env)
    assert done.returncode == 2
    assert done.stderr.count("Could not list the models this key can use") == 1, done.stderr
    assert done.stderr.count("models.list: could not connect") == 1, "one listing: its one retry"
    assert "after 2 attempts); checked shutdown dates only." in done.stderr
    assert ".)" not in done.stderr


@pytest.mark.slow
def test_python_m_rag_models_with_a_rejected_key_still_prints_the_catalogue(fake_gemini: FakeGemini, tmp_path):
    fake_gemini.inject(Fault.invalid_key(), times=None)
    out = _cli(fake_gemini, tmp_path, "models")
    assert out.returncode == 2  # README "Exit codes": a key refusal
    text = " ".join(out.stdout.split())
    assert "gemini-3.8-flash (flash)" in text and "flash_model = gemini-3.8-flash" in text
    assert "this key" not in text and "No key set" not in text
    assert out.stderr.count("\n") == 1 and "Gemini rejected the API key calling models.list" in out.stderr
    assert TEST_API_KEY not in out.stdout + out.stderr and "Traceback" not in out.stderr
