"""deploy/Dockerfile installs pinned packages: every package `pip install .` brings into the
image is pinned with `==` in deploy/constraints.txt, the builder installs with that file, and
the pins are the versions this environment (the one the tests run in) has installed."""

from __future__ import annotations

import re
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement

from tests.fakes.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "deploy/constraints.txt"
image_constraints = load_script("image_constraints")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier  # exactly one: ==version
            assert specifier.operator == "==", f"{line}: not a pin"
            found[image_constraints.canonical(requirement.name)] = specifier.version
    return found


def test_the_builder_installs_with_the_constraints_file() -> None:
    text = (REPO / "deploy/Dockerfile").read_text()
    builder = text.split(" AS runtime")[0]
    install = re.search(r"^RUN /opt/gemrag/bin/pip install ([^\\\n&]+)", builder, re.M)
    assert install, "the builder installs the project with pip"
    args = install[1].split()
    assert args[args.index("-c") + 1] == "deploy/constraints.txt"
    assert re.search(r"^COPY deploy/constraints.txt \./deploy/$", builder, re.M), "copied where pip reads it"


def test_every_package_the_image_installs_is_pinned() -> None:
    """Unpinned, each build took whatever was newest that day: an image nobody had tested."""
    needed = image_constraints.runtime_closure()
    assert "chromadb" in needed and "pytest" not in needed, "the runtime closure, without the dev extra"
    pinned = pins()
    missing = sorted(set(needed) - set(pinned))
    assert not missing, f"installed by the image but not pinned (run scripts/image_constraints.py): {missing}"


def test_the_pins_satisfy_the_projects_requirements() -> None:
    """A pin outside pyproject's range would make the image's pip install fail."""
    pinned = pins()
    for line in distribution("gemrag").requires or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            version = pinned[image_constraints.canonical(requirement.name)]
            assert requirement.specifier.contains(version, prereleases=True), f"{requirement}: pinned {version}"


def test_the_pins_are_the_versions_the_tests_run_with() -> None:
    """The image ships what was tested (.ci/run installs the project with the same file)."""
    stale = {name: (version, distribution(name).version) for name, version in pins().items()
             if distribution(name).version != version}
    assert not stale, f"pinned, installed here (rerun scripts/image_constraints.py or install with -c): {stale}"
