"""The Helm chart as a platform team adopts it: linted, rendered with the default and the
production values, every manifest valid for Kubernetes 1.30 and the newest version known,
checkov clean but for the skips the chart explains, and the values checked by a schema."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import asyncssh
import kubernetes_validate
import pytest
import yaml

from courier.common.db.models import Tenant
from courier.common.settings import Settings
from courier.gateway import hostkeys
from tests.support.chart import (
    CHART,
    CHECKOV,
    NAMESPACE,
    PRODUCTION,
    container,
    deployment,
    env_of,
    helm,
    manifests,
    needs_checkov,
    needs_helm,
    of_kind,
    render,
    sets,
    settings_from,
    values,
)
from tests.support.cli import cli_env, courier

pytestmark = needs_helm

DOCS = CHART.parents[2] / "docs" / "operations.md"
SERVICES = list(values()["services"])
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Custom resources of the Prometheus operator: Kubernetes publishes no schema for them.
CUSTOM_KINDS = {"PodMonitor", "PrometheusRule"}
FEED = {
    "name": "payroll-leave",
    "kind": "leave_balances",
    "pattern": "leave_{yyyyMMdd}.csv",
    "columns": {"employee_id": "Personnel No", "balance_hours": "Hours"},
}
ROTA = {
    "timezone": "Europe/London",
    "people": [{"name": "Ana", "phone": "+447700900001", "email": "ana@ops.example"}],
    "rotations": [
        {"name": "primary", "start": "2026-01-05T09:00", "shift_days": 7, "people": ["Ana"]}
    ],
}
# Every optional part switched on at once: specs, generated host keys, Ingress, an HPA
# with an external metric, the image by digest.
EVERYTHING = sets(
    **{
        "specs.tenants": {"acme": {"feeds": [FEED]}, "globex": {"feeds": [FEED]}},
        "specs.oncall": ROTA,
        "services.gateway.hostKeys.create": True,
        "ingress.enabled": True,
        "services.importer.autoscaling": {
            "enabled": True,
            "minReplicas": 2,
            "maxReplicas": 10,
            "targetCPUUtilizationPercentage": 70,
            "externalMetrics": [
                {
                    "name": "nats_consumer_num_pending",
                    "selector": {"consumer_name": "importer"},
                    "averageValue": "50",
                }
            ],
        },
        "image.digest": "sha256:" + "a" * 64,
    }
)
RENDERS = {"default": [], "production": ["-f", str(PRODUCTION)], "everything": EVERYTHING}


def ports_of(rule: dict[str, Any]) -> set[int]:
    return {p["port"] for p in rule["ports"]}


# ------------------------------------------------------------------ tools


@pytest.mark.parametrize("extra", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_helm_lint_passes_strictly(extra: list[str]) -> None:
    done = helm("lint", str(CHART), "--strict", "--namespace", NAMESPACE, *extra)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", list(RENDERS))
def test_every_manifest_is_valid_for_kubernetes_1_30_and_the_newest(name: str) -> None:
    docs = manifests(*RENDERS[name])
    unchecked = set()
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                unchecked.add(doc["kind"])
            except kubernetes_validate.ValidationError as exc:
                where = f"{doc['kind']}/{doc['metadata']['name']} for {version}"
                pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")
    assert unchecked <= CUSTOM_KINDS


@needs_checkov
def test_checkov_fails_nothing_the_chart_does_not_skip_and_explain(tmp_path: Path) -> None:
    skipped: dict[str, str] = {}
    for name, extra in RENDERS.items():
        done = render(*extra)
        assert done.returncode == 0, done.stderr
        (tmp_path / f"{name}.yaml").write_text(done.stdout)
        for doc in yaml.safe_load_all(done.stdout):
            for key, value in ((doc or {}).get("metadata", {}).get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check, reason = value.split("=", 1)
                    skipped[check] = reason
    assert CHECKOV is not None
    ran = subprocess.run(
        [CHECKOV, "--skip-download", "--framework", "kubernetes", "-d", str(tmp_path),
         "--output", "json"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    report = json.loads(ran.stdout)
    summary = report["summary"]
    failed = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert summary["passed"] > 700 and summary["parsing_errors"] == 0
    # Each skip is explained in the operations guide, under the chart's section.
    guide = DOCS.read_text().split("## Helm chart", 1)[1].split("\n## ", 1)[0]
    for check in skipped:
        assert f"`{check}`" in guide, check
    # The digest check is skipped only while no digest pins the image.
    assert "CKV_K8S_43" not in json.dumps(of_kind(manifests(*EVERYTHING), "Deployment"))


@pytest.mark.parametrize(
    ("option", "error"),
    [
        (["--set", "replica=3"], "additional properties 'replica' not allowed"),
        (["--set", "services.importer.replicaz=3"], "additional properties 'replicaz' not allowed"),
        (["--set", "services.importer.probes.liveness.period=3"], "'period' not allowed"),
        (["--set", "services.importer.replicas=two"], "got string, want integer"),
        (["--set", "services.gateway.service.externalTrafficPolicy=Global"], "Local"),
        (["--set", "config.logLevel=LOUD"], "logLevel"),
        (["--set", "networkPolicy.enabled=yes"], "got string, want boolean"),
    ],
    ids=[
        "unknown-top-key",
        "unknown-service-key",
        "unknown-probe-key",
        "wrong-type",
        "wrong-enum",
        "wrong-log-level",
        "string-for-boolean",
    ],
)
def test_schema_refuses_unknown_keys_and_wrong_types(option: list[str], error: str) -> None:
    done = render(*option)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert error in done.stderr


def test_every_value_is_commented_and_every_schema_key_described() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^( *)([A-Za-z][\w.-]*):")
    # Kubernetes objects passed through as they are: commented as a whole.
    passed_through = {"podSecurityContext", "containerSecurityContext", "resources"}
    bare, path = [], []
    for at, line in enumerate(lines):
        found = key.match(line)
        if not found:
            continue
        depth = len(found.group(1)) // 2
        path = [*path[:depth], found.group(2)]
        if (
            depth > 3
            or passed_through & set(path[:-1])
            or (path[:2] == ["networkPolicy", "egress"] and depth == 3)  # `to`, `ports`
        ):
            continue
        if "#" not in line and not lines[at - 1].lstrip().startswith("#"):
            bare.append(".".join(path))
    assert bare == []

    schema = json.loads((CHART / "values.schema.json").read_text())

    def undescribed(node: dict[str, Any], path: str) -> list[str]:
        out = []
        for name, child in node.get("properties", {}).items():
            if "description" not in child:
                out.append(f"{path}.{name}")
            out += undescribed(child, f"{path}.{name}")
        return out

    assert undescribed(schema, "") == []
    for name, node in schema["$defs"].items():
        assert undescribed(node, name) == []


# ------------------------------------------------------------------ what is rendered


def test_default_render_holds_every_part_of_a_deployment() -> None:
    kinds = [d["kind"] for d in manifests()]
    assert kinds.count("Deployment") == len(SERVICES) == 8
    assert kinds.count("PodDisruptionBudget") == len(SERVICES)
    assert kinds.count("NetworkPolicy") == len(SERVICES) + 2  # + default deny, migrations
    for kind in ("Service", "ServiceAccount", "Job", "PodMonitor", "PrometheusRule"):
        assert kind in kinds, kind
    assert "HorizontalPodAutoscaler" not in kinds and "Ingress" not in kinds
    everything = [d["kind"] for d in manifests(*EVERYTHING)]
    for kind in ("Ingress", "HorizontalPodAutoscaler", "Secret"):
        assert kind in everything, kind
    assert everything.count("Job") == 2  # migrations before, specs after


def test_every_pod_runs_hardened_without_a_service_account_token() -> None:
    docs = manifests(*EVERYTHING)
    workloads = [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values()]
    assert len(workloads) == len(SERVICES) + 2
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] >= 10000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        tmp = {v["name"]: v for v in pod["volumes"]}["tmp"]
        assert "emptyDir" in tmp
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
            assert c["resources"]["requests"]["memory"]
            assert c["image"].endswith("@sha256:" + "a" * 64)
    (account,) = of_kind(docs, "ServiceAccount").values()
    assert account["automountServiceAccountToken"] is False


def test_probes_resources_and_replicas_come_from_each_service_block() -> None:
    docs = manifests(
        *sets(
            **{
                "services.importer.probes.liveness.periodSeconds": 42,
                "services.importer.probes.startup.failureThreshold": 90,
                "services.importer.replicas": 5,
                "services.importer.resources.requests.cpu": "750m",
                "services.console.probes.readiness.timeoutSeconds": 7,
            }
        )
    )
    importer = container(deployment(docs, "importer"))
    assert importer["livenessProbe"]["periodSeconds"] == 42
    assert importer["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert importer["startupProbe"]["failureThreshold"] == 90
    assert importer["resources"]["requests"]["cpu"] == "750m"
    assert deployment(docs, "importer")["spec"]["replicas"] == 5
    console = container(deployment(docs, "console"))
    assert console["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": "health"},
        "periodSeconds": 5,
        "timeoutSeconds": 7,
        "failureThreshold": 2,
    }
    # Untouched services keep their own defaults.
    assert container(deployment(docs, "poller"))["livenessProbe"]["periodSeconds"] == 10


def test_gateway_drains_on_stop_and_the_others_finish_the_message_in_hand() -> None:
    docs = manifests()
    gateway = deployment(docs, "gateway")
    grace = gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert container(gateway)["lifecycle"]["preStop"] == {
        "exec": {"command": ["courier", "gateway", "drain"]}
    }
    # Sessions get the grace period but for the wind-down after the drain's deadline.
    assert env_of(gateway)["COURIER_GATEWAY_DRAIN_SECONDS"] == str(grace - 10)
    for name in set(SERVICES) - {"gateway"}:
        dep = deployment(docs, name)
        assert container(dep)["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
        assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


async def test_the_gateway_prestop_command_exists_in_the_cli() -> None:
    code, out = await courier(cli_env(Settings()), "gateway", "drain", "--help")
    assert code == 0, out


def test_only_gateway_and_console_take_outside_traffic_and_egress_is_by_role() -> None:
    docs = manifests()
    policies = of_kind(docs, "NetworkPolicy")
    deny = policies["t-default-deny"]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    config = values()["networkPolicy"]
    for name in SERVICES:
        spec = policies[name]["spec"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
        outside = [r for r in spec["ingress"] if ports_of(r) != {9100}]
        metrics = [r for r in spec["ingress"] if ports_of(r) == {9100}]
        assert [r["from"] for r in metrics] == [config["prometheus"]]
        if name == "gateway":
            assert [ports_of(r) for r in outside] == [{2222}]
        elif name == "console":
            assert [(ports_of(r), r["from"]) for r in outside] == [
                ({8080}, config["ingressController"])
            ]
        else:
            assert outside == [], name
        reached = {p for rule in spec["egress"] for p in ports_of(rule)}
        assert {53, 5432, 4222} <= reached
        assert (587 in reached) == (name == "notifier"), name
        assert (22 in reached) == (name in {"poller", "exporter"}), name
        assert (443 in reached) == (name != "monitor"), name
    migrate = policies["migrate"]["spec"]
    assert "ingress" not in migrate
    assert {p for r in migrate["egress"] for p in ports_of(r)} == {53, 5432}


def test_production_values_render_the_production_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = manifests("-f", str(PRODUCTION))
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"gateway", "importer"}
    importer_metrics = hpas["importer"]["spec"]["metrics"]
    assert [m["type"] for m in importer_metrics] == ["Resource", "External"]
    assert importer_metrics[1]["external"]["metric"]["selector"]["matchLabels"] == {
        "consumer_name": "importer",
        "stream_name": "COURIER_FILES",
    }
    # An HPA owns the replica count of what it scales.
    assert "replicas" not in deployment(docs, "importer")["spec"]
    assert deployment(docs, "monitor")["spec"]["replicas"] == 2

    (ingress,) = of_kind(docs, "Ingress").values()
    assert ingress["spec"]["tls"] == [
        {"hosts": ["courier.example.com"], "secretName": "courier-console-tls"}
    ]
    assert ingress["spec"]["rules"][0]["host"] == "courier.example.com"

    service = of_kind(docs, "Service")["gateway"]["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["externalTrafficPolicy"] == "Local"
    assert service["loadBalancerSourceRanges"] == ["203.0.113.0/24", "198.51.100.10/32"]

    # The settings every service starts with: three NATS nodes, streams kept three
    # times, S3 per region, the default region among them.
    env = env_of(deployment(docs, "importer"))
    settings = settings_from(env, monkeypatch)
    assert len(settings.nats_url.split(",")) == 3
    assert env["COURIER_NATS_REPLICAS"] == "3"
    stores = settings.region_stores()
    assert set(stores) == {"eu-west-2", "ap-southeast-2"}
    assert all(s.backup_url and s.sse == "aws:kms" for s in stores.values())
    # The database is external, by Secret; IRSA gives S3 access without keys.
    assert container(deployment(docs, "importer"))["envFrom"] == [
        {"secretRef": {"name": "courier-secrets"}}
    ]
    (account,) = of_kind(docs, "ServiceAccount").values()
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]


def test_ingress_refuses_a_console_address_without_https() -> None:
    done = render("--set", "ingress.enabled=true", "--set", "config.consoleBaseUrl=http://x.io")
    assert done.returncode != 0 and "must be https://" in done.stderr


def test_host_keys_come_from_an_existing_secret_by_default() -> None:
    docs = manifests()
    assert "Secret" not in {d["kind"] for d in docs}
    volumes = deployment(docs, "gateway")["spec"]["template"]["spec"]["volumes"]
    secret = {v["name"]: v for v in volumes}["hostkeys"]["secret"]
    assert secret["secretName"] == "courier-gateway-hostkeys"
    # Every key of the Secret, so a rotation's `.next` keys are served as well.
    assert "items" not in secret
    assert env_of(deployment(docs, "gateway"))["COURIER_GATEWAY_HOST_KEY_DIR"] == (
        "/etc/courier/hostkeys"
    )


def test_generated_host_keys_are_ones_the_gateway_serves_and_are_kept(tmp_path: Path) -> None:
    docs = manifests("--set", "services.gateway.hostKeys.create=true")
    (secret,) = of_kind(docs, "Secret").values()
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for name, data in secret["data"].items():
        (tmp_path / name).write_bytes(base64.b64decode(data))
    served = hostkeys.load_or_create(tmp_path)
    assert [k.get_algorithm() for k in served] == ["ssh-ed25519", "ssh-rsa"]
    rsa = asyncssh.read_private_key(tmp_path / "ssh_host_rsa_key")
    assert rsa.pyca_key.key_size >= 3072


def test_migrations_run_before_and_specs_after_every_install_and_upgrade() -> None:
    jobs = of_kind(manifests(*EVERYTHING), "Job")
    migrate, specs = jobs["migrate"], jobs["specs"]
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # Commands other than `service` replace the image's entrypoint.
    assert (container(migrate)["command"], container(migrate)["args"]) == (
        ["courier"],
        ["db", "upgrade"],
    )
    assert specs["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    # No spec, no Job and no ConfigMap.
    assert "specs" not in of_kind(manifests(), "Job")
    assert "specs" not in of_kind(manifests(), "ConfigMap")


async def test_the_spec_job_applies_feeds_and_the_rota_with_the_real_cli(
    settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    docs = manifests(*sets(**{"specs.tenants": {"acme": {"feeds": [FEED]}}, "specs.oncall": ROTA}))
    files = of_kind(docs, "ConfigMap")["specs"]["data"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    pod = of_kind(docs, "Job")["specs"]["spec"]["template"]["spec"]
    mount = "/etc/courier/specs/"
    assert {"name": "specs", "mountPath": mount.rstrip("/"), "readOnly": True} in (
        pod["containers"][0]["volumeMounts"]
    )
    env = cli_env(settings)
    outputs = []
    for step in pod.get("initContainers", []) + pod["containers"]:
        assert step["command"] == ["courier"]
        args = [a.replace(mount, f"{tmp_path}/") for a in step["args"]]
        code, out = await courier(env, *args)
        assert code == 0, out
        outputs.append(out)
    assert outputs[0].startswith("feed acme/payroll-leave (leave_balances")
    assert "on-call rota applied: 1 rotation(s), 1 people" in outputs[1]
    code, shown = await courier(env, "oncall", "show", "--at", "2026-01-06T10:00")
    assert code == 0 and "Ana" in shown


def test_every_service_has_a_pdb_and_a_podmonitor_scrapes_the_health_port() -> None:
    docs = manifests()
    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert set(pdbs) == set(SERVICES)
    for name, pdb in pdbs.items():
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"] == deployment(docs, name)["spec"]["selector"]
    (monitor,) = of_kind(docs, "PodMonitor").values()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "health"
    for name in SERVICES:
        ports = {p["name"]: p["containerPort"] for p in container(deployment(docs, name))["ports"]}
        assert ports["health"] == 9100
    assert of_kind(docs, "ConfigMap")["t-dashboard"]["metadata"]["labels"]["grafana_dashboard"]
