"""Loading a rules version: files -> validated intermediate form, or every problem found."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from service.core.conditions import AllOf, AnyOf, ArrayAll, ArrayAny, Compare, Condition
from service.core.errors import RuleFileError, RuleProblem
from service.core.facts import FIELD_TYPES
from service.core.programme import Campaign, RuleSet
from service.rules.campaign_parser import RuleCase, parse_campaign
from service.rules.problems import Problems
from service.rules.programme_parser import parse_programme
from service.rules.yaml_source import YamlSyntaxError, load_yaml

PROGRAMME_FILE = "program.yaml"
CAMPAIGN_DIR = "campaigns"
MAX_FILE_BYTES = 1_000_000
# durable-rules never returns from registering more distinct equality values than this on
# one field, and refuses events of more than 255 properties (see the durable-rules notes).
MAX_EQUALITY_VALUES = 500
MAX_FACT_FIELDS = 255


@dataclass(frozen=True, slots=True)
class LoadedRules:
    ruleset: RuleSet
    cases: tuple[RuleCase, ...]


def read_rules_dir(directory: str | Path) -> dict[str, str]:
    """The rule files under a directory, as {relative path: text}."""
    root = Path(directory)
    if not (root / PROGRAMME_FILE).is_file():
        raise RuleFileError(
            [RuleProblem(str(root), None, f"no {PROGRAMME_FILE} in this directory")]
        )
    files = {PROGRAMME_FILE: (root / PROGRAMME_FILE).read_text(encoding="utf-8")}
    for path in sorted((root / CAMPAIGN_DIR).glob("*.y*ml")):
        files[f"{CAMPAIGN_DIR}/{path.name}"] = path.read_text(encoding="utf-8")
    return files


def load_rules_dir(directory: str | Path) -> LoadedRules:
    return load_rules(read_rules_dir(directory))


def version_of(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode())
        digest.update(b"\0")
        digest.update(files[path].encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def load_rules(files: Mapping[str, str]) -> LoadedRules:
    """Validate and compile a full set of rule files; raise RuleFileError with every problem."""
    problems: list[RuleProblem] = []
    unknown = [p for p in files if p != PROGRAMME_FILE and not _is_campaign_path(p)]
    problems += [
        RuleProblem(
            p, None, f"not a rule file; expected {PROGRAMME_FILE} or {CAMPAIGN_DIR}/<id>.yaml"
        )
        for p in unknown
    ]
    if PROGRAMME_FILE not in files:
        raise RuleFileError(
            [*problems, RuleProblem(PROGRAMME_FILE, None, "the programme file is missing")]
        )
    program_problems = Problems(PROGRAMME_FILE)
    document = _parse_yaml(files[PROGRAMME_FILE], program_problems)
    programme = (
        parse_programme(document, program_problems) if program_problems.found == [] else None
    )
    problems += program_problems.found
    if programme is None:
        raise RuleFileError(problems or [RuleProblem(PROGRAMME_FILE, None, "invalid programme")])

    dynamic: dict[str, str] = {}
    campaigns: list[Campaign] = []
    cases: list[RuleCase] = []
    for path in sorted(p for p in files if _is_campaign_path(p)):
        file_problems = Problems(path)
        document = _parse_yaml(files[path], file_problems)
        if not file_problems.found:
            campaign, file_cases = parse_campaign(
                document, file_problems, programme, dynamic, PurePosixPath(path).stem
            )
            if campaign is not None and any(c.id == campaign.id for c in campaigns):
                file_problems.add(campaign.line, f"campaign {campaign.id!r} is defined twice")
            elif campaign is not None:
                campaigns.append(campaign)
                cases += file_cases
        problems += file_problems.found
    problems += _engine_envelope(campaigns, dynamic)
    if problems:
        raise RuleFileError(problems)
    ruleset = RuleSet(
        programme=programme,
        campaigns=tuple(campaigns),
        version=version_of(files),
        files=MappingProxyType(dict(files)),
        dynamic_fields=MappingProxyType(dict(dynamic)),
    )
    return LoadedRules(ruleset, tuple(cases))


def _is_campaign_path(path: str) -> bool:
    if not _is_unicode(path):  # a lone surrogate; no file system name
        return False
    pure = PurePosixPath(path)
    return pure.parent == PurePosixPath(CAMPAIGN_DIR) and pure.suffix in (".yaml", ".yml")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_yaml(text: str, problems: Problems) -> object:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        problems.add(None, f"file is larger than {MAX_FILE_BYTES} bytes")
        return None
    try:
        return load_yaml(text)
    except YamlSyntaxError as error:
        # An unclosed bracket is reported at the end of input, past the last line.
        line = min(error.line, text.count("\n") + 1) if error.line else None
        problems.add(line, f"invalid YAML: {error}")
        return None


def _engine_envelope(
    campaigns: Iterable[Campaign], dynamic: Mapping[str, str]
) -> list[RuleProblem]:
    """Refuse what would hang the rule engine, naming the rule that does it."""
    problems = []
    if len(FIELD_TYPES) + len(dynamic) > MAX_FACT_FIELDS:
        problems.append(
            RuleProblem(
                CAMPAIGN_DIR,
                None,
                f"rules read {len(dynamic)} attributes.* fields; at most "
                f"{MAX_FACT_FIELDS - len(FIELD_TYPES)}",
            )
        )
    values: dict[str, set[object]] = defaultdict(set)
    first_rule: dict[str, tuple[str, int]] = {}
    for campaign in campaigns:
        for rule in campaign.rules:
            for path, value in _equalities(rule.condition, ""):
                values[path].add(value)
                if len(values[path]) > MAX_EQUALITY_VALUES and path not in first_rule:
                    first_rule[path] = (rule.file, rule.line)
    for path, (file, line) in first_rule.items():
        problems.append(
            RuleProblem(
                file,
                line,
                f"{path} is compared with {len(values[path])} distinct values "
                f"across the rules; at most {MAX_EQUALITY_VALUES}",
            )
        )
    return problems


def _equalities(condition: Condition, prefix: str) -> Iterable[tuple[str, object]]:
    match condition:
        case Compare(path, "eq" | "ne", value):
            yield prefix + path, value
        case AllOf(items) | AnyOf(items):
            for item in items:
                yield from _equalities(item, prefix)
        case ArrayAny(path, element) | ArrayAll(path, element):
            yield from _equalities(element, f"{prefix}{path}[].")
