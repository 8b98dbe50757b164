"""A rules diff as a terminal table, as JSON, or as Markdown for a pull-request comment."""

from __future__ import annotations

import json

from service.application.impact import CampaignImpact, Change, Impact

FORMATS = ("table", "json", "markdown")
# The CI workflow finds (and updates) its earlier comment by this marker.
COMMENT_MARKER = "<!-- loyalty-rules-diff -->"

_TOTAL_LABELS = {
    "points_issued": "points issued",
    "points_clawed": "points clawed back",
    "members_affected": "members affected",
    "offers": "offers issued",
    "messages": "messages queued",
    "tier_changes": "tier changes",
    "budget_used": "budget used (points)",
}


def render(impact: Impact, form: str) -> str:
    if form == "json":
        run = {"run": impact.run.as_dict()} if impact.run is not None else {}
        return json.dumps({**impact.as_dict(), **run}, indent=2)
    if form == "markdown":
        return markdown(impact)
    return table(impact)


def _n(value: int) -> str:
    return f"{value:,}"


def _delta(change: Change) -> str:
    if change.delta == 0:
        return "0"
    share = f" ({100 * change.delta / change.base:+.1f}%)" if change.base else ""
    return f"{change.delta:+,}{share}"


def _budget(campaign: CampaignImpact) -> str:
    used = campaign.metrics["budget"]
    if campaign.budget_points is None and not (used.base or used.head):
        return "-"
    limit = f" / {campaign.budget_points:,}" if campaign.budget_points is not None else ""
    return f"{used.base:,} -> {used.head:,}{limit}"


def _summary(impact: Impact) -> list[str]:
    skipped = f", {impact.skipped:,} skipped" if impact.skipped else ""
    duplicates = f", {impact.duplicates:,} duplicates" if impact.duplicates else ""
    lines = [
        f"Replayed {impact.events:,} events from {impact.source} in {impact.seconds:.1f} s"
        f"{skipped}{duplicates}.",
        f"{impact.members_changed:,} member(s) would see a different outcome.",
    ]
    changed = [f"{kind} {', '.join(paths)}" for kind, paths in impact.files.items() if paths]
    lines.append("Files: " + ("; ".join(changed) if changed else "no rule file changed"))
    if impact.run is not None:
        memory = ", ".join(f"{name} {mib:,.0f} MiB" for name, mib in impact.run.memory_mib)
        lines.append(f"Ran in {impact.run.how}; peak memory: {memory}.")
    return lines


def _grid(rows: list[list[str]], numeric_from: int = 1) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < numeric_from else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def table(impact: Impact) -> str:
    out = [f"Rules diff: base {impact.base_version} -> head {impact.head_version}"]
    out += _summary(impact)
    out.append("")
    rows = [["total", "base", "head", "change"]]
    for name, change in impact.totals.items():
        rows.append([_TOTAL_LABELS[name], _n(change.base), _n(change.head), _delta(change)])
    out += _grid(rows)
    out.append("")
    rows = [
        [
            "campaign",
            "status",
            "points base",
            "points head",
            "change",
            "members",
            "offers",
            "messages",
            "tier grants",
            "budget used",
        ]
    ]
    for campaign in impact.campaigns:
        metrics = campaign.metrics
        rows.append(
            [
                campaign.campaign,
                campaign.status,
                _n(metrics["points"].base),
                _n(metrics["points"].head),
                _delta(metrics["points"]),
                f"{metrics['members'].base:,} -> {metrics['members'].head:,}",
                f"{metrics['offers'].base:,} -> {metrics['offers'].head:,}",
                f"{metrics['messages'].base:,} -> {metrics['messages'].head:,}",
                f"{metrics['tier_grants'].base:,} -> {metrics['tier_grants'].head:,}",
                _budget(campaign),
            ]
        )
    out += _grid(rows, numeric_from=2)
    if impact.customers:
        out.append("")
        out.append("members who change most")
        rows = [["member", "points base", "points head", "change", "offers", "tier at the end"]]
        for customer in impact.customers:
            rows.append(
                [
                    customer.customer_id,
                    _n(customer.points.base),
                    _n(customer.points.head),
                    _delta(customer.points),
                    f"{customer.offers.base} -> {customer.offers.head}",
                    _tier(customer.tier_base, customer.tier_head),
                ]
            )
        out += _grid(rows)
    out.append("")
    out.append(
        "tiers at the end: "
        + ", ".join(f"{name} {c.base:,} -> {c.head:,}" for name, c in impact.tiers.items())
    )
    if impact.skipped_examples:
        out.append("skipped: " + " | ".join(impact.skipped_examples))
    return "\n".join(out)


def _tier(base: str | None, head: str | None) -> str:
    return f"{base}" if base == head else f"{base} -> {head}"


def _md_delta(change: Change) -> str:
    text = _delta(change)
    return f"**{text}**" if change.delta else text


MARKDOWN_UNCHANGED_ROWS = 100  # a pull-request comment holds at most 65,536 characters


def _moved(campaign: CampaignImpact) -> bool:
    return campaign.status != "unchanged" or any(c.delta for c in campaign.metrics.values())


def _campaign_rows(campaigns: list[CampaignImpact]) -> list[str]:
    rows = [
        "| campaign | status | points (base → head) | change | members | offers | messages "
        "| tier grants | budget used |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for campaign in campaigns:
        m = campaign.metrics
        name = f"**{campaign.campaign}**" if campaign.status != "unchanged" else campaign.campaign
        rows.append(
            f"| {name} | {campaign.status} | {_n(m['points'].base)} → {_n(m['points'].head)} "
            f"| {_md_delta(m['points'])} | {m['members'].base:,} → {m['members'].head:,} "
            f"| {m['offers'].base:,} → {m['offers'].head:,} "
            f"| {m['messages'].base:,} → {m['messages'].head:,} "
            f"| {m['tier_grants'].base:,} → {m['tier_grants'].head:,} "
            f"| {_budget(campaign).replace('->', '→')} |"
        )
    return rows


def markdown(impact: Impact) -> str:
    out = [
        COMMENT_MARKER,
        f"### Rules impact: `{impact.base_version}` → `{impact.head_version}`",
        "",
        " ".join(_summary(impact)),
        "",
        "| total | base | head | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, change in impact.totals.items():
        out.append(
            f"| {_TOTAL_LABELS[name]} | {_n(change.base)} | {_n(change.head)} "
            f"| {_md_delta(change)} |"
        )
    moved = [c for c in impact.campaigns if _moved(c)]
    still = [c for c in impact.campaigns if not _moved(c)]
    out += ["", "#### Campaigns that change", ""]
    out += _campaign_rows(moved) if moved else ["None: every campaign does what it did."]
    if still:
        shown = still[:MARKDOWN_UNCHANGED_ROWS]
        more = len(still) - len(shown)
        out += [
            "",
            f"<details><summary>{len(still)} campaign(s) that do the same</summary>",
            "",
            *_campaign_rows(shown),
            *(["", f"and {more} more"] if more else []),
            "",
            "</details>",
        ]
    if impact.customers:
        out += [
            "",
            f"<details><summary>The {len(impact.customers)} members who change most</summary>",
            "",
            "| member | points (base → head) | change | offers | tier at the end |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for customer in impact.customers:
            out.append(
                f"| `{customer.customer_id}` | {_n(customer.points.base)} → "
                f"{_n(customer.points.head)} | {_delta(customer.points)} "
                f"| {customer.offers.base} → {customer.offers.head} "
                f"| {_tier(customer.tier_base, customer.tier_head).replace('->', '→')} |"
            )
        out += ["", "</details>"]
    out += [
        "",
        "Tiers at the end: "
        + ", ".join(f"{name} {c.base:,} → {c.head:,}" for name, c in impact.tiers.items()),
    ]
    if impact.skipped_examples:
        out += ["", "Skipped entries: " + "; ".join(f"`{s}`" for s in impact.skipped_examples)]
    return "\n".join(out)
