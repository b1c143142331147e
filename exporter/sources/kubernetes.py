"""Engines of a Kubernetes node (the DaemonSet variant): annotated pods joined with their GPUs.

Every ``discovery_interval_seconds`` the sampler polls :class:`KubernetesEngineDiscovery`,
which

1. lists the pods on this node from the API server with the pod's service account
   (``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>&resourceVersion=0``; ``0`` lets the
   API server answer from its watch cache instead of etcd, as the kubelet's own lists do);
2. asks the kubelet's pod-resources socket which GPUs each pod holds
   (:mod:`rooftop.exporter.sources.podresources`);
3. returns one :class:`DiscoveredEngine` per running pod annotated with
   ``rooftop.dev/engine-port`` (a number, or the name of one of its container ports):
   ``http://<podIP>:<port><path>``, named ``<namespace>/<pod>``, with that pod's GPUs.

Nothing else from the API is ever used as an address: the host is the pod's IP (checked to be
an IP address, and not loopback, link-local or unspecified), the port a number, the path a
plain path. A pod whose annotation is unusable is skipped with a warning; the others go on.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import ssl
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from rooftop.exporter.sources.base import DiscoveredEngine, SourceKind
from rooftop.exporter.sources.http import FetchError, fetch_bytes
from rooftop.exporter.sources.podresources import PodKey, PodResourcesClient

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""A node runs at most 110 pods by default (``maxPods``); with managedFields a pod's JSON is
a few to ~30 KB, so a node's list is a few MB at most."""
DEFAULT_METRICS_PATH: Final = "/metrics"
_PATH: Final = re.compile(r"/[A-Za-z0-9._~/-]{0,255}")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_RBAC_FIX: Final = (
    "the service account needs get/list on pods (ClusterRole rooftop-pod-reader and its "
    "binding in deploy/kubernetes/daemonset/rbac.yaml)"
)


class KubernetesApiError(Exception):
    """The API server could not be read this time; the message says what to fix."""


class KubernetesConfigError(Exception):
    """Kubernetes discovery is configured but cannot work here (not in a pod, no token);
    serve wiring reports it as a configuration error."""


class InvalidEngineAnnotation(ValueError):
    """An annotated pod cannot be read as an engine; the message names the pod and why."""


class KubernetesApi:
    """A minimal read-only client of the Kubernetes API: one GET, bounded in time and size.

    ``token`` is called before every request: projected service-account tokens are rotated by
    the kubelet (hourly), so the file is read each time, as client-go does.
    """

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str | None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if timeout_seconds <= 0 or max_body_bytes <= 0:
            raise ValueError("timeout_seconds and max_body_bytes must be > 0")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout_seconds
        self._max_bytes = max_body_bytes
        self._ssl_context = ssl_context

    @classmethod
    def in_cluster(
        cls,
        environ: Mapping[str, str] | None = None,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
        **options: Any,
    ) -> KubernetesApi:
        """The API server as a pod sees it: ``KUBERNETES_SERVICE_HOST``/``_PORT``, the
        mounted service-account token, and its ``ca.crt`` for TLS verification.

        Raises :class:`KubernetesConfigError` when not running in a pod with a token.
        """
        env = os.environ if environ is None else environ
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port.isdigit():
            raise KubernetesConfigError(
                "kubernetes_node_name is set but KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT "
                "are not: Kubernetes discovery only works inside a pod (unset "
                "ROOFTOP_KUBERNETES_NODE_NAME elsewhere)"
            )
        token_path = service_account_dir / "token"
        ca_path = service_account_dir / "ca.crt"
        for path in (token_path, ca_path):
            if not path.is_file():
                raise KubernetesConfigError(
                    f"{path} not found: the pod needs its service-account token mounted "
                    "(serviceAccountName: rooftop, automountServiceAccountToken not false)"
                )
        try:
            context = ssl.create_default_context(cafile=str(ca_path))
        except (OSError, ssl.SSLError) as error:
            raise KubernetesConfigError(f"cannot load the cluster CA {ca_path}: {error}") from None
        if ":" in host:  # an IPv6 service address
            host = f"[{host}]"

        def token() -> str:
            try:
                return token_path.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise KubernetesApiError(f"cannot read {token_path}: {error.strerror}") from None

        return cls(f"https://{host}:{port}", token, context, **options)

    def get_json(self, path_and_query: str) -> Any:
        """GET a path on the API server and parse its JSON; raises :class:`KubernetesApiError`."""
        url = self.base_url + path_and_query
        headers = {"Accept": "application/json"}
        token = self._token() if self._token is not None else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            body = fetch_bytes(
                url,
                self._timeout,
                self._max_bytes,
                headers=headers,
                ssl_context=self._ssl_context,
            )
        except FetchError as error:
            raise KubernetesApiError(self._describe(url, error)) from None
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise KubernetesApiError(f"{url}: the answer is not JSON ({error})") from None

    def _describe(self, url: str, error: FetchError) -> str:
        if isinstance(error.reason, ssl.SSLCertVerificationError):
            return (
                f"{url}: TLS verification failed ({error.reason.verify_message}); the API "
                "server's certificate must be signed by the service account's ca.crt"
            )
        if error.problem == "oversized":
            return f"{url}: answer over {self._max_bytes} bytes"
        if error.problem == "deadline":
            return f"{url}: answer not complete within {self._timeout} s"
        if error.problem == "connect":
            return f"{url}: cannot connect ({error.reason or error})"
        if error.status is None:
            return str(error)
        message = ""
        try:
            status = json.loads(error.error_body)
            if isinstance(status, dict) and isinstance(status.get("message"), str):
                message = f": {status['message'][:300]}"
        except ValueError:
            pass
        if error.status == 401:
            return f"{url}: HTTP 401 Unauthorized{message} (the service-account token was rejected)"
        if error.status == 403:
            return f"{url}: HTTP 403 Forbidden{message}; {_RBAC_FIX}"
        return f"{error}{message}"

    def pods_on_node(self, node_name: str) -> list[Mapping[str, Any]]:
        """The pods scheduled on ``node_name`` (``v1.PodList.items``)."""
        query = urllib.parse.urlencode(
            {"fieldSelector": f"spec.nodeName={node_name}", "resourceVersion": "0"}
        )
        document = self.get_json(f"/api/v1/pods?{query}")
        items = document.get("items") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise KubernetesApiError(
                f"{self.base_url}/api/v1/pods: expected a PodList with an items list"
            )
        return [item for item in items if isinstance(item, dict)]


def _text(mapping: Any, key: str) -> str | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else None


def engine_url(pod_ip: str, port_text: str, path: str) -> str:
    """``http://<pod IP>:<port><path>``; raises :class:`ValueError` unless the IP is a
    routable pod address, the port a number and the path a plain path."""
    try:
        address = ipaddress.ip_address(pod_ip)
    except ValueError:
        raise ValueError(f"podIP {pod_ip!r} is not an IP address") from None
    if (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
    ):
        raise ValueError(f"podIP {pod_ip} is not a pod address (loopback/link-local/unspecified)")
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} is not a number in 1-65535")
    if not _PATH.fullmatch(path) or "//" in path or "/../" in f"{path}/":
        raise ValueError(f"path {path!r} is not a plain path such as /metrics")
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"http://{host}:{int(port_text)}{path}"
    parts = urllib.parse.urlsplit(url)
    if parts.hostname != str(address) or parts.port != int(port_text):  # belt and braces
        raise ValueError(f"{url!r} does not point at {address}:{port_text}")
    return url


def engine_config_for_pod(
    pod: Mapping[str, Any],
    node_name: str,
    port_annotation: str,
    path_annotation: str,
    gpus: Mapping[PodKey, tuple[str, ...]],
) -> DiscoveredEngine | None:
    """The engine in ``pod``, or ``None`` when the pod is not annotated, not running, or has
    no IP yet. Raises :class:`InvalidEngineAnnotation` for an annotated pod that cannot be
    used. ``gpus`` unset (``None`` in the config) when pod-resources lists none for the pod:
    the sampler then maps its GPUs as for any engine."""
    metadata = pod.get("metadata")
    namespace = _text(metadata, "namespace")
    name = _text(metadata, "name")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict) or port_annotation not in annotations:
        return None
    where = f"pod {namespace}/{name}"
    if not namespace or not name:
        raise InvalidEngineAnnotation("an annotated pod without metadata.name/namespace")
    status = pod.get("status")
    if _text(status, "phase") != "Running" or _text(metadata, "deletionTimestamp"):
        return None
    if _text(pod.get("spec"), "nodeName") != node_name:
        raise InvalidEngineAnnotation(f"{where} is on another node than {node_name}")
    pod_ip = _text(status, "podIP")
    if not pod_ip:
        return None
    port = annotations.get(port_annotation)
    path = annotations.get(path_annotation, DEFAULT_METRICS_PATH)
    if not isinstance(port, str) or not isinstance(path, str):
        raise InvalidEngineAnnotation(f"{where}: annotations must be strings")
    port = port.strip()
    if not _PORT.fullmatch(port):
        port = _named_container_port(pod.get("spec"), port, where)
    try:
        url = engine_url(pod_ip, port, path.strip())
    except ValueError as error:
        raise InvalidEngineAnnotation(
            f"{where}: {error} (annotations {port_annotation}, {path_annotation})"
        ) from None
    return DiscoveredEngine(url=url, name=f"{namespace}/{name}", gpus=gpus.get((namespace, name)))


def _named_container_port(spec: Any, name: str, where: str) -> str:
    containers = spec.get("containers") if isinstance(spec, dict) else None
    for container in containers if isinstance(containers, list) else ():
        ports = container.get("ports") if isinstance(container, dict) else None
        for entry in ports if isinstance(ports, list) else ():
            if not isinstance(entry, dict) or entry.get("name") != name:
                continue
            number = entry.get("containerPort")
            if isinstance(number, int) and not isinstance(number, bool):
                return str(number)
    raise InvalidEngineAnnotation(
        f"{where}: engine port {name!r} is neither a number nor the name of a container port"
    )


@dataclass(frozen=True)
class KubernetesDiscoveryConfig:
    """What discovery needs, built from the settings by serve wiring."""

    node_name: str
    port_annotation: str = "rooftop.dev/engine-port"
    path_annotation: str = "rooftop.dev/engine-path"
    pod_resources_socket: Path = Path("/var/lib/kubelet/pod-resources/kubelet.sock")


class GpuAllocations(Protocol):
    """Which GPUs each pod holds: the kubelet pod-resources client, or a fake in tests."""

    def gpus_by_pod(self) -> Mapping[PodKey, tuple[str, ...]]: ...


class PodLister(Protocol):
    def pods_on_node(self, node_name: str) -> Sequence[Mapping[str, Any]]: ...


class KubernetesEngineDiscovery:
    """The engines on this node: a :class:`~rooftop.exporter.sources.base.Source` of kind
    ``discovery``.

    ``poll`` raises :class:`KubernetesApiError` or
    :class:`~rooftop.exporter.sources.podresources.PodResourcesError` when either side cannot be
    read
    (the sampler then marks source ``kubernetes`` down and keeps the engines it knows).
    """

    name = "kubernetes"
    kind: SourceKind = "discovery"

    def __init__(
        self,
        config: KubernetesDiscoveryConfig,
        *,
        api: PodLister | None = None,
        allocations: GpuAllocations | None = None,
    ) -> None:
        if not config.node_name:
            raise KubernetesConfigError("kubernetes_node_name is required for Kubernetes discovery")
        self.node_name = config.node_name
        self._port_annotation = config.port_annotation
        self._path_annotation = config.path_annotation
        self._api = api if api is not None else KubernetesApi.in_cluster()
        self._allocations = (
            allocations
            if allocations is not None
            else PodResourcesClient(config.pod_resources_socket)
        )
        self._warned: set[str] = set()

    def poll(self) -> list[DiscoveredEngine]:
        pods = self._api.pods_on_node(self.node_name)
        gpus = self._allocations.gpus_by_pod()
        found: dict[str, DiscoveredEngine] = {}
        problems: set[str] = set()
        for pod in pods:
            try:
                config = engine_config_for_pod(
                    pod, self.node_name, self._port_annotation, self._path_annotation, gpus
                )
            except InvalidEngineAnnotation as error:
                problems.add(str(error))
                continue
            if config is None:
                continue
            if config.url in found:
                problems.add(f"{config.name} and {found[config.url].name} share {config.url}")
                continue
            found[config.url] = config
        for problem in sorted(problems - self._warned):
            log.warning("kubernetes discovery: skipped: %s", problem)
        self._warned = problems
        return list(found.values())
