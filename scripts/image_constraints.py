"""The pins deploy/Dockerfile installs with: every package `pip install .` brings in (the
project's runtime dependencies and theirs, no dev extras), at the version installed here.

    python scripts/image_constraints.py > deploy/constraints.txt

Run it in an environment where the project is installed and tested (`pip install -e
'.[dev]'`): the image then gets the versions the tests passed with, not whatever was newest
on the day it was built. The closure is read from the installed packages' metadata, with the
markers evaluated for this interpreter (Linux, CPython 3.11, like the image's base).
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement

PROJECT = "gemrag"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(project: str = PROJECT) -> dict[str, str]:
    """Canonical name -> installed version of every package `pip install <project>` needs,
    the project itself left out."""
    found: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(project, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"{name} is required but not installed here: install the project first") from None
        if canonical(name) != canonical(project):
            found[canonical(dist.metadata["Name"])] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue  # an extra nobody asked for (dev, tests), or another platform's
            pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def main() -> None:
    pins = runtime_closure()
    sys.stdout.write(
        "# Pins for deploy/Dockerfile's `pip install -c deploy/constraints.txt .`: every package the image\n"
        "# installs, at the version the tests ran with. Made by `python scripts/image_constraints.py\n"
        "# > deploy/constraints.txt` in the project's environment; rerun it after changing a dependency\n"
        "# (tests/deploy/test_pins.py fails until then).\n"
    )
    sys.stdout.writelines(f"{name}=={version}\n" for name, version in sorted(pins.items()))


if __name__ == "__main__":
    main()
