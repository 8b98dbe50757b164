"""Rules versions across workers: reloading one that passes every check, and keeping each
worker on the version the database names as active.

Every gunicorn worker holds its own compiled rules. The database names the version all of
them should serve (the newest open row of ``rules_activations``); each worker compares it
with its own at most every few seconds (one indexed read) and, when they differ, loads
that version's files from the database, so every worker serves the same files whatever
its disk holds. Which way a difference goes: a worker that loaded its files after the
active version was chosen (it just started: a deploy, a HUP, a recycled worker) publishes
its version; otherwise it adopts the database's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from service.application.ports import Clock, UnitOfWorkFactory
from service.application.rules_runtime import RulesRuntime
from service.core.errors import RuleFileError
from service.rules.lint import Finding
from service.rules.loader import read_rules_dir, version_of

log = logging.getLogger("loyalty.rules")

# Checks files as a reload must (cases, lint, engine) as of a moment; raises
# RuleFileError, or returns the lint warnings.
RulesVetting = Callable[[Mapping[str, str], datetime], tuple[Finding, ...]]
SYNC_EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Reloaded:
    version: str
    previous: str
    changed: bool
    warnings: tuple[Finding, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "previous": self.previous,
            "changed": self.changed,
            "warnings": [w.as_dict() for w in self.warnings],
        }


class RulesSync:
    """Keeps this worker on the active version; also what a reload goes through."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        runtime: RulesRuntime,
        clock: Clock,
        *,
        every: float = SYNC_EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        on_loaded: Callable[[str], None] = lambda version: None,
    ) -> None:
        self._uow = uow_factory
        self._runtime = runtime
        self._clock = clock
        self.every = every  # seconds between checks of the database
        self._monotonic = monotonic
        self._on_loaded = on_loaded  # told each version this worker swaps in (metrics)
        self._checked: float | None = None  # monotonic time of the last check
        self._lock = threading.Lock()
        # When this worker's version was chosen: now, as it has just loaded its files.
        self.chosen_at = clock()

    def maybe_sync(self) -> None:
        """Before a request: sync if it is time. Never fails the request."""
        now = self._monotonic()
        if self._checked is not None and now - self._checked < self.every:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread of this worker is checking
        try:
            self._checked = now
            self.sync()
        except Exception:
            log.warning("could not check the active rules version", exc_info=True)
        finally:
            self._lock.release()

    def sync(self) -> str | None:
        """Bring this worker and the database into line; the version it changed to, if any."""
        mine = self._runtime.active
        with self._uow() as uow:
            active = uow.store.active_rules_version()
            if active is not None and active.version == mine.version:
                return None
            if active is None or active.active_from <= self.chosen_at:
                at = self._clock()
                uow.store.activate_rules_version(
                    mine.version, dict(mine.ruleset.files), at, "startup"
                )
                uow.commit()
                self.chosen_at = at
                log.info("rules version %s is now active for every worker", mine.version)
                return None
            files = uow.store.rules_version_files(active.version)
        if files is None:
            return None
        try:
            self._runtime.load(files)
        except RuleFileError as error:
            log.error("cannot serve rules version %s here: %s", active.version, error)
            return None
        self.chosen_at = active.active_from
        self._on_loaded(active.version)
        log.info("now serving rules version %s, as the other workers do", active.version)
        return active.version

    def reload(self, rules_dir: str | Path, *, vet: RulesVetting) -> Reloaded:
        """Validate the files on disk (load, embedded cases, lint errors, the engine: all
        by ``vet``, which runs them in a child process under limits), then swap them in
        and make them active for every worker. Raises RuleFileError with every problem,
        and then the version served stays as it was."""
        files = read_rules_dir(rules_dir)
        previous = self._runtime.active.version
        if version_of(files) == previous:
            # The files this worker serves already passed every check when they loaded.
            return self._activate(files, previous, ())
        warnings = vet(files, self._clock())
        return self._activate(files, previous, warnings)

    def _activate(
        self, files: Mapping[str, str], previous: str, warnings: tuple[Finding, ...]
    ) -> Reloaded:
        """Swap the files in here and name them the active version for every worker."""
        with self._lock:
            active = self._runtime.load(files)
            at = self._clock()
            with self._uow() as uow:
                changed = uow.store.activate_rules_version(
                    active.version, dict(files), at, "reload"
                )
                uow.commit()
            self.chosen_at = at
        self._on_loaded(active.version)
        return Reloaded(active.version, previous, changed or previous != active.version, warnings)
