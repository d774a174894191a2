"""An A/B run through the chain against the fake Gemini server: 200 sessions split by the
configured share (sticky per session), each arm answered by its model, and
`python -m rag experiments report` shows both arms side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.chain import Chain
from rag.experiments import assign
from rag.providers.gemini import GeminiProvider
from rag.settings import Arm, Experiment, Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini
from tests.fakes.tiny_corpus import build_store

pytestmark = pytest.mark.slow


def test_two_hundred_sessions_split_by_share_and_both_arms_are_reported(
    gemini_settings: Settings, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    lite = gemini_settings.lite_model
    experiment = Experiment(
        name="lite-answers", arms=[Arm(name="flash", share=0.75), Arm(name="lite", share=0.25, model=lite)]
    )
    settings = gemini_settings.model_copy(update={"experiment": experiment, "answer_cache": False})
    provider = GeminiProvider(settings)
    chain = Chain(settings, provider, build_store(settings, provider))
    sessions = [f"user-{i}" for i in range(200)]
    for session in sessions:
        record = chain.ask("How many days of paid vacation do employees get?", session_id=session)
        arm = assign(experiment, session)
        assert f"arm {arm.name!r}" in record.route.reason
        assert record.route.model == (lite if arm.name == "lite" else settings.flash_model)

    lite_sessions = sum(assign(experiment, s).name == "lite" for s in sessions)
    assert 30 <= lite_sessions <= 70  # 25% of 200 = 50, within about 3.5 standard errors
    answered = [c.model for c in fake_gemini.calls("streamGenerateContent")]
    assert answered.count(lite) == lite_sessions

    config = tmp_path / "gemrag.toml"
    config.write_text(
        '[experiment]\nname = "lite-answers"\n'
        '[[experiment.arms]]\nname = "flash"\nshare = 0.75\n'
        f'[[experiment.arms]]\nname = "lite"\nshare = 0.25\nmodel = "{lite}"\n'
    )
    env = os.environ | {"GEMRAG_CONFIG": str(config), "GEMRAG_DATA_DIR": str(settings.data_dir),
                        "GEMINI_API_KEY": TEST_API_KEY}
    shown = subprocess.run([sys.executable, "-m", "rag", "experiments", "report", "--json"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    flash_arm, lite_arm = json.loads(shown.stdout)
    assert (flash_arm["name"], flash_arm["sessions"], flash_arm["answers"]) == ("flash", 200 - lite_sessions,
                                                                                200 - lite_sessions)
    assert (lite_arm["name"], lite_arm["sessions"], lite_arm["model"]) == ("lite", lite_sessions, lite)
    assert flash_arm["cost_usd"]["mean"] > lite_arm["cost_usd"]["mean"] > 0  # Flash-Lite is the cheaper tier
    assert lite_arm["p_cost"] is not None and lite_arm["p_latency"] is not None

    table = subprocess.run([sys.executable, "-m", "rag", "experiments", "report"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert "lite-answers" in table.stdout and "p cost" in table.stdout
