import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini
from tests.fakes.gemini_cli import gemini_env, run


def test_env_vars_and_conventional_names(monkeypatch, tmp_path):
    monkeypatch.setenv("GEMINI_API_KEY", "k-123")
    monkeypatch.setenv("GEMRAG_TOP_K", "9")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    s = Settings(data_dir=tmp_path)
    assert s.online and s.top_k == 9 and s.redis_url == "redis://127.0.0.1:1/0"
    assert "k-123" not in repr(s) and "k-123" not in str(s.model_dump())
    assert s.chunk_profile.size_tokens == 512


def test_google_api_key_wins_over_gemini_api_key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "gemini")
    monkeypatch.setenv("GOOGLE_API_KEY", "google")
    assert Settings().api_key.get_secret_value() == "google"


def test_toml_file_amends_catalogue_rows_field_by_field(monkeypatch, tmp_path):
    toml = tmp_path / "gemrag.toml"
    toml.write_text('top_k = 4\ntier = "free"\n[models."gemini-3.8-flash".price]\ninput = 1.0\n'
                    '[models."gemini-embedding-001".limits.free]\nrpm = 2\n')
    monkeypatch.setenv("GEMRAG_CONFIG", str(toml))
    s = Settings()
    assert s.top_k == 4 and s.tier == "free"
    flash = s.models["gemini-3.8-flash"]
    assert flash.price.input == 1.0
    assert flash.price.output == 3.75 and flash.role == "flash"  # untouched fields keep the catalogue's
    assert "gemini-3.1-pro-preview" in s.models
    assert s.limit_for("gemini-embedding-001").rpm == 2
    assert s.limit_for("gemini-embedding-001").rpd == 1_000
    assert s.model_copy(update={"tier": "tier1"}).limit_for("gemini-embedding-001").rpm == 3_000


def test_no_key_is_offline_and_every_store_is_under_the_data_dir(tmp_path):
    s = Settings(data_dir=tmp_path / "d", api_key=None)
    assert not s.online and s.chunk_profile.size_tokens == 200
    assert s.path("chroma").parent == tmp_path / "d"


def test_a_bad_value_is_a_config_error_naming_the_field(monkeypatch):
    import pytest

    from rag.errors import ConfigError
    from rag.settings import load_settings

    monkeypatch.setenv("GEMRAG_TOP_K", "many")
    with pytest.raises(ConfigError, match=r"invalid configuration \(top_k: .*integer.*\).*GEMRAG_"):
        load_settings()


def test_every_cli_reports_a_bad_setting_in_one_line(monkeypatch, tmp_path, capsys):
    from ingest.cli import main as ingest_main
    from rag.cli import main as rag_main
    from rag.eval.cli import main as eval_main
    from rag.reports import main as costs_main
    from rag.settings import get_settings
    from ui.__main__ import main as ui_main

    monkeypatch.setenv("GEMRAG_TOP_K", "many")
    get_settings.cache_clear()
    try:
        codes = [
            rag_main(["ask", "x"]),
            costs_main([]),
            ingest_main([str(tmp_path)]),
            eval_main([str(tmp_path / "t.jsonl")]),
            ui_main([]),
        ]
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert codes == [2, 2, 2, 2, 2]  # refused: bad input (README: exit codes)
    assert err.count("invalid configuration (top_k:") == 5
    assert "unexpected" not in err and "Traceback" not in err


BUDGETS = ("session_budget_usd", "daily_budget_usd", "monthly_budget_usd", "key_daily_budget_usd",
           "key_monthly_budget_usd")


def test_a_negative_budget_is_a_config_error_naming_it_and_zero_is_a_budget(monkeypatch, capsys):
    """Before: GEMRAG_SESSION_BUDGET_USD=-1 was taken, every paid call refused with the advice
    to set it to -2. 0 stays a budget (free calls only), None (unset) none."""
    import pytest

    from rag.cli import main as rag_main
    from rag.errors import ConfigError
    from rag.settings import get_settings, load_settings

    for field in BUDGETS:
        with monkeypatch.context() as env:
            env.setenv(f"GEMRAG_{field.upper()}", "-1")
            with pytest.raises(ConfigError, match=rf"invalid configuration \({field}: .*greater than or equal to 0"):
                load_settings()
    assert all(getattr(Settings(**{field: 0.0}), field) == 0.0 for field in BUDGETS)
    assert Settings().monthly_budget_usd is None

    monkeypatch.setenv("GEMRAG_SESSION_BUDGET_USD", "-1")
    get_settings.cache_clear()
    try:
        assert rag_main(["ask", "x"]) == 2
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err.count("invalid configuration (session_budget_usd:") == 1


def test_base_url_needs_a_scheme_and_a_host(monkeypatch):
    from rag.errors import ConfigError
    from rag.settings import load_settings

    for bad in ("fake.url", "ftp://host", "http://", "localhost:8080"):
        monkeypatch.setenv("GEMRAG_BASE_URL", bad)
        with pytest.raises(ConfigError, match=r"\(GEMRAG_BASE_URL: .* is not an http:// or https:// URL with a host"):
            load_settings()
    assert Settings(base_url="http://127.0.0.1:8080/v1").base_url == "http://127.0.0.1:8080/v1"
    assert Settings(base_url="").base_url is None  # an empty variable is unset: Google's API


@pytest.mark.slow
def test_a_base_url_without_scheme_is_a_configuration_error_at_start(fake_gemini: FakeGemini, tmp_path) -> None:
    """Before: retried five times as a network error (UnsupportedProtocol), then reported as one."""
    done = run("rag", "ask", "anything", env=gemini_env(fake_gemini, tmp_path / "data", base_url="fake.url"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "GEMRAG_BASE_URL: 'fake.url' is not an http:// or https:// URL with a host" in done.stderr
    assert "network error" not in done.stderr and "retry" not in done.stderr
    assert TEST_API_KEY not in done.stderr


def test_a_data_dir_that_is_a_file_or_lies_under_one_is_a_config_error_naming_it(tmp_path):
    """Not an unexpected FileExistsError or NotADirectoryError from whichever store opens first."""
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    with pytest.raises(ConfigError, match=rf"^data dir {taken} is a file, not a folder; set GEMRAG_DATA_DIR"):
        Settings(data_dir=taken).path("manifest.sqlite3")
    below = taken / "sub" / "data"
    with pytest.raises(ConfigError, match=rf"^data dir {below} cannot be created: {taken} is a file, not a folder"):
        Settings(data_dir=below).path()


def test_a_data_dir_that_cannot_be_written_is_a_config_error(tmp_path, monkeypatch):
    """Root may write anywhere, so the refusal (a read-only mount, another user's folder) is
    simulated; what matters is that it is a ConfigError naming the folder."""
    monkeypatch.setattr("rag.settings.os.access", lambda path, mode: False)
    with pytest.raises(ConfigError, match=rf"^data dir {tmp_path} is not writable"):
        Settings(data_dir=tmp_path).path()


def test_a_data_dir_that_cannot_be_created_is_a_config_error(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr("rag.settings.Path.mkdir", refuse)
    with pytest.raises(ConfigError, match=rf"^data dir {tmp_path / 'new'} cannot be created \(Permission denied\)"):
        Settings(data_dir=tmp_path / "new").path()


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_gemini_key_is_no_key_and_the_offline_default(monkeypatch, blank):
    """deploy/env.example and deploy/k8s/keys.env.example ship `GEMINI_API_KEY=`: as shipped, the
    server starts offline instead of crashing in the Gemini client's constructor."""
    from rag.settings import load_settings

    monkeypatch.setenv("GEMINI_API_KEY", blank)
    settings = load_settings()
    assert settings.api_key is None and not settings.online


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_data_dir_variable_is_the_default_not_the_current_folder(monkeypatch, blank):
    """`GEMRAG_DATA_DIR=` was `Path("")`: the stores, ledger and manifest went into whatever
    folder the command ran in (CLI walkthrough)."""
    from rag.settings import load_settings

    monkeypatch.setenv("GEMRAG_DATA_DIR", blank)
    assert load_settings().data_dir == Path(".gemrag") == Settings().data_dir


@pytest.mark.parametrize(("content", "said"), [
    (b"top_k = [\n", "Invalid value (at end of document)"),
    (b'top_k = "caf\xe9"\n', "can't decode byte 0xe9"),
])
def test_a_config_file_that_is_not_toml_is_one_line_naming_it_in_every_command(tmp_path, content, said):
    """It was tomllib's traceback, twice over (reporting the error read the file again to
    redact keys), and exit 1, from rag, ingest, the server and the UI alike."""
    config = tmp_path / "gemrag.toml"
    config.write_bytes(content)
    env = {**os.environ, "GEMRAG_CONFIG": str(config), "GEMRAG_DATA_DIR": str(tmp_path / "d")}
    for argv in (["rag", "ask", "anything"], ["ingest", str(tmp_path)]):
        done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error: {config} is not valid TOML (") and said in done.stderr
        assert len(done.stderr.splitlines()) == 1


def test_a_setting_the_config_file_names_that_does_not_exist_is_refused_with_the_closest(monkeypatch, tmp_path):
    """"top_kk = 8" was dropped without a word (extra="ignore") and the default used."""
    config = tmp_path / "gemrag.toml"
    config.write_text('top_kk = 8\nbogus = 1\nchroma_url = "http://127.0.0.1:1"\n')
    monkeypatch.setenv("GEMRAG_CONFIG", str(config))
    with pytest.raises(ConfigError) as refused:
        Settings()
    assert str(refused.value).startswith(f"{config}: no such setting 'bogus', 'top_kk' (did you mean 'top_k'?);")
    config.write_text('top_k = 8\nchroma_url = "http://127.0.0.1:1"\n')  # a field, and an alias of one
    assert Settings().top_k == 8


def test_chroma_url_needs_a_scheme_and_a_host_and_is_never_quoted(monkeypatch):
    """Without a scheme, "admin:pw1234@chroma:8000" was read as one of 127.0.0.1:8000; it is
    refused at start, and the message does not repeat it: it may carry a password."""
    from rag.settings import load_settings

    # An unencoded "#" in the password: the rest was read as the port, and quoted when it failed.
    for bad in ("admin:pw1234@chroma:8000", "chroma:8000", "ftp://chroma", "http://", "http://admin:pw1234#x@chroma:8000"):
        monkeypatch.setenv("CHROMA_URL", bad)
        said = r"CHROMA_URL: its value \(not shown: it may carry a password\) is not an http:// or https:// URL"
        with pytest.raises(ConfigError, match=said) as refused:
            load_settings()
        assert "pw1234" not in str(refused.value)
    monkeypatch.setenv("CHROMA_URL", "")
    assert load_settings().chroma_url is None  # an empty variable is unset: the embedded store


def test_a_chroma_token_is_one_way_to_give_credentials_and_is_never_quoted(monkeypatch):
    from rag.settings import load_settings

    monkeypatch.setenv("CHROMA_URL", "https://chroma.example/chroma")
    monkeypatch.setenv("GEMRAG_CHROMA_TOKEN", "tok-123\n")  # read from a file, with its newline
    settings = load_settings()
    assert settings.chroma_token is not None and settings.chroma_token.get_secret_value() == "tok-123"
    assert settings.chroma_token_header == "Authorization"
    monkeypatch.setenv("GEMRAG_CHROMA_TOKEN", "tok 123")
    with pytest.raises(ConfigError, match=r"\(chroma_token: a token is ASCII letters") as refused:
        load_settings()
    assert "tok 123" not in str(refused.value)
    monkeypatch.setenv("GEMRAG_CHROMA_TOKEN", "tok-123")
    monkeypatch.setenv("CHROMA_URL", "https://admin:pw1234@chroma.example")
    with pytest.raises(ConfigError, match="give the Chroma server's credentials one way") as refused:
        load_settings()
    assert "pw1234" not in str(refused.value) and "tok-123" not in str(refused.value)
    monkeypatch.setenv("GEMRAG_CHROMA_TOKEN", " ")
    assert load_settings().chroma_token is None  # blank: none


@pytest.mark.parametrize(("variable", "value", "said"), [
    ("GEMRAG_LOG_LEVEL", "verbose", "log_level: Input should be 'debug', 'info'"),
    ("GEMRAG_KEY_RATE_LIMIT", "lots", "key_rate_limit: 'lots' is not a rate such as '120/minute'"),
    ("REDIS_URL", "localhost:6379", "is not a redis://, rediss:// or unix:// URL"),
    ("GEMRAG_SERVER_PORT", "99999", "server_port: Input should be less than or equal to 65535"),
    ("GEMRAG_SERVER_THREADS", "0", "server_threads: Input should be greater than or equal to 1"),
    ("GEMRAG_MAX_REQUEST_KB", "-5", "max_request_kb: Input should be greater than or equal to 1"),
    ("GEMRAG_JOB_MAX_RETRIES", "-3", "job_max_retries: Input should be greater than or equal to 0"),
    ("GEMRAG_BODY_TIMEOUT_S", "0", "body_timeout_s: Input should be greater than 0"),
])
def test_a_server_setting_out_of_its_range_is_refused_at_start_naming_it(monkeypatch, variable, value, said):
    """Each was a traceback from inside the server's start-up, a hang (0 threads), a port
    listened on modulo 65536, or a server refusing every request (operations walkthrough)."""
    from rag.errors import ConfigError
    from rag.settings import load_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match="invalid configuration") as refused:
        load_settings()
    assert said in str(refused.value) and "localhost:6379" not in str(refused.value)


def test_cors_origins_and_the_log_level_read_as_an_operator_writes_them(monkeypatch):
    from rag.settings import load_settings

    monkeypatch.setenv("GEMRAG_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("GEMRAG_LOG_LEVEL", "WARN")  # logging's own alias, as configurations wrote it
    assert load_settings().log_level == "warning"
    monkeypatch.setenv("GEMRAG_LOG_LEVEL", "INFO")
    settings = load_settings()
    assert (settings.cors_origins, settings.log_level) == (["https://a.example", "https://b.example"], "info")
    monkeypatch.setenv("GEMRAG_CORS_ORIGINS", '["https://c.example"]')
    assert load_settings().cors_origins == ["https://c.example"]


def test_a_data_dir_behind_a_folder_that_cannot_be_entered_is_named(tmp_path, monkeypatch):
    """Path.exists raises there: /readyz answered 500 instead of naming the data dir."""
    import pathlib

    from rag.errors import DataDirUnwritable
    from rag.settings import Settings

    locked = tmp_path / "locked"
    real = pathlib.Path.exists

    def exists(path: pathlib.Path, *args: object, **kwargs: object) -> bool:
        if str(path).startswith(str(locked)):
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "exists", exists)
    with pytest.raises(DataDirUnwritable, match=r"data dir .*locked/data cannot be reached \(Permission denied\)"):
        Settings(data_dir=locked / "data", api_key=None).path()
