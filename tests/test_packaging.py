"""What the package index and ``pip`` will see: the distribution's name and
metadata, the licence, the README as a project page, and every install line.

The built artefacts themselves (``python -m build``, ``twine check``, the
wheel alone in a fresh virtualenv running the quick start) are checked by
``scripts/check_dist.sh``, which ``scripts/test.sh`` runs.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import aiorabbit

pytestmark = pytest.mark.broker_free

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
DIST = "aiorabbit-client"
USER_EXTRAS = ("uvloop", "fastapi", "pytest")


def pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


# ----------------------------------------------------------------------
# pyproject.toml


def test_distribution_name_differs_from_the_import_name() -> None:
    project = pyproject()["project"]
    # "aiorabbit" on PyPI is an unrelated project (README: "Install").
    assert project["name"] == DIST
    assert project["scripts"] == {"aiorabbit": "aiorabbit.cli:main"}
    assert pyproject()["tool"]["setuptools"]["packages"]["find"]["include"] == ["aiorabbit*"]


def test_licence() -> None:
    data = pyproject()
    project = data["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    # license-files and a licence expression need setuptools 77 (PEP 639).
    assert "setuptools>=77" in data["build-system"]["requires"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The aiorabbit developers" in text
    assert "Permission is hereby granted, free of charge" in text
    assert not any(c.startswith("License ::") for c in project["classifiers"]), (
        "a licence classifier beside the licence expression is an error for setuptools"
    )


def test_project_urls_are_absolute() -> None:
    urls = pyproject()["project"]["urls"]
    assert urls, "no [project.urls]"
    for label, url in urls.items():
        assert re.fullmatch(r"https://[a-z0-9.-]+\.[a-z]{2,}/\S*", url), (label, url)
        assert not re.search(r"example|owner|todo|xxx|your", url, re.IGNORECASE), (label, url)


def test_release_tools_are_in_the_test_extra() -> None:
    extras = pyproject()["project"]["optional-dependencies"]
    assert {"build", "twine", "readme-renderer"} <= requirement_names(extras["test"])
    assert set(USER_EXTRAS) <= set(extras)
    assert pyproject()["project"]["dependencies"] == []


# ----------------------------------------------------------------------
# README.md as the project page


README = (ROOT / "README.md").read_text(encoding="utf-8")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)""", re.IGNORECASE)


def test_readme_links_work_on_the_index_page() -> None:
    """The index renders README.md on its own: a link relative to the
    repository (docs/..., an image) leads nowhere there."""
    targets = _LINK.findall(README) + _REFERENCE.findall(README) + _HTML.findall(README)
    for target in targets:
        assert re.match(r"https?://", target), f"README.md links to {target!r}, which is not absolute"


def test_readme_install_section() -> None:
    for extra in USER_EXTRAS:
        assert f'pip install "{DIST}[{extra}]"' in README, extra
    assert f"pip install {DIST}" in README
    # From a clone, until there is a release.
    assert "pip install .  " in README or "pip install .\n" in README
    assert 'pip install ".[fastapi]"' in README
    # The other "aiorabbit", and how to tell which one is installed.
    assert "`pip install aiorabbit` installs a different project" in README
    assert f"pip show {DIST}" in README
    assert f'importlib.metadata.version("{DIST}")' in README
    assert 'python -c "import aiorabbit; print(aiorabbit.__file__)"' in README
    # The development set-up avoids the import-hook editable mode.
    assert "--config-settings editable_mode=compat" in README


def _install_targets(line: str) -> list[str]:
    """The arguments of each ``pip install`` on a line, quotes removed."""
    found = []
    for match in re.finditer(r"pip install\s+(.*)", line):
        rest = re.split(r"\s#|&&|;|\|", match.group(1))[0]
        found += [token.strip("`'\"") for token in rest.split()]
    return found


@pytest.mark.parametrize(
    "path",
    sorted(
        str(p.relative_to(ROOT))
        for pattern in ("README.md", "docs/*.md", "examples/*.py", "scripts/*.sh")
        for p in ROOT.glob(pattern)
    ),
)
def test_install_lines_name_this_distribution(path: str) -> None:
    offending = []
    for n, line in enumerate((ROOT / path).read_text(encoding="utf-8").splitlines(), 1):
        if "installs a different project" in line:  # the README's warning says just that
            continue
        for target in _install_targets(line):
            if re.fullmatch(r"aiorabbit(\[[^\]]*\])?", target):
                offending.append(f"{path}:{n}: {line.strip()}")
    assert not offending, "install lines naming the other project:\n" + "\n".join(offending)


# ----------------------------------------------------------------------
# the environment the tests run in


def test_installed_distribution_is_this_one() -> None:
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        pytest.fail(f"{DIST} is not installed: run scripts/setup.sh")
    assert dist.version == aiorabbit.__version__
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"aiorabbit": "aiorabbit.cli:main"}
    # The old name, or the other project, in the same environment would
    # claim the same package.
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("aiorabbit")


def test_editable_install_is_a_plain_path() -> None:
    """scripts/setup.sh installs in setuptools' compat mode: a .pth line with
    the work tree, which tools that do not run import hooks (mypy) follow."""
    # The installed record (a .dist-info with direct_url.json), not the
    # .egg-info that the build leaves in the work tree, also on sys.path.
    installed = [d for d in importlib.metadata.distributions(name=DIST) if d.read_text("direct_url.json")]
    assert installed, f"{DIST} is not installed: run scripts/setup.sh"
    dist = installed[0]
    if not json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"):
        pytest.skip("aiorabbit is not installed in editable mode here")
    files = [str(f) for f in dist.files or ()]
    assert not [f for f in files if f.endswith("_finder.py")], f"an import-hook editable install: {files}"
    pths = [f for f in dist.files or () if str(f).endswith(".pth")]
    assert pths, files
    entries = {line.strip() for pth in pths for line in Path(pth.locate()).read_text().splitlines()}
    assert str(ROOT) in entries or str(ROOT.resolve()) in entries, entries
