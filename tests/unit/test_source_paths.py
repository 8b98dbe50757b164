"""The repository names its files by their path in the repository: no file it tracks
points into the directories of the machine it was written or built on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A home or work directory at the root of some machine (home, Users or work).
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:home|Users|work)/[\w.-]+")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no list of tracked files")
    files = [ROOT / name for name in listed.stdout.decode().split("\0") if name]
    return [
        path
        for path in files
        if path.suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".txt"}
        or path.name in {"Makefile", "Dockerfile", "Procfile"}
    ]


def test_no_tracked_file_names_a_path_of_a_machine() -> None:
    files = tracked_text_files()
    assert ROOT / "service" / "rules" / "durable_engine.py" in files
    found = [
        f"{path.relative_to(ROOT)}:{number}: {match.group(0)}"
        for path in files
        if path.is_file()
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        for match in MACHINE_PATH.finditer(line)
    ]
    assert found == []
