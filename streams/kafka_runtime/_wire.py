"""Just enough of the Kafka wire protocol (stdlib only) to ask a broker for its metadata.

The readiness check of the local broker must be a real Kafka request, not a bare TCP
connect: a KRaft broker accepts connections before it has registered with its controller.
It must also work from synchronous code that may run inside an event loop (the CLI, test
fixtures), so it does not use aiokafka. It speaks ``ApiVersions`` v0 (which every broker
answers) and then ``Metadata`` at the highest version both sides know, asking for no
topics: the answer lists the live brokers, the cluster id and the controller id.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

API_METADATA = 3
API_VERSIONS = 18
CLIENT_ID = "civicpulse-kafka-runtime"

# Metadata versions this module can encode and decode. v0 is left out on purpose: there an
# empty topic list means "all topics". From v9 on the message is "flexible" (compact
# strings and arrays, tagged fields).
_METADATA_MIN = 1
_METADATA_MAX = 12
_METADATA_FIRST_FLEXIBLE = 9


class ProtocolError(Exception):
    """The peer did not answer like a Kafka broker."""


@dataclass(frozen=True, slots=True)
class Node:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: tuple[Node, ...]
    metadata_version: int


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise ProtocolError("truncated response")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def int16(self) -> int:
        value: int = struct.unpack(">h", self._take(2))[0]
        return value

    def int32(self) -> int:
        value: int = struct.unpack(">i", self._take(4))[0]
        return value

    def uvarint(self) -> int:
        result = 0
        shift = 0
        while True:
            byte = self._take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ProtocolError("varint too long")

    def string(self, *, flexible: bool) -> str | None:
        length = self.uvarint() - 1 if flexible else self.int16()
        if length < 0:
            return None
        return self._take(length).decode("utf-8")

    def array_length(self, *, flexible: bool) -> int:
        return self.uvarint() - 1 if flexible else self.int32()

    def tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _request(
    api_key: int, version: int, correlation_id: int, body: bytes, *, flexible: bool
) -> bytes:
    client_id = CLIENT_ID.encode()
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    if flexible:
        header += _uvarint(0)  # request header v2: no tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ProtocolError("connection closed by the peer")
        chunks += chunk
    return bytes(chunks)


def _roundtrip(sock: socket.socket, request: bytes, correlation_id: int) -> _Reader:
    sock.sendall(request)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    if not 4 <= size <= 64 * 1024 * 1024:
        raise ProtocolError(f"implausible response size {size}")
    reader = _Reader(_recv_exactly(sock, size))
    if reader.int32() != correlation_id:
        raise ProtocolError("correlation id mismatch")
    return reader


def _api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    reader = _roundtrip(sock, _request(API_VERSIONS, 0, 1, b"", flexible=False), 1)
    error_code = reader.int16()
    versions: dict[int, tuple[int, int]] = {}
    for _ in range(reader.int32()):
        key, low, high = reader.int16(), reader.int16(), reader.int16()
        versions[key] = (low, high)
    if error_code != 0 and not versions:
        raise ProtocolError(f"ApiVersions failed with error code {error_code}")
    return versions


def _metadata_body(version: int) -> bytes:
    flexible = version >= _METADATA_FIRST_FLEXIBLE
    body = bytearray(_uvarint(1) if flexible else struct.pack(">i", 0))  # no topics
    if version >= 4:
        body += b"\x00"  # allow_auto_topic_creation
    if 8 <= version <= 10:
        body += b"\x00"  # include_cluster_authorized_operations
    if version >= 8:
        body += b"\x00"  # include_topic_authorized_operations
    if flexible:
        body += _uvarint(0)
    return bytes(body)


def _parse_metadata(reader: _Reader, version: int) -> ClusterMetadata:
    flexible = version >= _METADATA_FIRST_FLEXIBLE
    if flexible:
        reader.tagged_fields()  # response header v1
    if version >= 3:
        reader.int32()  # throttle_time_ms
    brokers: list[Node] = []
    for _ in range(reader.array_length(flexible=flexible)):
        node_id = reader.int32()
        host = reader.string(flexible=flexible) or ""
        port = reader.int32()
        reader.string(flexible=flexible)  # rack
        if flexible:
            reader.tagged_fields()
        brokers.append(Node(node_id, host, port))
    cluster_id = reader.string(flexible=flexible) if version >= 2 else None
    controller_id = reader.int32()
    return ClusterMetadata(cluster_id, controller_id, tuple(brokers), version)


def fetch_metadata(host: str, port: int, timeout: float = 2.0) -> ClusterMetadata:
    """Ask the broker at ``host:port`` for cluster metadata (no topics).

    Raises ``OSError`` when it cannot be reached in ``timeout`` seconds and
    :class:`ProtocolError` when what answers does not speak Kafka.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        versions = _api_versions(sock)
        if API_METADATA not in versions:
            raise ProtocolError("the broker does not offer the Metadata API")
        low, high = versions[API_METADATA]
        version = min(high, _METADATA_MAX)
        if version < max(low, _METADATA_MIN):
            raise ProtocolError(f"no common Metadata version (broker offers {low}..{high})")
        flexible = version >= _METADATA_FIRST_FLEXIBLE
        request = _request(API_METADATA, version, 2, _metadata_body(version), flexible=flexible)
        return _parse_metadata(_roundtrip(sock, request, 2), version)
