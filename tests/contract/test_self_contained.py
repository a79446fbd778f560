"""The repository stands on its own: a clone alone runs the suite.

Nothing outside the checkout is read (no sibling ``shared`` folder of test data), every
``tests/fixtures`` path named in code exists, and the fixture folder's README names only
files that are there.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO

#: Ways a file can reach a ``shared`` folder beside the checkout: a written path, or a
#: path built from pieces (``REPO.parent / "shared"``, ``os.path.join("..", "shared")``).
OUTSIDE = [
    re.compile(r"\.\./shared\b"),
    re.compile(r"\bshared/fixtures\b"),
    re.compile(r"""\bparents?\b[^\n]*?/\s*["']shared["']"""),
    re.compile(r"""["']\.\.["']\s*,\s*["']shared["']"""),
    re.compile(r"""["']shared["']\s*[/,]\s*["']fixtures["']"""),
]
#: A ``tests/fixtures`` path written in code or a comment (``fixtures/smi`` counts too).
FIXTURE_PATH = re.compile(r"(?<![\w/.-])(?:tests/)?fixtures/([\w.*/-]*)")
#: Left out of the walk when the checkout is not a Git work tree (mirrors .gitignore).
UNTRACKED_DIRS = {".git", ".venv", ".lab", "runs", "dist", "build", "__pycache__",
                  ".pytest_cache", ".mypy_cache", ".ruff_cache"}
#: This file spells out the patterns it looks for.
THIS = Path(__file__).resolve()


def repository_files() -> list[Path]:
    """The files of the checkout: tracked ones and new ones Git does not ignore."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True)
        names = [name for name in done.stdout.decode().split("\0") if name]
        return sorted(p for p in (REPO / name for name in names) if p.is_file())
    except (OSError, subprocess.CalledProcessError):  # an unpacked sdist: no Git
        found = []
        for folder, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in UNTRACKED_DIRS]
            found += [Path(folder) / name for name in files]
        return sorted(found)


def code_files() -> Iterator[tuple[str, str]]:
    """(repository-relative name, text) of every file that is not Markdown prose."""
    for path in repository_files():
        if path.suffix == ".md" or path.resolve() == THIS:
            continue
        yield path.relative_to(REPO).as_posix(), path.read_text(errors="replace")


def outside_references(text: str) -> list[str]:
    """The lines of ``text`` that reach a ``shared`` folder outside the checkout."""
    return [line.strip() for line in text.splitlines()
            if any(pattern.search(line) for pattern in OUTSIDE)]


def missing_fixture_paths(text: str) -> list[str]:
    """``tests/fixtures`` paths named in ``text`` that match nothing on disk."""
    missing = []
    for match in FIXTURE_PATH.finditer(text):
        relative = match.group(1).rstrip(".")
        if relative and not any(FIXTURES.glob(relative)):
            missing.append(match.group(0))
    return missing


@pytest.mark.parametrize("line", [
    'FIXTURES = REPO.parent / "shared" / "fixtures"',
    "path = Path(__file__).resolve().parents[3].parent / 'shared'",
    'os.path.join(REPO, "..", "shared", "fixtures", "smi")',
    "cp -r ../shared/fixtures/mad tests/",
    "# the captures in shared/fixtures/smi",
])
def test_the_check_sees_each_way_out(line: str) -> None:
    assert outside_references(f"x = 1\n{line}\n") == [line]


def test_the_check_leaves_other_words_alone() -> None:
    text = ('shared = configurations.get(name)\n"n_shared_experts": 1\n'
            '# Code shared by the roles\nFIXTURES = REPO / "tests" / "fixtures"\n')
    assert outside_references(text) == []


def test_no_file_reads_outside_the_repository() -> None:
    found = {name: lines for name, text in code_files() if (lines := outside_references(text))}
    assert found == {}, "copy the data into tests/fixtures and read it from there"


def test_the_fixture_path_check_sees_a_missing_file() -> None:
    text = "the captures in ``tests/fixtures/smi/``; see fixtures/smi/NOTES.txt."
    assert missing_fixture_paths(text) == ["fixtures/smi/NOTES.txt."]


def test_every_fixture_path_named_in_code_exists() -> None:
    found = {name: paths for name, text in code_files()
             if not name.startswith("tests/fixtures/")
             and (paths := missing_fixture_paths(text))}
    assert found == {}


def test_the_fixture_readme_names_each_folder_and_only_files_that_exist() -> None:
    readme = (FIXTURES / "README.md").read_text()
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    headed = set(re.findall(r"^## `([^`/]+)/`", readme, re.MULTILINE))
    assert headed == folders, "one README section per folder of tests/fixtures"
    named = [token for token in re.findall(r"`([^`\s]+)`", readme)
             if token.split("/")[0] in folders | {"tests"} and "/" in token]
    assert len(named) >= 2 * len(folders)  # the README names real files, not just folders
    missing = [token for token in named
               if not any((REPO if token.startswith("tests/") else FIXTURES).glob(token))]
    assert missing == []
