"""`python -m rag.server`'s port: checked when the arguments are read, and bound before the
banner and the models, so a busy or impossible port ends in one line and exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.server.__main__ import main


def run_server(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMRAG_DATA_DIR": str(data_dir), "GEMRAG_API_KEYS": ""}
    return subprocess.Popen([sys.executable, "-m", "rag.server", "--no-mounts", "--host", "127.0.0.1", *args],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_busy_port_is_one_line_and_exit_2_without_the_banner(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = run_server("--port", str(port), data_dir=tmp_path)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 2 and out == ""
    assert err == f"error: cannot serve on 127.0.0.1:{port}: Address already in use; choose another port with --port\n"


@pytest.mark.parametrize(("port", "shown"), [("99999", "99999"), ("0", "0"), ("-1", "-1"), ("http", "'http'")])
def test_a_port_outside_1_to_65535_is_a_usage_error(port: str, shown: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_:
        main(["--port", port])
    reason = capsys.readouterr().err.splitlines()[-1]
    assert exit_.value.code == 2
    assert reason == f"python -m rag.server: error: argument --port: {shown} is not a port number (1-65535)"


def test_the_server_serves_on_the_port_it_bound_and_ctrl_c_ends_it_with_0(tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = run_server("--port", str(port), data_dir=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "python -m rag.server did not come up in 90 s"
                time.sleep(0.3)
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert f"gemrag API on http://127.0.0.1:{port} " in out


def test_a_host_is_bound_as_asyncio_binds_it_and_shown_as_a_browser_takes_it():
    """localhost resolved, "[::1]" as a URL writes it, IPv6 alone on an IPv6 address; an
    unknown host is one line (rag.server.ports)."""
    from rag.errors import ConfigError
    from rag.server.ports import bind, url

    with bind("localhost", 0) as sock:
        assert sock.getsockname()[0] in ("127.0.0.1", "::1")
    if socket.has_ipv6:
        with bind("[::1]", 0) as sock:
            assert sock.family == socket.AF_INET6
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    assert url("::1", 8000) == "http://[::1]:8000" and url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError, match=r"^cannot serve on nosuchhost\.invalid:80: "):
        bind("nosuchhost.invalid", 80)
