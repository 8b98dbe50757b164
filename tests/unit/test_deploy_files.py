"""The deploy/ files say what they run, and the CLI has it: every command in the Procfile,
Dockerfile, compose.yaml, the Kubernetes manifests and the systemd units parses with
`service.cli.build_parser()`. Plus what each file promises ops: a multi-stage image run
as non-root, probes on /healthz and /readyz, one scheduler, migrations before the web
service, rules ConfigMaps in sync with rules/."""

from __future__ import annotations

import argparse
import configparser
import runpy
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def assert_runs_loyalty(argv: list[str], where: str) -> None:
    """argv is `loyalty ...` and the CLI accepts the rest as it stands."""
    assert argv, f"{where}: no command"
    assert Path(argv[0]).name == "loyalty", f"{where}: runs {argv[0]!r}, not loyalty"
    parser = build_parser()
    if argv[1:2] == ["scheduler"] and "scheduler" not in subcommands(parser):
        pytest.skip(f"{where}: `loyalty scheduler` is not registered in service.cli yet")
    try:
        parser.parse_args(argv[1:])
    except SystemExit as error:
        pytest.fail(f"{where}: the CLI refuses {shlex.join(argv)!r} (exit {error.code})")


# -- Procfile


def procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (DEPLOY / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = shlex.split(command)
    return processes


def test_the_procfile_runs_web_scheduler_and_migrations() -> None:
    processes = procfile()

    assert set(processes) == {"web", "scheduler", "release"}
    assert processes["web"][:2] == ["loyalty", "serve"]
    assert processes["scheduler"] == ["loyalty", "scheduler"]
    assert processes["release"] == ["loyalty", "db", "upgrade"]


@pytest.mark.parametrize("name", ["web", "scheduler", "release"])
def test_each_procfile_command_exists(name: str) -> None:
    assert_runs_loyalty(procfile()[name], f"Procfile {name}")


# -- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    parsed = yaml.safe_load(arguments)  # a JSON array is YAML too
    assert isinstance(parsed, list), f"use the exec form (a JSON array), not {arguments!r}"
    return [str(item) for item in parsed]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_the_image_is_built_in_stages_and_runs_as_a_user_not_root() -> None:
    instructions = dockerfile()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    final = final_stage()

    assert len(stages) >= 2, "multi-stage: build the environment apart from the runtime"
    assert any(k == "COPY" and a.startswith("--from=") for k, a in final)
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "the service must not run as root"
    assert user.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"


def test_the_image_runs_loyalty_serve_by_default() -> None:
    final = final_stage()
    entrypoint = exec_form([a for k, a in final if k == "ENTRYPOINT"][-1])
    command = exec_form([a for k, a in final if k == "CMD"][-1])

    assert entrypoint == ["loyalty"]
    assert_runs_loyalty(entrypoint + command, "Dockerfile ENTRYPOINT + CMD")
    assert command[0] == "serve"


def test_the_image_copies_what_loyalty_serve_reads() -> None:
    copied = [args.split() for keyword, args in final_stage() if keyword == "COPY"]
    targets = {parts[-1] for parts in copied}

    assert "deploy/gunicorn.conf.py" in targets  # for `gunicorn --config` by hand
    assert "rules" in targets
    for parts in copied:
        if parts[0].startswith("--from="):
            continue  # from the build stage, not the repository
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repo"


# -- compose.yaml


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_compose_has_postgres_migrations_web_and_scheduler() -> None:
    services = compose()["services"]

    assert set(services) == {"postgres", "migrate", "web", "scheduler"}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "scheduler"):
        after = services[name]["depends_on"]["migrate"]["condition"]
        assert after == "service_completed_successfully", name
        assert services[name]["environment"]["LOYALTY_ENV"] == "production"


@pytest.mark.parametrize("name", ["migrate", "web", "scheduler"])
def test_each_compose_command_exists(name: str) -> None:
    service = compose()["services"][name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"

    # The image's ENTRYPOINT is `loyalty`; compose's command is its arguments.
    assert_runs_loyalty(["loyalty", *service["command"]], f"compose.yaml {name}")


# -- Kubernetes


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document and document["kind"] != "Kustomization":
                yield path.name, document


def kind(name: str, wanted: str) -> dict[str, Any]:
    found = [
        doc for _, doc in manifests() if doc["kind"] == wanted and doc["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"one {wanted} {name!r} in deploy/k8s"
    return found[0]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def test_every_manifest_parses_and_names_its_kind() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()}
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))

    assert set(listed["resources"]) <= {path.name for path in K8S.glob("*.yaml")}

    assert kinds >= {
        ("Deployment", "loyalty-web"),
        ("Deployment", "loyalty-scheduler"),
        ("Service", "loyalty-web"),
        ("Job", "loyalty-migrate"),
        ("Secret", "loyalty-secrets"),
        ("ConfigMap", "loyalty-programme"),
        ("ConfigMap", "loyalty-campaigns"),
    }


@pytest.mark.parametrize(
    ("workload", "name"),
    [
        ("Deployment", "loyalty-web"),
        ("Deployment", "loyalty-scheduler"),
        ("Job", "loyalty-migrate"),
    ],
)
def test_each_kubernetes_command_exists_and_runs_as_non_root(workload: str, name: str) -> None:
    manifest = kind(name, workload)
    pod = manifest["spec"]["template"]["spec"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in containers(manifest):
        argv = container.get("command", ["loyalty"]) + container.get("args", [])
        assert_runs_loyalty(argv, f"k8s {workload} {name}")
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        secrets = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
        assert secrets == ["loyalty-secrets"]


def test_the_web_deployment_is_probed_on_healthz_and_readyz() -> None:
    (web,) = containers(kind("loyalty-web", "Deployment"))

    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["args"][:1] == ["serve"]


def test_the_service_selects_the_web_pods() -> None:
    service = kind("loyalty-web", "Service")
    labels = kind("loyalty-web", "Deployment")["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"] for p in containers(kind("loyalty-web", "Deployment"))[0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_one_scheduler_and_the_rules_mounted_where_the_service_reads_them() -> None:
    scheduler = kind("loyalty-scheduler", "Deployment")

    assert scheduler["spec"]["replicas"] == 1
    for name in ("loyalty-web", "loyalty-scheduler"):
        workload = kind(name, "Deployment")
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        (container,) = containers(workload)
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        rules = env["LOYALTY_RULES_DIR"]
        programme = mounts[f"{rules}/program.yaml"]
        assert volumes[programme["name"]]["configMap"]["name"] == "loyalty-programme"
        assert programme["subPath"] == "program.yaml"
        campaigns = mounts[f"{rules}/campaigns"]
        assert volumes[campaigns["name"]]["configMap"]["name"] == "loyalty-campaigns"


def test_the_rules_configmaps_are_in_sync_with_rules_dir() -> None:
    generator = runpy.run_path(str(K8S / "rules_configmap.py"))
    expected = generator["render"](ROOT / "rules")
    committed = (K8S / "rules.yaml").read_text(encoding="utf-8")

    assert committed == expected, "deploy/k8s/rules.yaml is stale: run `make kube-rules`"
    programme = kind("loyalty-programme", "ConfigMap")["data"]
    campaigns = kind("loyalty-campaigns", "ConfigMap")["data"]
    assert programme == {"program.yaml": (ROOT / "rules/program.yaml").read_text("utf-8")}
    assert set(campaigns) == {p.name for p in (ROOT / "rules/campaigns").glob("*.yaml")}


def test_the_secret_ships_without_a_usable_key() -> None:
    secret = kind("loyalty-secrets", "Secret")

    assert secret["stringData"]["LOYALTY_API_KEYS"] == ""


# -- systemd


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name, encoding="utf-8")
    return parser


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("loyalty-migrate.service", ["db", "upgrade"]),
        ("loyalty-web.service", ["serve"]),
        ("loyalty-scheduler.service", ["scheduler"]),
    ],
)
def test_each_systemd_unit_runs_a_command_that_exists(name: str, command: list[str]) -> None:
    service = unit(name)["Service"]
    argv = shlex.split(service["ExecStart"])

    assert argv[1 : 1 + len(command)] == command
    assert_runs_loyalty(argv, f"systemd {name}")
    assert service["User"] not in ("", "root")
    assert Path(service["WorkingDirectory"]).is_absolute()


def test_web_and_scheduler_units_start_after_the_migrations() -> None:
    for name in ("loyalty-web.service", "loyalty-scheduler.service"):
        section = unit(name)["Unit"]
        assert "loyalty-migrate.service" in section["Requires"].split()
        assert "loyalty-migrate.service" in section["After"].split()
    assert unit("loyalty-web.service")["Service"]["KillSignal"] == "SIGTERM"
