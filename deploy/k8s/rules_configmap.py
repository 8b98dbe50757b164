"""Render rules/ as the two ConfigMaps the pods mount: `loyalty-programme` (program.yaml)
and `loyalty-campaigns` (one key per campaign file).

    python deploy/k8s/rules_configmap.py rules > deploy/k8s/rules.yaml   # or: make kube-rules

tests/unit/test_deploy_files.py checks the committed rules.yaml is in sync with rules/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HEADER = (
    "# Generated from rules/ by deploy/k8s/rules_configmap.py (make kube-rules); do not edit.\n"
)


def configmaps(rules_dir: Path) -> list[dict[str, object]]:
    campaigns = sorted((rules_dir / "campaigns").glob("*.y*ml"))
    return [
        _configmap("loyalty-programme", {"program.yaml": (rules_dir / "program.yaml")}),
        _configmap("loyalty-campaigns", {path.name: path for path in campaigns}),
    ]


def _configmap(name: str, files: dict[str, Path]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "loyalty"}},
        "data": {key: path.read_text(encoding="utf-8") for key, path in files.items()},
    }


class _Literal(yaml.SafeDumper):
    """Multi-line text as YAML block literals, so the rules stay readable in the diff."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Literal.add_representer(str, _text)


def render(rules_dir: Path) -> str:
    return HEADER + yaml.dump_all(
        configmaps(rules_dir), Dumper=_Literal, sort_keys=False, allow_unicode=True, width=1000
    )


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1] if len(sys.argv) > 1 else "rules")))
