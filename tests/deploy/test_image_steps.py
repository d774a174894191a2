"""The image, built the way deploy/Dockerfile builds it, answers offline.

No Docker daemon runs here, so this replays the Dockerfile's steps on this machine: copy
exactly what the builder stage copies, create a virtual environment and `pip install .`
into it with the builder's arguments (its constraints file; not editable, so package data
such as the model catalogue must really ship), check that torch is absent, then, as the
runtime stage would run it (another working directory, no source tree on the path), ingest a
document and answer a question offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy/Dockerfile"


def builder_copies() -> list[str]:
    builder = DOCKERFILE.read_text().split(" AS runtime")[0]
    return [src for line in re.findall(r"^COPY (?!--)(.+) \S+$", builder, re.M) for src in line.split()]


def builder_pip_install() -> list[str]:
    """The builder's `pip install` arguments (the constraints file among them)."""
    found = re.search(r"^RUN /opt/gemrag/bin/pip install ([^\\\n&]+)", DOCKERFILE.read_text(), re.M)
    assert found, "the builder installs the project with pip"
    return found[1].split()


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_the_image_steps_install_without_torch_and_answer_offline(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in builder_copies():
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GEMRAG_", "VIRTUAL_ENV"))}
    env |= {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    venv = tmp_path / "opt-gemrag"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python = str(venv / "bin/python")
    run([python, "-m", "pip", "install", "-q", *builder_pip_install()], src, env, timeout=900)
    assert "torch" not in run([python, "-m", "pip", "list", "--format=freeze"], src, env).lower().split("==")

    data = tmp_path / "data"
    docs = data / "docs"
    docs.mkdir(parents=True)
    (docs / "leave.md").write_text(
        "# Leave policy\n\nEmployees receive 27 days of paid leave per year. Leave requests go to the team lead.\n"
    )
    runtime = env | {"GEMRAG_DATA_DIR": str(data / ".gemrag"), "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"}
    run([python, "-m", "ingest", str(docs)], data, runtime)
    answer = run([python, "-m", "rag", "ask", "How many days of paid leave do employees get?"], data, runtime)
    assert "27 days" in answer and "leave.md" in answer
