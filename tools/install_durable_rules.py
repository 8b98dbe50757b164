"""durable-rules 2.0.28 for Python 3.13 and later, built from its sdist with one fix.

Its C extension calls ``PyEval_CallObject``, which Python 3.13 removed: the pinned build
compiles (GCC 12 only warns) and then fails at import with an undefined symbol, and its
setup.py overwrites CFLAGS, so no build flag can help. The fix is the one upstream merged
after its last release (PR #403): call ``PyObject_CallObject`` instead, which takes the
same arguments. On older Pythons the lock files install the released sdist and this
script does nothing.

Run by `make install` with the venv's Python. It never fails the install: if the build
cannot be made (no compiler, no network), it says so and the service runs the reference
engine, which says so again at start and in /readyz.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REQUIREMENT = "durable_rules==2.0.28"
SDIST = "durable_rules-2.0.28.tar.gz"
# The sdist on PyPI; a different file is not the source this fix was checked against.
SDIST_SHA256 = "053b26f5e48d312d4fa27995243f954671be6eece477f150c059c364eb4d7d61"
SOURCE = "durable_rules-2.0.28/src/rulespy/rules.c"
REMOVED, REPLACEMENT = "PyEval_CallObject(", "PyObject_CallObject("
CALLS = 5  # the five action callbacks in rules.c


class BuildFailed(Exception):
    pass


def importable() -> bool:
    check = "import durable_rules_engine, durable.engine"
    return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0


def pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING")]
        raise BuildFailed(f"pip {args[0]}: {' '.join(lines[-3:]) or done.returncode}")


def patched_tree(workdir: Path) -> Path:
    pip("download", "--quiet", "--no-binary", ":all:", "--no-deps", REQUIREMENT, "-d", str(workdir))
    sdist = workdir / SDIST
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise BuildFailed(f"{SDIST} has sha256 {digest}, expected {SDIST_SHA256}")
    with tarfile.open(sdist) as archive:
        archive.extractall(workdir, filter="data")
    source = workdir / SOURCE
    text = source.read_text()
    found = text.count(REMOVED)
    if found != CALLS:
        raise BuildFailed(f"{SOURCE}: expected {CALLS} calls of {REMOVED}, found {found}")
    source.write_text(text.replace(REMOVED, REPLACEMENT))
    return workdir / "durable_rules-2.0.28"


def main() -> int:
    if sys.version_info < (3, 13) or importable():
        return 0
    print(f"building {REQUIREMENT} for Python {sys.version.split()[0]} with the 3.13 fix")
    try:
        with tempfile.TemporaryDirectory(prefix="durable-rules-") as workdir:
            tree = patched_tree(Path(workdir))
            pip("install", "--quiet", "--no-deps", "--force-reinstall", str(tree))
        if not importable():
            raise BuildFailed("built and installed, but `import durable_rules_engine` fails")
    except BuildFailed as error:
        print(
            f"WARNING: durable-rules could not be built here ({error}); "
            "the service will run the reference engine and say so at start and in /readyz",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
