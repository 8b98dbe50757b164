"""Rule files as they were at a git revision, read with `git show` (no checkout)."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from service.core.errors import RuleFileError, RuleProblem
from service.rules.loader import CAMPAIGN_DIR, PROGRAMME_FILE


class GitError(RuntimeError):
    """git could not answer (not a repository, unknown revision, ...)."""


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise GitError(f"git {' '.join(args)}: {detail[-1] if detail else done.returncode}")
    return done.stdout


def rules_at_revision(rules_dir: str | Path, revision: str) -> dict[str, str]:
    """The rule files under ``rules_dir`` at ``revision``, as {relative path: text}.

    ``rules_dir`` is a directory in a git working tree; the same path is read at the
    revision, so a rules directory that moved is reported as missing there.
    """
    directory = Path(rules_dir).resolve()
    if not directory.is_dir():
        raise GitError(f"{rules_dir} is not a directory")
    top = Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    prefix = PurePosixPath(directory.relative_to(top).as_posix())
    try:
        _git(top, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except GitError:
        raise GitError(f"{revision!r} is not a commit in {top}") from None
    at_top = str(prefix) == "."
    pathspec = "." if at_top else f"{prefix}/"
    listing = _git(top, "ls-tree", "-r", "--name-only", revision, "--", pathspec)
    files: dict[str, str] = {}
    for line in listing.splitlines():
        relative = PurePosixPath(line) if at_top else PurePosixPath(line).relative_to(prefix)
        wanted = str(relative) == PROGRAMME_FILE or (
            relative.parent == PurePosixPath(CAMPAIGN_DIR) and relative.suffix in (".yaml", ".yml")
        )
        if wanted:
            files[str(relative)] = _git(top, "show", f"{revision}:{line}")
    if PROGRAMME_FILE not in files:
        raise RuleFileError(
            [RuleProblem(f"{revision}:{prefix}", None, f"no {PROGRAMME_FILE} at this revision")]
        )
    return files
