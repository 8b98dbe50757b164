"""Untrusted rule files are checked in a child process, under a time and a memory limit.

A dry run's files come from a caller, a reload's from whatever was deployed; either may
be made to be slow or large to compile. The loader refuses the shapes known to do it
(YAML aliases, deep nesting, patterns RE2 cannot take); this is the backstop for the
unknown ones. The child is forked from a multiprocessing fork server (a fresh interpreter
the worker starts on first use, so nothing of the worker's own state is inherited): it
caps its own address space (RLIMIT_AS) before it reads the files and is killed when its
time is up. Meanwhile the worker's thread only waits on a pipe, so the worker's
other threads, and the other workers, go on serving. Only files that passed here are
then loaded by the worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from service.core.errors import RuleFileError, RuleProblem
from service.rules.lint import Finding
from service.rules.vetting import check_files

log = logging.getLogger("loyalty.rules")
MIB = 2**20


@dataclass(frozen=True, slots=True)
class CompileLimits:
    """LOYALTY_RULES_COMPILE_TIMEOUT (seconds) and LOYALTY_RULES_COMPILE_MEMORY (MiB)."""

    seconds: float = 5.0
    memory_mib: int = 512


def check_in_child(
    files: Mapping[str, str],
    limits: CompileLimits,
    *,
    engine: str,
    now: datetime | None = None,
    where: str = "rules",
) -> tuple[Finding, ...]:
    """service.rules.vetting.check_files in a child process; raises RuleFileError with
    the files' problems, or with the limit that stopped the check (``where`` names the
    files in that case)."""
    context = multiprocessing.get_context("forkserver")
    # The fork server (one per worker, started on first use) has the checks imported
    # already, so a check costs a fork, not an interpreter's start (about half a second).
    context.set_forkserver_preload([__name__])
    answers, sender = context.Pipe(duplex=False)
    request = {"files": dict(files), "engine": engine, "now": now}
    child = context.Process(target=_child, args=(sender, request, limits.memory_mib * MIB))
    child.start()
    sender.close()
    try:
        if not answers.poll(limits.seconds):
            child.kill()
            raise _stopped(
                where,
                f"checking the rule files took longer than {limits.seconds:g} s "
                "(LOYALTY_RULES_COMPILE_TIMEOUT)",
            )
        answer = answers.recv()
    except EOFError:  # the child died without an answer
        answer = {"died": True}
    finally:
        answers.close()
        child.join()
    if "warnings" in answer:
        return tuple(Finding(**warning) for warning in answer["warnings"])
    if "problems" in answer:
        raise RuleFileError([RuleProblem(**problem) for problem in answer["problems"]])
    raise _failed(answer, child.exitcode, limits, where)


def _failed(
    answer: dict[str, Any], exitcode: int | None, limits: CompileLimits, where: str
) -> RuleFileError:
    memory = f"{limits.memory_mib} MiB of memory (LOYALTY_RULES_COMPILE_MEMORY)"
    if "exceeded" in answer:
        return _stopped(where, f"checking the rule files needed more than {memory}")
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        log.warning("the rules check process was stopped by %s", name)
        reason = f"checking the rule files was stopped by {name} (over {memory}, or a crash)"
    else:
        log.error("the rules check process failed: %s", answer.get("error", exitcode))
        reason = "the rule files could not be checked: the checking process failed"
    return _stopped(where, reason)


def _stopped(where: str, reason: str) -> RuleFileError:
    return RuleFileError([RuleProblem(where, None, f"{reason}; the files were not loaded")])


def _child(sender: Connection, request: dict[str, Any], memory_bytes: int) -> None:
    """In the child: limit itself, check, send one answer."""
    _limit(resource.RLIMIT_AS, memory_bytes)
    _limit(resource.RLIMIT_CORE, 0)
    answer: dict[str, Any]
    try:
        warnings = check_files(request["files"], engine=request["engine"], now=request["now"])
        answer = {"warnings": [warning.as_dict() for warning in warnings]}
    except RuleFileError as error:
        answer = {"problems": [problem.as_dict() for problem in error.problems]}
    except MemoryError:
        answer = {"exceeded": "memory"}
    except SystemError as error:
        # Under RLIMIT_AS, Python 3.13 sometimes loses the MemoryError of an allocation
        # that fails inside C code and raises this instead: it is the same limit reached.
        lost = "without exception set" in str(error)
        answer = {"exceeded": "memory"} if lost else {"error": f"SystemError: {error}"}
    except Exception as error:  # a bug: the worker logs it and refuses the files
        answer = {"error": f"{type(error).__name__}: {error}"}
    sender.send(answer)
    sender.close()


def _limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (capped, capped))
