"""Which pod holds which GPU: the kubelet's pod-resources gRPC API on its unix socket.

``v1.PodResourcesLister/List`` (``k8s.io/kubelet/pkg/apis/podresources/v1``, GA since
Kubernetes 1.20) answers with every pod on the node and the device ids the device plugins
allocated to each container. dcgm-exporter attributes GPUs to pods the same way
(research/gpu-telemetry.md §1.4). The response is decoded by hand from the protobuf wire format,
reading only the fields below and skipping every other one, so that no generated code or
protobuf runtime is needed::

    ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
    PodResources             { string name = 1; string namespace = 2;
                               repeated ContainerResources containers = 3; }
    ContainerResources       { string name = 1; repeated ContainerDevices devices = 2; }
    ContainerDevices         { string resource_name = 1; repeated string device_ids = 2; }

Device ids are what the NVIDIA device plugin reported: GPU UUIDs (``GPU-…``, its default
``DEVICE_ID_STRATEGY=uuid``), MIG device UUIDs (``MIG-…``), bare indexes (``index`` strategy)
or ``nvidiaN`` (GKE's plugin), which is read as index N.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc

LIST_METHOD: Final = "/v1.PodResourcesLister/List"
DEFAULT_DEADLINE_SECONDS: Final = 10.0
"""dcgm-exporter's timeout for the same call."""
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
GPU_RESOURCE: Final = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX: Final = "nvidia.com/mig-"
_GKE_DEVICE_NAME: Final = re.compile(r"nvidia(\d+)")

PodKey = tuple[str, str]
"""``(namespace, pod name)``."""


class PodResourcesError(Exception):
    """The kubelet's pod-resources API could not be read; the message says what to fix."""


class ProtobufDecodeError(PodResourcesError):
    """The bytes are not a well-formed ListPodResourcesResponse."""


@dataclass(frozen=True)
class ContainerDevices:
    resource_name: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True)
class ContainerResources:
    name: str
    devices: tuple[ContainerDevices, ...]


@dataclass(frozen=True)
class PodResources:
    name: str
    namespace: str
    containers: tuple[ContainerResources, ...]


# -- protobuf wire format -----------------------------------------------------------------

_VARINT, _FIXED64, _LENGTH_DELIMITED, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):
        if position >= len(data):
            raise ProtobufDecodeError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
    raise ProtobufDecodeError("varint longer than 10 bytes")


def _fields(data: bytes) -> Iterator[tuple[int, bytes | None]]:
    """``(field number, payload)`` for each field of one message; payload is the bytes of a
    length-delimited field and ``None`` for a scalar (varint, fixed32, fixed64), which none of
    the fields read here is."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufDecodeError("field number 0")
        if wire_type == _VARINT:
            _, position = _varint(data, position)
            yield number, None
        elif wire_type in (_FIXED64, _FIXED32):
            position += 8 if wire_type == _FIXED64 else 4
            if position > len(data):
                raise ProtobufDecodeError(f"truncated fixed-width field {number}")
            yield number, None
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            end = position + length
            if end > len(data):
                raise ProtobufDecodeError(
                    f"field {number} claims {length} bytes, {len(data) - position} left"
                )
            yield number, data[position:end]
            position = end
        else:  # groups (3, 4) are proto2-only and absent from this API; 6 and 7 do not exist
            raise ProtobufDecodeError(f"unsupported wire type {wire_type} in field {number}")


def _text(payload: bytes | None, what: str) -> str:
    if payload is None:
        raise ProtobufDecodeError(f"{what} is not a string")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufDecodeError(f"{what} is not UTF-8") from None


def _message(payload: bytes | None, what: str) -> bytes:
    if payload is None:
        raise ProtobufDecodeError(f"{what} is not a message")
    return payload


def _container_devices(data: bytes) -> ContainerDevices:
    resource_name = ""
    device_ids: list[str] = []
    for number, payload in _fields(data):
        if number == 1:
            resource_name = _text(payload, "ContainerDevices.resource_name")
        elif number == 2:
            device_ids.append(_text(payload, "ContainerDevices.device_ids"))
    return ContainerDevices(resource_name, tuple(device_ids))


def _container_resources(data: bytes) -> ContainerResources:
    name = ""
    devices: list[ContainerDevices] = []
    for number, payload in _fields(data):
        if number == 1:
            name = _text(payload, "ContainerResources.name")
        elif number == 2:
            devices.append(_container_devices(_message(payload, "ContainerResources.devices")))
    return ContainerResources(name, tuple(devices))


def _pod_resources(data: bytes) -> PodResources:
    name = namespace = ""
    containers: list[ContainerResources] = []
    for number, payload in _fields(data):
        if number == 1:
            name = _text(payload, "PodResources.name")
        elif number == 2:
            namespace = _text(payload, "PodResources.namespace")
        elif number == 3:
            containers.append(_container_resources(_message(payload, "PodResources.containers")))
    return PodResources(name, namespace, tuple(containers))


def decode_list_response(data: bytes) -> tuple[PodResources, ...]:
    """Decode a serialized ``ListPodResourcesResponse``; unknown fields are skipped.

    Raises :class:`ProtobufDecodeError` on malformed bytes.
    """
    return tuple(
        _pod_resources(_message(payload, "ListPodResourcesResponse.pod_resources"))
        for number, payload in _fields(data)
        if number == 1
    )


# -- from allocations to GPUs -------------------------------------------------------------


def is_gpu_resource(resource_name: str) -> bool:
    """``nvidia.com/gpu`` and the MIG resources (``nvidia.com/mig-1g.10gb`` …)."""
    return resource_name == GPU_RESOURCE or resource_name.startswith(MIG_RESOURCE_PREFIX)


def gpu_id(device_id: str) -> str:
    """A device-plugin device id as rooftop names GPUs: UUIDs and indexes unchanged,
    ``nvidiaN`` (GKE) as the index ``N``."""
    match = _GKE_DEVICE_NAME.fullmatch(device_id)
    return match.group(1) if match else device_id


def gpus_by_pod(pods: Sequence[PodResources]) -> dict[PodKey, tuple[str, ...]]:
    """GPU ids allocated to each pod (all its containers, in order, without repeats); pods
    holding no GPU are left out."""
    result: dict[PodKey, tuple[str, ...]] = {}
    for pod in pods:
        ids: dict[str, None] = {}
        for container in pod.containers:
            for devices in container.devices:
                if is_gpu_resource(devices.resource_name):
                    ids.update((gpu_id(device), None) for device in devices.device_ids)
        if ids:
            key = (pod.namespace, pod.name)
            result[key] = tuple(dict.fromkeys((*result.get(key, ()), *ids)))
    return result


# -- the gRPC call ------------------------------------------------------------------------

_FIX_MOUNT = (
    "mount the host's /var/lib/kubelet/pod-resources read-only into the container "
    "(deploy/kubernetes/daemonset) or set ROOFTOP_KUBELET_POD_RESOURCES_SOCKET"
)
_FIX_ROOT = (
    "the kubelet creates the socket owned by root with mode 0600: run the container with "
    "runAsUser: 0 (deploy/README.md, 'The DaemonSet')"
)


def check_socket(path: Path) -> None:
    """Raise :class:`PodResourcesError` naming the fix if ``path`` is not a usable socket."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise PodResourcesError(
            f"kubelet pod-resources socket {path} not found: {_FIX_MOUNT}"
        ) from None
    except PermissionError:
        raise PodResourcesError(f"cannot reach {path} (permission denied): {_FIX_ROOT}") from None
    if not stat.S_ISSOCK(mode):
        raise PodResourcesError(f"{path} is not a unix socket: {_FIX_MOUNT}")
    if not os.access(path, os.R_OK | os.W_OK):
        raise PodResourcesError(f"no permission to connect to {path}: {_FIX_ROOT}")


def _describe_rpc_error(path: Path, error: grpc.RpcError) -> str:
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    where = f"kubelet pod-resources List on {path}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{where}: no answer within the deadline (is the kubelet overloaded?)"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return f"{where}: the kubelet does not serve v1 (Kubernetes 1.20 or later is needed)"
    if code == grpc.StatusCode.UNAVAILABLE and "ermission denied" in details:
        return f"{where}: {details}: {_FIX_ROOT}"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"{where}: kubelet unavailable ({details}); if this persists, {_FIX_MOUNT}"
    name = code.name if code is not None else "error"
    return f"{where}: {name}: {details}"


class PodResourcesClient:
    """Calls ``v1.PodResourcesLister/List`` on the kubelet socket, once per :meth:`list`.

    A fresh channel per call: the kubelet recreates its socket when it restarts, and
    discovery runs every ``discovery_interval_seconds`` (30 s), so a kept channel buys little.
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if deadline_seconds <= 0:
            raise ValueError(f"deadline_seconds must be > 0, got {deadline_seconds}")
        self.socket_path = socket_path
        self._deadline = deadline_seconds
        self._max_bytes = max_response_bytes

    def list_raw(self) -> bytes:
        """The serialized response; raises :class:`PodResourcesError` naming the fix."""
        check_socket(self.socket_path)
        options = [
            ("grpc.max_receive_message_length", self._max_bytes),
            ("grpc.enable_http_proxy", 0),
        ]
        with grpc.insecure_channel(f"unix://{self.socket_path.absolute()}", options) as channel:
            call = channel.unary_unary(
                LIST_METHOD,
                request_serializer=_empty_request,
                response_deserializer=_raw_bytes,
            )
            try:
                response = call(b"", timeout=self._deadline)
            except grpc.RpcError as error:
                raise PodResourcesError(_describe_rpc_error(self.socket_path, error)) from None
        if not isinstance(response, bytes):
            raise PodResourcesError(f"kubelet pod-resources List on {self.socket_path}: no body")
        return response

    def list(self) -> tuple[PodResources, ...]:
        """Every pod on the node with its devices."""
        data = self.list_raw()
        try:
            return decode_list_response(data)
        except ProtobufDecodeError as error:
            raise PodResourcesError(
                f"kubelet pod-resources List on {self.socket_path}: cannot decode the "
                f"{len(data)}-byte answer ({error})"
            ) from None

    def gpus_by_pod(self) -> Mapping[PodKey, tuple[str, ...]]:
        return gpus_by_pod(self.list())


def _empty_request(_: bytes) -> bytes:
    return b""  # ListPodResourcesRequest has no fields


def _raw_bytes(data: bytes) -> bytes:
    # Decoded after the call, so that a malformed answer gets our message, not gRPC's INTERNAL.
    return data
