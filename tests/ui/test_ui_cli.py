"""`python -m ui`'s port, checked as the API server's is (rag/server/ports.py): a busy port
is one line and exit 2 before Gradio loads, an impossible one a usage error."""

from __future__ import annotations

import socket

import pytest

from ui.__main__ import main


def test_a_busy_port_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["--host", "127.0.0.1", "--port", str(port)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: cannot serve on 127.0.0.1:{port}: Address already in use; choose another port with --port\n")


@pytest.mark.parametrize("port", ["99999", "0", "65536"])
def test_a_port_outside_1_to_65535_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--port", port])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [  # one line, not argparse's usage block above it
        f"python -m ui: error: argument --port: {port} is not a port number (1-65535)"]
