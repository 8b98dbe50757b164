"""The Makefile makes .venv with the first of python3.11, python3.12, python3.13, python3
that runs as a 3.11 to 3.13, or with PYTHON=... when given.

Stand-in interpreters on a PATH of the test's own answer the Makefile's version check by
their exit code; `make -n -B install` then shows which one would make the venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
NAMES = ("python3.11", "python3.12", "python3.13", "python3")
FITS, TOO_OLD, SHIM_OF_ANOTHER_VERSION = 0, 1, 127


def make(tmp_path: Path, exits: dict[str, int], *args: str) -> subprocess.CompletedProcess[str]:
    """`make ARGS` with stand-ins for the four names first on PATH, each exiting with its
    code in ``exits`` (a name absent from it exists and says it is too old)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in NAMES:
        stand_in = bin_dir / name
        stand_in.write_text(f"#!/bin/sh\nexit {exits.get(name, TOO_OLD)}\n")
        stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    for outer in ("PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # of a make running pytest
        env.pop(outer, None)
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "-s", "-B", *args, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def venv_made_with(tmp_path: Path, exits: dict[str, int], *make_args: str) -> str:
    """The interpreter `make install` would make the venv with (shown by `make -n`)."""
    shown = make(tmp_path, exits, "-n", "install", *make_args)
    assert shown.returncode == 0, shown.stderr
    made = [line for line in shown.stdout.splitlines() if " -m venv " in line]
    assert len(made) == 1, shown.stdout
    return made[0].split(" || ")[1].split(" -m venv ")[0]


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_the_first_python_that_runs_as_a_supported_version_is_taken(tmp_path: Path) -> None:
    exits = {"python3.11": SHIM_OF_ANOTHER_VERSION, "python3.13": FITS, "python3": FITS}

    assert venv_made_with(tmp_path, exits) == "python3.13"


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_python3_is_taken_when_no_versioned_name_fits(tmp_path: Path) -> None:
    assert venv_made_with(tmp_path, {"python3": FITS}) == "python3"


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_python_given_on_the_command_line_wins(tmp_path: Path) -> None:
    assert venv_made_with(tmp_path, {"python3.11": FITS}, "PYTHON=python3.12") == "python3.12"


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_install_says_what_it_needs_when_none_fits(tmp_path: Path) -> None:
    done = make(tmp_path, {}, "install")

    assert done.returncode != 0
    assert "needs Python 3.11, 3.12 or 3.13" in done.stdout
    assert not (tmp_path / "venv").exists()
