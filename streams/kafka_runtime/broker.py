"""Start, stop and inspect the project's local Apache Kafka broker.

One JVM runs ``kafka.Kafka`` in KRaft combined mode (broker and controller, node id 1,
``--standalone`` quorum). Everything lives under the broker's own directory ``data_dir``
(usually ``<project data dir>/kafka``)::

    data_dir/
      server.properties   written at every start (ports may change between starts)
      cluster.json        kept: cluster id and the ports of the last start
      broker.json         the running broker (bootstrap, controller, pid, ...); gone after down
      kraft/              log.dirs: topic data and the KRaft metadata log
      logs/server.log     the broker's log (log4j2, rolled at 10 MB)
      logs/stdout.log     the JVM's stdout/stderr
      .lock               serialises up/down of this directory

Storage is formatted once, with the cluster id from ``cluster.json``; later starts reuse
it, so data survives ``down``/``up``. A restart reuses the ports of the previous start when
they are free. When the controller port is taken by then, another one is picked: the
single voter of a ``--standalone`` quorum re-registers its new endpoint, no data is lost.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _wire
from ._proc import (
    all_pids,
    cmdline,
    file_lock,
    pid_alive,
    read_json,
    tail,
    terminate,
    write_json_atomic,
)
from .build import ensure_built, find_java
from .errors import KafkaRuntimeError

HOST = "127.0.0.1"
DEFAULT_PORT = 19092
NODE_ID = 1
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
LOG_TAIL_LINES = 30

RECORD_FILE = "broker.json"
STATE_FILE = "cluster.json"
PROPERTIES_FILE = "server.properties"
KRAFT_DIR = "kraft"
LOGS_DIR = "logs"
SERVER_LOG = "server.log"
STDOUT_LOG = "stdout.log"
LOCK_FILE = ".lock"

_LOCK_TIMEOUT = 180.0
_PROBE_TIMEOUT = 2.0
_HEAP_RE = re.compile(r"(\d+)([kKmMgG]?)")


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A running local broker."""

    bootstrap: str  # host:port for clients
    controller: str  # host:port of the KRaft controller listener
    pid: int
    data_dir: Path
    log_file: Path


# --------------------------------------------------------------------------- layout


def _record_path(data_dir: Path) -> Path:
    return data_dir / RECORD_FILE


def _properties_path(data_dir: Path) -> Path:
    return data_dir / PROPERTIES_FILE


def _log_file(data_dir: Path) -> Path:
    return data_dir / LOGS_DIR / SERVER_LOG


def _stdout_file(data_dir: Path) -> Path:
    return data_dir / LOGS_DIR / STDOUT_LOG


def _resolve(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve()


# --------------------------------------------------------------------------- helpers


def _heap_bytes(size: str) -> int:
    match = _HEAP_RE.fullmatch(size.strip())
    if match is None:
        raise KafkaRuntimeError(f"invalid heap size {size!r}: use e.g. 512m or 1g")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    value = int(match.group(1)) * factor
    if value < 64 << 20:
        raise KafkaRuntimeError(f"heap size {size!r} is too small for a Kafka broker (>= 64m)")
    return value


def _heap_options(heap: str) -> list[str]:
    max_bytes = _heap_bytes(heap)
    initial = min(max_bytes, 256 << 20)
    return [f"-Xms{initial // (1 << 20)}m", f"-Xmx{heap.strip()}"]


def _port_free(port: int) -> bool:
    """True when a server could listen on ``HOST:port`` now (SO_REUSEADDR, as the JVM)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(exclude: frozenset[int] = frozenset()) -> int:
    """A port on 127.0.0.1 that is free right now (picked by the kernel)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise KafkaRuntimeError("cannot find a free TCP port on 127.0.0.1")


def _stored_port(state: dict[str, Any] | None, key: str) -> int | None:
    value = state.get(key) if state else None
    return value if isinstance(value, int) and 0 < value < 65536 else None


def _choose_ports(port: int, state: dict[str, Any] | None) -> tuple[int, int]:
    if port:
        if not _port_free(port):
            raise KafkaRuntimeError(f"port {HOST}:{port} is in use: pick another or pass 0")
        broker_port = port
    else:
        candidates = [p for p in (_stored_port(state, "broker_port"), DEFAULT_PORT) if p]
        broker_port = next((p for p in candidates if _port_free(p)), 0) or free_port()
    stored = _stored_port(state, "controller_port")
    if stored and stored != broker_port and _port_free(stored):
        controller_port = stored
    elif broker_port == DEFAULT_PORT and _port_free(DEFAULT_PORT + 1):
        controller_port = DEFAULT_PORT + 1
    else:
        controller_port = free_port(frozenset({broker_port}))
    return broker_port, controller_port


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (like
    ``kafka-storage random-uuid``, which also never starts an id with '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _meta_cluster_id(kraft_dir: Path) -> str | None:
    try:
        text = (kraft_dir / "meta.properties").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^cluster\.id=(\S+)$", text, re.MULTILINE)
    return match.group(1) if match else None


def _server_properties(data_dir: Path, broker_port: int, controller_port: int) -> str:
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir / KRAFT_DIR),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.recovery.threads.per.data.dir": "1",
    }
    header = (
        "# Written by streams.kafka_runtime at every start of the local broker: edits are lost.\n"
    )
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


def _jvm_command(java: Path, libs: Path, data_dir: Path, heap: str, main: list[str]) -> list[str]:
    log4j = libs.parent / "log4j2.properties"
    if not log4j.is_file():
        raise KafkaRuntimeError(f"{log4j} is missing (it belongs next to ops/kafka/pom.xml)")
    return [
        str(java),
        *_heap_options(heap),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={data_dir / LOGS_DIR}",
        "-cp",
        f"{libs}{os.sep}*",
        *main,
    ]


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is alive and is the broker JVM of ``data_dir``."""
    if not pid_alive(pid):
        return False
    argv = cmdline(pid) or []
    return MAIN_CLASS in argv and str(_properties_path(data_dir)) in argv


def _broker_pids(data_dir: Path, record: dict[str, Any] | None) -> list[int]:
    """The broker JVMs running on ``data_dir``: the recorded one, else any found."""
    pid = record.get("pid") if record else None
    if isinstance(pid, int) and _is_our_broker(pid, data_dir):
        return [pid]
    me = os.getpid()
    return [p for p in all_pids() if p != me and _is_our_broker(p, data_dir)]


def _answers(bootstrap: str, cluster_id: str | None, timeout: float = _PROBE_TIMEOUT) -> bool:
    """True when a Kafka client can fetch metadata from ``bootstrap`` and it is our node
    (and our cluster, when its id is known)."""
    host, _, port = bootstrap.rpartition(":")
    try:
        meta = _wire.fetch_metadata(host, int(port), timeout=timeout)
    except (OSError, ValueError, _wire.ProtocolError):
        return False
    if cluster_id is not None and meta.cluster_id != cluster_id:
        return False
    return any(node.node_id == NODE_ID for node in meta.brokers)


def _info(data_dir: Path, record: dict[str, Any]) -> BrokerInfo:
    return BrokerInfo(
        bootstrap=str(record["bootstrap"]),
        controller=str(record["controller"]),
        pid=int(record["pid"]),
        data_dir=data_dir,
        log_file=_log_file(data_dir),
    )


def _valid_record(record: dict[str, Any] | None) -> bool:
    return (
        record is not None
        and isinstance(record.get("pid"), int)
        and isinstance(record.get("bootstrap"), str)
        and isinstance(record.get("controller"), str)
    )


def _failure(
    data_dir: Path, message: str, log_offset: int, stdout_offset: int
) -> KafkaRuntimeError:
    lines = tail(_log_file(data_dir), LOG_TAIL_LINES, log_offset)
    source = _log_file(data_dir)
    if not lines:
        lines = tail(_stdout_file(data_dir), LOG_TAIL_LINES, stdout_offset)
        source = _stdout_file(data_dir)
    if not lines:
        return KafkaRuntimeError(
            f"{message}\n(nothing logged yet in {_log_file(data_dir)} or {source})"
        )
    return KafkaRuntimeError(f"{message}\n--- last lines of {source} ---\n" + "\n".join(lines))


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with file_lock(data_dir / LOCK_FILE, _LOCK_TIMEOUT, f"Kafka broker in {data_dir}"):
        yield


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- public API


def recorded_bootstrap(data_dir: Path) -> str | None:
    """The bootstrap address the local broker recorded when it started (None when no
    start is recorded: never started, or stopped with :func:`down`)."""
    record = read_json(_record_path(_resolve(data_dir)))
    value = record.get("bootstrap") if record else None
    return value if isinstance(value, str) else None


def status(data_dir: Path) -> BrokerInfo | None:
    """The broker of ``data_dir`` when its process is alive and it answers a metadata
    request; None otherwise."""
    data_dir = _resolve(data_dir)
    record = read_json(_record_path(data_dir))
    if record is None or not _valid_record(record):
        return None
    if not _is_our_broker(record["pid"], data_dir):
        return None
    cluster_id = record.get("cluster_id")
    if not _answers(record["bootstrap"], cluster_id if isinstance(cluster_id, str) else None):
        return None
    return _info(data_dir, record)


def up(
    data_dir: Path,
    port: int = 0,
    heap: str = "512m",
    timeout: float = 60,
    *,
    libs_dir: Path | None = None,
) -> BrokerInfo:
    """Start the local broker of ``data_dir`` (or return the one already running there).

    ``port`` is the client (PLAINTEXT) port; 0 means the port of the previous start, else
    19092, else any free port, when free. ``heap`` is the JVM's maximum heap. The call
    returns once a client can fetch metadata from the broker; when that does not happen in
    ``timeout`` seconds the broker is killed and :class:`KafkaRuntimeError` raised with the
    end of its log. ``libs_dir`` defaults to :func:`ensure_built` of this checkout.
    """
    if not 0 <= port < 65536:
        raise KafkaRuntimeError(f"invalid port {port}")
    _heap_bytes(heap)
    data_dir = _resolve(data_dir)
    running = status(data_dir)
    if running is not None:
        return running
    libs = libs_dir.resolve() if libs_dir is not None else ensure_built()
    java = find_java()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        deadline = time.monotonic() + timeout
        record = read_json(_record_path(data_dir))
        state = read_json(data_dir / STATE_FILE)
        cluster_id = state.get("cluster_id") if state else None
        pids = _broker_pids(data_dir, record)
        if pids:
            # A broker of this directory runs but did not answer (yet): still starting,
            # or its record was lost. Give it the timeout to answer, else replace it.
            adopted = _adopt(data_dir, pids[0], record, cluster_id, deadline)
            if adopted is not None:
                return adopted
            for pid in pids:
                terminate(pid, timeout=10)
            deadline = time.monotonic() + timeout
        _record_path(data_dir).unlink(missing_ok=True)
        return _start(data_dir, port, heap, java, libs, state, deadline, timeout)


def _adopt(
    data_dir: Path,
    pid: int,
    record: dict[str, Any] | None,
    cluster_id: Any,
    deadline: float,
) -> BrokerInfo | None:
    if record is None or not _valid_record(record) or record.get("pid") != pid:
        props = _read_properties(_properties_path(data_dir))
        match = re.search(r"PLAINTEXT://[^,:]+:(\d+)", props.get("listeners", ""))
        ctl = props.get("controller.quorum.bootstrap.servers", "")
        if match is None or not ctl:
            return None
        record = {
            "bootstrap": f"{HOST}:{match.group(1)}",
            "controller": ctl,
            "pid": pid,
            "cluster_id": cluster_id,
            "started_at": None,
        }
    cid = cluster_id if isinstance(cluster_id, str) else None
    while time.monotonic() < deadline and pid_alive(pid):
        if _answers(record["bootstrap"], cid):
            write_json_atomic(_record_path(data_dir), record)
            return _info(data_dir, record)
        time.sleep(0.25)
    return None


def _read_properties(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def _format_storage(java: Path, libs: Path, data_dir: Path, heap: str, cluster_id: str) -> None:
    cmd = _jvm_command(
        java,
        libs,
        data_dir,
        "256m" if _heap_bytes(heap) > 256 << 20 else heap,
        [
            STORAGE_TOOL,
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(_properties_path(data_dir)),
        ],
    )
    try:
        proc = subprocess.run(
            cmd,
            cwd=data_dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise KafkaRuntimeError(f"formatting Kafka storage in {data_dir} failed: {exc}") from exc
    if proc.returncode != 0:
        output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-LOG_TAIL_LINES:])
        raise KafkaRuntimeError(
            f"formatting Kafka storage in {data_dir / KRAFT_DIR} failed "
            f"(exit {proc.returncode}):\n{output}"
        )


# What `kafka-storage format` writes before meta.properties, its last step.
_FORMAT_OUTPUT = frozenset({"bootstrap.checkpoint", "__cluster_metadata-0"})


def _clear_unfinished_format(kraft: Path) -> None:
    """Remove what an interrupted format left; refuse to touch anything else."""
    if not kraft.exists():
        return
    other = sorted(p.name for p in kraft.iterdir() if p.name not in _FORMAT_OUTPUT)
    if other:
        raise KafkaRuntimeError(
            f"{kraft} holds data ({', '.join(other[:5])}) but no meta.properties, so it "
            "cannot be started or formatted; move it away, or reset the broker to start empty"
        )
    shutil.rmtree(kraft)


# Runs the broker in the background of a throw-away shell in a new session: the JVM is
# re-parented to init, has no controlling terminal, and outlives the calling process.
_LAUNCHER = 'out=$1; shift; "$@" </dev/null >>"$out" 2>&1 & echo $!'


def _start(
    data_dir: Path,
    port: int,
    heap: str,
    java: Path,
    libs: Path,
    state: dict[str, Any] | None,
    deadline: float,
    timeout: float,
) -> BrokerInfo:
    kraft = data_dir / KRAFT_DIR
    formatted_id = _meta_cluster_id(kraft)
    stored_id = state.get("cluster_id") if state else None
    cluster_id = formatted_id or (stored_id if isinstance(stored_id, str) else new_cluster_id())
    broker_port, controller_port = _choose_ports(port, state)
    (data_dir / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    _properties_path(data_dir).write_text(
        _server_properties(data_dir, broker_port, controller_port), encoding="utf-8"
    )
    new_state = {
        "cluster_id": cluster_id,
        "node_id": NODE_ID,
        "broker_port": broker_port,
        "controller_port": controller_port,
        "formatted_at": (state or {}).get("formatted_at"),
    }
    if formatted_id is None:
        _clear_unfinished_format(kraft)
        _format_storage(java, libs, data_dir, heap, cluster_id)
        new_state["formatted_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(data_dir / STATE_FILE, new_state)

    log_offset = _file_size(_log_file(data_dir))
    stdout_log = _stdout_file(data_dir)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with stdout_log.open("a", encoding="utf-8") as fh:
        fh.write(f"=== civicpulse: starting the Kafka broker at {started_at} ===\n")
    stdout_offset = _file_size(stdout_log)
    cmd = _jvm_command(java, libs, data_dir, heap, [MAIN_CLASS, str(_properties_path(data_dir))])
    try:
        launched = subprocess.run(
            ["/bin/sh", "-c", _LAUNCHER, "sh", str(stdout_log), *cmd],
            cwd=data_dir,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        pid = int(launched.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise KafkaRuntimeError(f"cannot launch the Kafka broker: {exc}") from exc

    bootstrap = f"{HOST}:{broker_port}"
    while True:
        if not pid_alive(pid):
            raise _failure(
                data_dir,
                f"the Kafka broker (pid {pid}) exited during startup",
                log_offset,
                stdout_offset,
            )
        probe_timeout = max(0.2, min(_PROBE_TIMEOUT, deadline - time.monotonic()))
        if _answers(bootstrap, cluster_id, timeout=probe_timeout):
            break
        if time.monotonic() >= deadline:
            terminate(pid, timeout=5)
            raise _failure(
                data_dir,
                f"the Kafka broker (pid {pid}) did not answer on {bootstrap} within "
                f"{timeout:g} s and was stopped",
                log_offset,
                stdout_offset,
            )
        time.sleep(0.2)

    record = {
        "bootstrap": bootstrap,
        "controller": f"{HOST}:{controller_port}",
        "pid": pid,
        "started_at": started_at,
        "cluster_id": cluster_id,
        "node_id": NODE_ID,
        "heap": heap,
        "log_file": str(_log_file(data_dir)),
    }
    write_json_atomic(_record_path(data_dir), record)
    return _info(data_dir, record)


def down(data_dir: Path, timeout: float = 30) -> bool:
    """Stop the local broker of ``data_dir`` (SIGTERM, then SIGKILL after ``timeout`` s)
    and remove its record. True when a broker was running and got stopped."""
    data_dir = _resolve(data_dir)
    if not data_dir.is_dir():
        return False
    with _locked(data_dir):
        record = read_json(_record_path(data_dir))
        stopped = False
        for pid in _broker_pids(data_dir, record):
            stopped = terminate(pid, timeout) or stopped
        _record_path(data_dir).unlink(missing_ok=True)
        return stopped


def reset(data_dir: Path, timeout: float = 30) -> None:
    """Stop the broker and delete everything it stored: topics, offsets, cluster id, logs.

    Only the entries this module creates are removed (never anything else that might
    have been put into ``data_dir``); ``data_dir`` itself goes when it is then empty.
    """
    data_dir = _resolve(data_dir)
    if not data_dir.is_dir():
        return
    down(data_dir, timeout)
    with _locked(data_dir):
        for name in (KRAFT_DIR, LOGS_DIR):
            shutil.rmtree(data_dir / name, ignore_errors=True)
        for name in (RECORD_FILE, STATE_FILE, PROPERTIES_FILE):
            (data_dir / name).unlink(missing_ok=True)
    (data_dir / LOCK_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        data_dir.rmdir()
