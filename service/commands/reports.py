"""`loyalty report kpis|liability`: the programme's measures over a period and what its
outstanding points are worth, as a table, JSON (what the HTTP API answers) or CSV.

Exit code 0 with the report on stdout; 1 for a campaign neither in the rules nor the
period's awards; 2 for arguments or settings that cannot be used.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from service.settings import Settings

FORMATS = ("table", "json", "csv")
LISTS = {"campaigns": "campaign", "by_expiry_month": "month"}  # list -> the field naming a row


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = commands.add_parser("report", help="the programme's KPIs and points liability")
    reports = report.add_subparsers(dest="report_command", required=True)
    kpis = reports.add_parser(
        "kpis",
        help="members, points, rates, orders, referrals, tiers and campaigns over [from, to)",
    )
    kpis.add_argument("--from", dest="from_date", required=True, metavar="DATE")
    kpis.add_argument(
        "--to", dest="to_date", required=True, metavar="DATE", help="the day after the last"
    )
    kpis.add_argument("--campaign", help="list this campaign alone")
    kpis.add_argument("--format", choices=FORMATS, default="table")
    kpis.set_defaults(
        handler=lambda args: report_command(
            "kpis",
            {"from": args.from_date, "to": args.to_date}
            | ({"campaign": args.campaign} if args.campaign is not None else {}),
            args.format,
        )
    )
    liability = reports.add_parser(
        "liability", help="outstanding points in money at the end of a day, by expiry month"
    )
    liability.add_argument("--as-of", dest="as_of", metavar="DATE", help="the day (default: today)")
    liability.add_argument("--format", choices=FORMATS, default="table")
    liability.set_defaults(
        handler=lambda args: report_command(
            "liability",
            {"as_of": args.as_of} if args.as_of is not None else {},
            args.format,
        )
    )


def report_command(name: str, query: Mapping[str, str], output: str) -> int:
    from marshmallow import ValidationError

    from service.bootstrap import build_services
    from service.core.errors import NotFound, RuleFileError
    from service.settings import SettingsError

    try:
        services = build_services(Settings.from_env())
    except (SettingsError, RuleFileError) as error:
        print(f"loyalty report {name}: {error}", file=sys.stderr)
        return 2
    try:
        document = run_report(services, name, query)
    except ValidationError as error:
        for field, problems in _messages(error.messages):
            print(
                f"loyalty report {name}: --{field.replace('_', '-')}: {problems}", file=sys.stderr
            )
        return 2
    except NotFound as error:
        print(f"loyalty report {name}: {error}", file=sys.stderr)
        return 1
    finally:
        services.db.dispose()
    write(document, output, sys.stdout)
    return 0


def run_report(services: Any, name: str, query: Mapping[str, str]) -> dict[str, Any]:
    """The report's JSON document, as the HTTP API answers it."""
    from service.application.reports import kpi_report, liability_report, local_today
    from service.report_schema import (
        KpiQuery,
        KpiReportSchema,
        LiabilityQuery,
        LiabilityReportSchema,
    )
    from service.storage.report_store import report_reads

    ruleset = services.rules.active.ruleset
    reads = report_reads(services.db)
    if name == "kpis":
        asked = KpiQuery().load(dict(query))
        report = kpi_report(
            reads, ruleset, asked["from_date"], asked["to_date"], asked.get("campaign")
        )
        return dict(KpiReportSchema().dump(report))
    asked = LiabilityQuery().load(dict(query))
    day = asked.get("as_of") or local_today(services.clock(), ruleset.programme.timezone)
    return dict(LiabilityReportSchema().dump(liability_report(reads, ruleset.programme, day)))


def write(document: Mapping[str, Any], output: str, out: Any) -> None:
    if output == "json":
        out.write(json.dumps(document, indent=2) + "\n")
    elif output == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["measure", "value"])
        writer.writerows((name, "" if value is None else value) for name, value in flat(document))
    else:
        out.write(table(document))


def flat(document: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("members.total", 12), ("campaigns.base-earn.points", 340), ...: every value once."""
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flat(value, f"{name}.")
        elif isinstance(value, list):
            for row in value:
                label = row[LISTS[key]] or "never"
                rest = {k: v for k, v in row.items() if k != LISTS[key]}
                yield from flat(rest, f"{name}.{label}.")
        else:
            yield name, value


def table(document: Mapping[str, Any]) -> str:
    """The single values as `name  value` lines, then each list as a table of its own."""
    singles = [(name, value) for name, value in flat(_without_lists(document))]
    width = max(len(name) for name, _ in singles)
    lines = [f"{name:<{width}}  {_cell(value)}" for name, value in singles]
    for key in LISTS:
        rows = document.get(key)
        if rows is None:
            continue
        lines.append("")
        columns = list(rows[0]) if rows else [LISTS[key]]
        cells = [
            [_cell(row[c] if c != "month" else row[c] or "never") for c in columns] for row in rows
        ]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        lines.append(f"{key}:" if rows else f"{key}: none")
        for row in [columns, *cells] if rows else []:
            first, *rest = row
            lines.append(
                "  ".join(
                    [f"{first:<{widths[0]}}"]
                    + [f"{cell:>{w}}" for cell, w in zip(rest, widths[1:], strict=True)]
                ).rstrip()
            )
    return "\n".join(lines) + "\n"


def _without_lists(document: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in LISTS}


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _messages(messages: Any) -> Iterator[tuple[str, str]]:
    if isinstance(messages, Mapping):
        for field, problems in messages.items():
            text = "; ".join(problems) if isinstance(problems, list) else str(problems)
            yield str(field), text
    else:
        yield "arguments", str(messages)
