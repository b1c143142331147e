"""Kubernetes engine discovery (DaemonSet variant) and the sidecar's DCGM pod filter.

Real parts where they are cheap: a real gRPC server (grpcio) on a unix socket plays the kubelet's
pod-resources API, serving ``ListPodResourcesResponse`` bytes hand-encoded below; a real HTTP(S)
server on loopback plays the API server, serving a pod list shaped like a real ``v1.PodList``
(tests/fixtures/kubernetes/README.md says where each fixture comes from).
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rooftop.exporter.sampler import Sampler
from rooftop.exporter.settings import EngineConfig, Settings, load_settings
from rooftop.exporter.sources.base import DiscoveredEngine
from rooftop.exporter.sources.dcgm import DcgmParseError, DcgmSource
from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.kubernetes import (
    InvalidEngineAnnotation,
    KubernetesApi,
    KubernetesApiError,
    KubernetesConfigError,
    KubernetesDiscoveryConfig,
    KubernetesEngineDiscovery,
    engine_config_for_pod,
)
from rooftop.exporter.sources.podresources import (
    PodResourcesClient,
    PodResourcesError,
    ProtobufDecodeError,
    decode_list_response,
    gpus_by_pod,
)
from rooftop.exporter.wiring import engine_source

FIXTURES = Path(__file__).parents[1] / "fixtures"
K8S = FIXTURES / "kubernetes"
POD_LIST = json.loads((K8S / "pods-gpu-node-1.json").read_text())
VLLM_TEXT = (FIXTURES / "engines" / "vllm-v1-0.10.0-production-stack-issue617.prom").read_text()
NODE = "gpu-node-1"
GPU_A = "GPU-8f6e7c2a-1b3d-4e5f-9a0b-1c2d3e4f5a60"
GPU_B = "GPU-2c4a6e8b-0d1f-4a3b-8c5d-7e9f0a1b2c3d"
GPU_C = "GPU-5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f"
MIG_D = "MIG-1a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d"
VLLM = "llm/vllm-llama-7d9c6b5f4-x2kqp"
SGLANG = "search/sglang-qwen-5f8d7c9b6-mn4zt"
TGI = "batch/tgi-mistral-0"


# -- a tiny protobuf encoder (the test's own, independent of the decoder) -------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return delimited(number, value.encode())


def scalar(number: int, value: int) -> bytes:
    return varint(number << 3 | 0) + varint(value)


def fixed(number: int, width: int) -> bytes:
    return varint(number << 3 | (1 if width == 8 else 5)) + b"\x07" * width


def topology(*numa: int) -> bytes:
    return b"".join(delimited(1, scalar(1, node)) for node in numa)


def devices(resource: str, *ids: str) -> bytes:
    body = text(1, resource) + b"".join(text(2, device) for device in ids)
    return body + delimited(3, topology(0))  # ContainerDevices.topology, skipped


def container(name: str, *device_lists: bytes, cpu_ids: tuple[int, ...] = ()) -> bytes:
    body = text(1, name) + b"".join(delimited(2, item) for item in device_lists)
    if cpu_ids:  # packed repeated int64 cpu_ids = 3
        body += delimited(3, b"".join(varint(cpu) for cpu in cpu_ids))
    body += delimited(4, text(1, "hugepages-2Mi") + scalar(2, 1 << 30))  # ContainerMemory
    return body


def pod(name: str, namespace: str, *containers: bytes) -> bytes:
    return text(1, name) + text(2, namespace) + b"".join(delimited(3, c) for c in containers)


def list_response(*pods: bytes) -> bytes:
    return b"".join(delimited(1, item) for item in pods)


NODE_RESOURCES = list_response(
    pod(
        "vllm-llama-7d9c6b5f4-x2kqp",
        "llm",
        container(
            "vllm",
            devices("nvidia.com/gpu", GPU_A, GPU_B),
            devices("rdma/hca_shared_devices_a", "hca-0"),
        ),
    ),
    pod(
        "sglang-qwen-5f8d7c9b6-mn4zt",
        "search",
        container("sglang", devices("nvidia.com/gpu", GPU_C)),
    ),
    pod("tgi-mistral-0", "batch", container("tgi", devices("nvidia.com/mig-1g.10gb", MIG_D))),
    pod("kube-proxy-7hx9d", "kube-system", container("kube-proxy", cpu_ids=(2, 3))),
)


# -- the decoder --------------------------------------------------------------------------


def test_decoder_reads_the_fields_it_needs_and_skips_the_rest() -> None:
    data = list_response(
        scalar(9, 300) + fixed(10, 8) + fixed(11, 4) + pod("a", "ns", container("c", cpu_ids=(1,)))
    ) + scalar(15, 1)
    data += list_response(
        pod("b", "ns2", container("x"), container("y", devices("nvidia.com/gpu", "0", "1")))
        + delimited(4, b"\x08\x01")  # a future PodResources field
    )
    (first, second) = decode_list_response(data)
    assert (first.name, first.namespace, first.containers[0].name) == ("a", "ns", "c")
    assert first.containers[0].devices == ()
    assert [c.name for c in second.containers] == ["x", "y"]
    assert second.containers[1].devices[0].resource_name == "nvidia.com/gpu"
    assert second.containers[1].devices[0].device_ids == ("0", "1")


def test_decoder_on_an_empty_answer() -> None:
    assert decode_list_response(b"") == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (delimited(1, text(1, "pod"))[:-1], "claims 5 bytes"),
        (b"\x0a\x80", "truncated varint"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x00\x01", "field number 0"),
        (delimited(1, delimited(1, b"\xff\xfe")), "PodResources.name is not UTF-8"),
        (delimited(1, scalar(3, 7)), "PodResources.containers is not a message"),
        (b"\x09\x01\x02", "truncated fixed-width field 1"),
    ],
)
def test_decoder_rejects_malformed_bytes(data: bytes, message: str) -> None:
    with pytest.raises(ProtobufDecodeError, match=message):
        decode_list_response(data)


def test_gpus_by_pod_keeps_gpu_and_mig_resources_only() -> None:
    mapping = gpus_by_pod(decode_list_response(NODE_RESOURCES))
    assert mapping == {
        ("llm", "vllm-llama-7d9c6b5f4-x2kqp"): (GPU_A, GPU_B),
        ("search", "sglang-qwen-5f8d7c9b6-mn4zt"): (GPU_C,),
        ("batch", "tgi-mistral-0"): (MIG_D,),
    }


def test_gke_device_names_become_indexes_and_repeats_collapse() -> None:
    data = list_response(
        pod(
            "p",
            "ns",
            container("a", devices("nvidia.com/gpu", "nvidia1", "nvidia0")),
            container("b", devices("nvidia.com/gpu", "nvidia1")),
            container("c", devices("nvidia.com/gpu-not-really", "nvidia7")),
        )
    )
    assert gpus_by_pod(decode_list_response(data)) == {("ns", "p"): ("1", "0")}


# -- a real gRPC kubelet on a unix socket -------------------------------------------------


class FakeKubelet:
    """``v1.PodResourcesLister/List`` served by grpcio from crafted bytes."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.response = NODE_RESOURCES
        self.abort: tuple[grpc.StatusCode, str] | None = None
        self.delay_seconds = 0.0
        self.requests: list[bytes] = []
        self.server = grpc.server(ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "v1.PodResourcesLister",
            {"List": grpc.unary_unary_rpc_method_handler(self._list)},
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"unix://{socket_path}")
        self.server.start()

    def _list(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.requests.append(request)
        time.sleep(self.delay_seconds)
        if self.abort is not None:
            context.abort(*self.abort)
        return self.response


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    # A unix socket path is limited to 107 bytes; pytest's tmp_path can be longer.
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="rooftop-k8s-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def kubelet(short_dir: Path) -> Iterator[FakeKubelet]:
    fake = FakeKubelet(short_dir / "kubelet.sock")
    yield fake
    fake.server.stop(None)


def test_client_lists_gpus_by_pod_over_grpc(kubelet: FakeKubelet) -> None:
    mapping = PodResourcesClient(kubelet.socket_path).gpus_by_pod()
    assert mapping[("llm", "vllm-llama-7d9c6b5f4-x2kqp")] == (GPU_A, GPU_B)
    assert kubelet.requests == [b""]  # ListPodResourcesRequest has no fields


def test_missing_socket_names_the_mount(short_dir: Path) -> None:
    client = PodResourcesClient(short_dir / "absent.sock")
    with pytest.raises(PodResourcesError, match="not found: mount the host's /var/lib/kubelet"):
        client.list()


def test_a_regular_file_is_not_a_socket(short_dir: Path) -> None:
    path = short_dir / "kubelet.sock"
    path.write_text("")
    with pytest.raises(PodResourcesError, match="is not a unix socket"):
        PodResourcesClient(path).list()


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_an_unreadable_socket_asks_for_uid_0(kubelet: FakeKubelet) -> None:
    kubelet.socket_path.chmod(0o600)
    os.chmod(kubelet.socket_path, 0)
    with pytest.raises(PodResourcesError, match="runAsUser: 0"):
        PodResourcesClient(kubelet.socket_path).list()


def test_nobody_listening_is_unavailable(short_dir: Path) -> None:
    path = short_dir / "kubelet.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(path))  # bound, never listening: connect is refused
    try:
        with pytest.raises(PodResourcesError, match="kubelet unavailable"):
            PodResourcesClient(path, deadline_seconds=5).list()
    finally:
        bound.close()


def test_permission_denied_from_grpc_asks_for_uid_0(kubelet: FakeKubelet) -> None:
    kubelet.abort = (grpc.StatusCode.UNAVAILABLE, "connect: permission denied")
    with pytest.raises(PodResourcesError, match="permission denied: the kubelet creates"):
        PodResourcesClient(kubelet.socket_path).list()


def test_slow_kubelet_hits_the_deadline(kubelet: FakeKubelet) -> None:
    kubelet.delay_seconds = 1.0
    started = time.monotonic()
    with pytest.raises(PodResourcesError, match="no answer within the deadline"):
        PodResourcesClient(kubelet.socket_path, deadline_seconds=0.2).list()
    assert time.monotonic() - started < 0.9


def test_unimplemented_names_the_kubernetes_version(short_dir: Path) -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    path = short_dir / "old.sock"
    server.add_insecure_port(f"unix://{path}")
    server.start()
    try:
        with pytest.raises(PodResourcesError, match=r"Kubernetes 1\.20 or later"):
            PodResourcesClient(path).list()
    finally:
        server.stop(None)


def test_garbage_from_the_kubelet_is_a_decode_error(kubelet: FakeKubelet) -> None:
    kubelet.response = b"\x0a\x05ab"
    with pytest.raises(PodResourcesError, match="cannot decode the 4-byte answer"):
        PodResourcesClient(kubelet.socket_path).list()


# -- a real HTTP(S) API server on loopback ------------------------------------------------


class FakeApiServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.status = 200
        self.body = json.dumps(POD_LIST).encode()
        self.requests: list[tuple[str, str | None]] = []
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(K8S / "apiserver.crt", K8S / "apiserver.key")
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def serve(self, pods: list[dict[str, Any]]) -> None:
        self.body = json.dumps({"kind": "PodList", "apiVersion": "v1", "items": pods}).encode()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ApiHandler(http.server.BaseHTTPRequestHandler):
    server: FakeApiServer

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Authorization")))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.close()


@pytest.fixture
def tls_api() -> Iterator[FakeApiServer]:
    server = FakeApiServer(tls=True)
    yield server
    server.close()


def make_settings(socket_path: Path, **extra: Any) -> Settings:
    return load_settings(
        {
            "kubernetes_node_name": NODE,
            "kubelet_pod_resources_socket": socket_path,
            "nvml": False,
            "discover_engines": False,
            **extra,
        }
    )


def kubernetes_config(settings: Settings) -> KubernetesDiscoveryConfig:
    """What serve wiring builds from the settings."""
    return KubernetesDiscoveryConfig(
        node_name=settings.kubernetes_node_name or "",
        port_annotation=settings.engine_port_annotation,
        path_annotation=settings.engine_path_annotation,
        pod_resources_socket=settings.kubelet_pod_resources_socket,
    )


def discovery_for(api: FakeApiServer, kubelet: FakeKubelet) -> KubernetesEngineDiscovery:
    return KubernetesEngineDiscovery(
        kubernetes_config(make_settings(kubelet.socket_path)),
        api=KubernetesApi(api.url, lambda: "test-token"),
    )


def test_engines_join_annotated_pods_with_their_gpus(
    api: FakeApiServer, kubelet: FakeKubelet, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        engines = discovery_for(api, kubelet).poll()
    assert engines == [
        DiscoveredEngine(url="http://10.244.1.17:8000/metrics", name=VLLM, gpus=(GPU_A, GPU_B)),
        DiscoveredEngine(url="http://10.244.1.23:30000/metrics", name=SGLANG, gpus=(GPU_C,)),
        DiscoveredEngine(url="http://10.244.1.31:80/metrics", name=TGI, gpus=(MIG_D,)),
    ]
    # Pending, terminating and unannotated pods are left out silently; the broken one is named.
    assert "batch/tgi-broken-0: engine port 'eighty' is neither a number nor" in caplog.text
    path, authorization = api.requests[0]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) == {
        "fieldSelector": [f"spec.nodeName={NODE}"],
        "resourceVersion": ["0"],
    }
    assert path.startswith("/api/v1/pods?")
    assert authorization == "Bearer test-token"


def test_an_engine_without_gpus_in_pod_resources_is_left_to_the_sampler(
    api: FakeApiServer, kubelet: FakeKubelet
) -> None:
    kubelet.response = list_response()
    engines = discovery_for(api, kubelet).poll()
    assert [engine.gpus for engine in engines] == [None, None, None]


def test_a_skipped_pod_is_warned_about_once(
    api: FakeApiServer, kubelet: FakeKubelet, caplog: pytest.LogCaptureFixture
) -> None:
    discovery = discovery_for(api, kubelet)
    with caplog.at_level(logging.WARNING):
        discovery.poll()
        discovery.poll()
    assert caplog.text.count("tgi-broken-0") == 1


def write_service_account(directory: Path, ca: str = "ca.crt", token: str = "token-1") -> Path:
    directory.mkdir(exist_ok=True)
    shutil.copy(K8S / ca, directory / "ca.crt")
    (directory / "token").write_text(token + "\n")
    return directory


def in_cluster_env(server: FakeApiServer) -> dict[str, str]:
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(server.server_address[1]),
    }


def test_in_cluster_client_verifies_tls_and_rereads_a_rotated_token(
    tls_api: FakeApiServer, tmp_path: Path
) -> None:
    account = write_service_account(tmp_path / "sa")
    client = KubernetesApi.in_cluster(in_cluster_env(tls_api), account)
    assert client.base_url.startswith("https://127.0.0.1:")
    assert len(client.pods_on_node(NODE)) == len(POD_LIST["items"])
    (account / "token").write_text("token-2\n")
    client.pods_on_node(NODE)
    assert [auth for _, auth in tls_api.requests] == ["Bearer token-1", "Bearer token-2"]


def test_a_certificate_from_another_ca_is_refused(tls_api: FakeApiServer, tmp_path: Path) -> None:
    account = write_service_account(tmp_path / "sa", ca="other-ca.crt")
    client = KubernetesApi.in_cluster(in_cluster_env(tls_api), account)
    with pytest.raises(KubernetesApiError, match="TLS verification failed"):
        client.pods_on_node(NODE)
    assert tls_api.requests == []


def test_outside_a_pod_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(KubernetesConfigError, match="only works inside a pod"):
        KubernetesApi.in_cluster({}, tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(
        KubernetesConfigError, match=r"token not found.*automountServiceAccountToken"
    ):
        KubernetesApi.in_cluster(env, tmp_path)


def test_in_cluster_brackets_an_ipv6_service_address(tmp_path: Path) -> None:
    account = write_service_account(tmp_path / "sa")
    env = {"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert KubernetesApi.in_cluster(env, account).base_url == "https://[fd00:10:96::1]:443"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            403,
            b'{"kind":"Status","message":"pods is forbidden: User \\"system:serviceaccount:'
            b'rooftop:rooftop\\" cannot list resource \\"pods\\""}',
            r"HTTP 403 Forbidden: pods is forbidden.*ClusterRole rooftop-pod-reader",
        ),
        (401, b'{"kind":"Status","message":"Unauthorized"}', "token was rejected"),
        (500, b"oops", "HTTP 500"),
        (200, b'{"kind": "PodList", "items": [', "the answer is not JSON"),
        (200, b'{"kind": "Status", "items": 3}', "expected a PodList with an items list"),
        (200, b"[]", "expected a PodList"),
    ],
)
def test_api_errors_say_what_to_fix(
    api: FakeApiServer, kubelet: FakeKubelet, status: int, body: bytes, message: str
) -> None:
    api.status, api.body = status, body
    with pytest.raises(KubernetesApiError, match=message):
        discovery_for(api, kubelet).poll()


def test_an_oversized_answer_is_cut_off(api: FakeApiServer) -> None:
    client = KubernetesApi(api.url, max_body_bytes=4096)
    with pytest.raises(KubernetesApiError, match="answer over 4096 bytes"):
        client.pods_on_node(NODE)


def test_an_unreachable_api_server(api: FakeApiServer) -> None:
    url = api.url
    api.close()
    with pytest.raises(KubernetesApiError, match="cannot connect"):
        KubernetesApi(url, timeout_seconds=2).pods_on_node(NODE)


def test_discovery_needs_a_node_name(short_dir: Path) -> None:
    settings = load_settings({"nvml": False})
    with pytest.raises(KubernetesConfigError, match="kubernetes_node_name"):
        KubernetesEngineDiscovery(
            kubernetes_config(settings), api=KubernetesApi("http://127.0.0.1:1")
        )


# -- a crafted pod list can only point rooftop at podIP:annotated-port --------------------


def crafted_pod(
    ip: Any = "10.1.2.3",
    port: Any = "8000",
    path: Any = None,
    node: str = NODE,
    **status: Any,
) -> dict[str, Any]:
    annotations: dict[str, Any] = {"rooftop.dev/engine-port": port}
    if path is not None:
        annotations["rooftop.dev/engine-path"] = path
    return {
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "192.168.0.9", **status},
    }


def config_for(pod: Mapping[str, Any]) -> DiscoveredEngine | None:
    return engine_config_for_pod(
        pod, NODE, "rooftop.dev/engine-port", "rooftop.dev/engine-path", {}
    )


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (crafted_pod(ip="evil.example.com"), "not an IP address"),
        (crafted_pod(ip="10.1.2.3:80@evil.example.com"), "not an IP address"),
        (crafted_pod(ip="169.254.169.254"), "not a pod address"),  # cloud metadata service
        (crafted_pod(ip="127.0.0.1"), "not a pod address"),
        (crafted_pod(ip="::1"), "not a pod address"),
        (crafted_pod(ip="0.0.0.0"), "not a pod address"),
        (crafted_pod(port="80@evil.example.com"), "neither a number nor"),
        (crafted_pod(port="99999"), "not a number in 1-65535"),
        (crafted_pod(port="0"), "not a number in 1-65535"),
        (crafted_pod(port=8000), "annotations must be strings"),
        (crafted_pod(path="@evil.example.com/metrics"), "not a plain path"),
        (crafted_pod(path="//evil.example.com/metrics"), "not a plain path"),
        (crafted_pod(path="http://evil.example.com/metrics"), "not a plain path"),
        (crafted_pod(path="/metrics?target=http://evil"), "not a plain path"),
        (crafted_pod(path="/a/../../etc"), "not a plain path"),
        (crafted_pod(path="/metrics#x"), "not a plain path"),
        (crafted_pod(node="other-node"), "on another node"),
    ],
)
def test_crafted_pods_are_refused(pod: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEngineAnnotation, match=reason):
        config_for(pod)


def test_host_ip_is_never_used_for_a_pod_without_an_ip() -> None:
    assert config_for(crafted_pod(ip=None)) is None
    assert config_for(crafted_pod(ip="")) is None


def test_ipv6_pod_addresses_are_bracketed() -> None:
    config = config_for(crafted_pod(ip="fd00:10:244:1::17", path="/v1/metrics"))
    assert config is not None
    assert config.url == "http://[fd00:10:244:1::17]:8000/v1/metrics"


@settings(max_examples=300, deadline=None)
@given(
    ip=st.one_of(st.ip_addresses().map(str), st.text(max_size=40)),
    port=st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=12)),
    path=st.one_of(
        st.none(), st.text(max_size=40), st.from_regex(r"/[a-z0-9/._-]{0,20}", fullmatch=True)
    ),
)
def test_any_url_built_points_at_the_pod_ip_and_annotated_port(
    ip: str, port: str, path: str | None
) -> None:
    try:
        config = config_for(crafted_pod(ip=ip, port=port, path=path))
    except InvalidEngineAnnotation:
        return
    if config is None:
        assert not ip
        return
    parts = urllib.parse.urlsplit(config.url)
    assert parts.scheme == "http"
    assert ipaddress.ip_address(parts.hostname or "") == ipaddress.ip_address(ip)
    assert parts.port == int(port.strip())
    assert parts.path == (path or "/metrics").strip()
    assert not parts.query and not parts.fragment and not parts.username


def test_rooftop_contacts_only_the_annotated_engines(
    api: FakeApiServer, kubelet: FakeKubelet
) -> None:
    hostile = [
        crafted_pod(ip="169.254.169.254", port="80"),
        crafted_pod(port="80@evil.example.com"),
        crafted_pod(path="//evil.example.com/metrics"),
        crafted_pod(node="other-node", ip="10.9.9.9"),
    ]
    api.serve([*POD_LIST["items"], *hostile])
    contacted: list[str] = []

    def fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
        contacted.append(url)
        return VLLM_TEXT

    settings = make_settings(kubelet.socket_path)
    sampler = Sampler(
        settings,
        None,
        engine_discovery=discovery_for(api, kubelet),
        engine_factory=lambda config: EngineSource(config.label, config.url, fetch=fetch),
        monotonic=StepClock(),
    )
    try:
        sampler.run_cycle()
    finally:
        sampler.stop()
    assert sorted(set(contacted)) == [
        "http://10.244.1.17:8000/metrics",
        "http://10.244.1.23:30000/metrics",
        "http://10.244.1.31:80/metrics",
    ]


# -- with the sampler ---------------------------------------------------------------------


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_engines_appear_and_disappear_across_discoveries(
    api: FakeApiServer, kubelet: FakeKubelet
) -> None:
    settings = make_settings(kubelet.socket_path, discovery_interval_seconds=30)
    clock = StepClock()
    sampler = Sampler(
        settings,
        None,
        engine_discovery=discovery_for(api, kubelet),
        engine_factory=lambda config: EngineSource(
            config.label, config.url, fetch=lambda url, t, n: VLLM_TEXT
        ),
        monotonic=clock,
    )
    pods = {item["metadata"]["name"]: item for item in POD_LIST["items"]}
    try:
        api.serve([pods["vllm-llama-7d9c6b5f4-x2kqp"]])
        first = sampler.run_cycle()
        assert [(e.name, e.gpus, e.mapping) for e in first.engines] == [
            (VLLM, (GPU_A, GPU_B), "config")
        ]
        kubernetes = [s for s in first.sources if s.source == "kubernetes"]
        assert [(s.kind, s.up) for s in kubernetes] == [("discovery", True)]

        api.serve([pods["vllm-llama-7d9c6b5f4-x2kqp"], pods["sglang-qwen-5f8d7c9b6-mn4zt"]])
        clock.now += 10  # not yet due: the pod list is not read again
        assert [e.name for e in sampler.run_cycle().engines] == [VLLM]
        clock.now += 25
        assert [e.name for e in sampler.run_cycle().engines] == [VLLM, SGLANG]
        assert len(api.requests) == 2

        api.serve([pods["sglang-qwen-5f8d7c9b6-mn4zt"]])
        clock.now += 30
        assert [e.name for e in sampler.run_cycle().engines] == [SGLANG]

        # A failed discovery keeps the engines known and says what is wrong.
        kubelet.abort = (grpc.StatusCode.UNAVAILABLE, "connect: connection refused")
        clock.now += 30
        failed = sampler.run_cycle()
        assert [e.name for e in failed.engines] == [SGLANG]
        (status,) = [s for s in failed.sources if s.source == "kubernetes"]
        assert not status.up
        assert status.error is not None and "kubelet unavailable" in status.error
    finally:
        sampler.stop()


def test_engine_source_factory_uses_the_engine_settings(short_dir: Path) -> None:
    settings = make_settings(
        short_dir / "kubelet.sock", engine_timeout_seconds=3.5, engine_max_body_bytes=65536
    )
    source = engine_source(settings, EngineConfig(url="http://10.244.1.17:8000/metrics", name=VLLM))
    assert (source.name, source.url) == (VLLM, "http://10.244.1.17:8000/metrics")
    assert (source.timeout_seconds, source.max_body_bytes) == (3.5, 65536)


# -- the sidecar's DCGM pod filter --------------------------------------------------------

DCGM_48 = (FIXTURES / "dcgm" / "dcgm_exporter_4.8_h100x2.prom").read_text()
DCGM_UUID0 = "GPU-8f6e7c2a-1b3d-4e5f-9a0b-1c2d3e4f5a60"
DCGM_UUID1 = "GPU-2c4a6e8b-0d1f-4a3b-8c5d-7e9f0a1b2c3d"


def with_pod_labels(text: str, gpu0: str, gpu1: str) -> str:
    """The 4.8 fixture as dcgm-exporter --kubernetes writes it: label sets appended per GPU."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") and 'gpu="0"' in line and gpu0:
            line = line.replace("} ", f",{gpu0}}} ", 1)
        elif not line.startswith("#") and 'gpu="1"' in line and gpu1:
            line = line.replace("} ", f",{gpu1}}} ", 1)
        lines.append(line)
    return "\n".join(lines) + "\n"


def dcgm_for(text: str, pod: str | None, namespace: str | None) -> DcgmSource:
    return DcgmSource(
        "http://127.0.0.1:9400/metrics",
        lambda url, timeout, limit: text,
        pod_name=pod,
        pod_namespace=namespace,
    )


@pytest.mark.parametrize(
    ("gpu0", "gpu1"),
    [
        ('pod="vllm-0",namespace="llm",container="vllm"', 'pod="other",namespace="llm"'),
        ('pod_name="vllm-0",pod_namespace="llm"', 'pod_name="vllm-0",pod_namespace="batch"'),
        (
            'pod="dcgm-exporter-x",namespace="gpu-operator",exported_pod="vllm-0",'
            'exported_namespace="llm"',
            'pod="dcgm-exporter-x",namespace="gpu-operator",exported_pod="other",'
            'exported_namespace="llm"',
        ),
    ],
    ids=["pod", "old-namespace", "exported"],
)
def test_the_sidecar_keeps_only_its_own_pods_gpus(gpu0: str, gpu1: str) -> None:
    text = with_pod_labels(DCGM_48, gpu0, gpu1)
    result = dcgm_for(text, "vllm-0", "llm").poll()
    assert [reading.uuid for reading in result.readings] == [DCGM_UUID0]
    assert result.readings[0].dram_active_ratio is not None
    unfiltered = dcgm_for(text, None, None).poll()
    assert [reading.uuid for reading in unfiltered.readings] == [DCGM_UUID0, DCGM_UUID1]


def test_dcgm_without_pod_labels_says_to_enable_kubernetes_mode() -> None:
    with pytest.raises(DcgmParseError, match="DCGM_EXPORTER_KUBERNETES=true"):
        dcgm_for(DCGM_48, "vllm-0", "llm").poll()


def test_dcgm_with_other_pods_only_asks_about_the_gpu_request() -> None:
    text = with_pod_labels(DCGM_48, 'pod="a",namespace="llm"', 'pod="b",namespace="llm"')
    with pytest.raises(DcgmParseError, match=r"labelled with other pods.*nvidia\.com/gpu"):
        dcgm_for(text, "vllm-0", "llm").poll()
