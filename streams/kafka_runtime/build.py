"""Assemble the local Kafka broker from Maven Central: ``ops/kafka/pom.xml`` -> ``ops/kafka/libs``.

``mvn dependency:copy-dependencies`` copies the broker's runtime classpath (kafka_2.13 and
its dependencies, plus a log4j2 backend) into ``ops/kafka/libs``; ``java -cp 'libs/*'``
then runs it. The build is redone only when the libs are missing or incomplete, or the pom
changed (``libs/.build-stamp.json`` holds the pom's SHA-256 and the jar list). A rebuild
goes to a fresh directory that replaces ``libs`` at the end, so an interrupted build never
leaves a half-filled or mixed-version classpath behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ._proc import file_lock, read_json, write_json_atomic
from .errors import KafkaRuntimeError

MIN_JAVA = 17
STAMP_NAME = ".build-stamp.json"
MVN_TIMEOUT = 1800.0  # a first build on a fresh machine downloads ~45 MB
_MVN_ATTEMPTS = 2
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def find_project_root(start: Path | None = None) -> Path:
    """The civicpulse checkout: the first directory holding ``ops/kafka/pom.xml``, looking
    at ``start`` (default: the working directory) and its parents, then at this source tree."""
    here = Path(__file__).resolve().parents[2]
    origin = (start or Path.cwd()).resolve()
    for candidate in (origin, *origin.parents, here):
        if (candidate / "ops" / "kafka" / "pom.xml").is_file():
            return candidate
    raise KafkaRuntimeError(
        f"cannot find ops/kafka/pom.xml above {origin} or at {here}: "
        "run from the civicpulse checkout or pass project_root"
    )


def kafka_home(project_root: Path | None = None) -> Path:
    """``<project>/ops/kafka``: the pom, the log4j2 config and (after a build) ``libs/``."""
    root = project_root.resolve() if project_root is not None else find_project_root()
    home = root / "ops" / "kafka"
    if not (home / "pom.xml").is_file():
        raise KafkaRuntimeError(f"{home / 'pom.xml'} does not exist")
    return home


def find_java() -> Path:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` on PATH; checked to be Java >= 17."""
    java_home = os.environ.get("JAVA_HOME")
    candidate: str | None = None
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        candidate = str(Path(java_home) / "bin" / "java")
    else:
        candidate = shutil.which("java")
    if candidate is None:
        raise KafkaRuntimeError(
            f"java not found (JAVA_HOME unset and no java on PATH): the local Kafka broker "
            f"needs a Java {MIN_JAVA}+ runtime, e.g. `apt-get install openjdk-17-jre-headless`"
        )
    java = Path(candidate)
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise KafkaRuntimeError(
            f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA} or newer "
            "(set JAVA_HOME to a newer JDK/JRE)"
        )
    return java


@functools.lru_cache(maxsize=8)
def java_major_version(java: Path) -> int:
    """The major version of ``java`` (8 for "1.8.0_392", 17 for "17.0.15", 21 for "21")."""
    try:
        proc = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise KafkaRuntimeError(f"cannot run {java} -version: {exc}") from exc
    output = proc.stderr + proc.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if proc.returncode != 0 or match is None:
        raise KafkaRuntimeError(f"cannot tell the version of {java}: {output.strip()[:500]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def find_mvn() -> Path:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaRuntimeError(
            "mvn (Apache Maven) not found on PATH: it assembles the local Kafka broker from "
            "Maven Central, e.g. `apt-get install maven`"
        )
    return Path(mvn)


def pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _is_complete(libs: Path, digest: str) -> bool:
    stamp = read_json(libs / STAMP_NAME)
    if stamp is None or stamp.get("pom_sha256") != digest:
        return False
    jars = stamp.get("jars")
    if not isinstance(jars, list) or not jars:
        return False
    return all(isinstance(jar, str) and (libs / jar).is_file() for jar in jars)


def _run_mvn(mvn: Path, pom: Path, out_dir: Path) -> None:
    cmd = [
        str(mvn),
        "-B",
        "-ntp",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out_dir}",
        "-DincludeScope=runtime",
        "-Dstyle.color=never",
        "-Dmaven.wagon.http.retryHandler.count=3",
    ]
    output = ""
    for attempt in range(1, _MVN_ATTEMPTS + 1):
        try:
            proc = subprocess.run(
                cmd,
                cwd=pom.parent,
                capture_output=True,
                text=True,
                timeout=MVN_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            output = f"(mvn did not finish within {MVN_TIMEOUT:.0f} s)"
            continue
        except OSError as exc:
            raise KafkaRuntimeError(f"cannot run {mvn}: {exc}") from exc
        if proc.returncode == 0:
            return
        output = _ANSI.sub("", proc.stdout + proc.stderr).strip()
        if attempt < _MVN_ATTEMPTS:
            time.sleep(2)  # transient network trouble is the usual cause: try once more
    last = "\n".join(output.splitlines()[-40:])
    raise KafkaRuntimeError(
        f"building the Kafka broker classpath failed ({' '.join(cmd)}):\n{last}"
    )


def ensure_built(project_root: Path | None = None) -> Path:
    """Make sure ``ops/kafka/libs`` holds the broker's classpath; return that directory.

    Runs ``mvn dependency:copy-dependencies`` only when the libs are missing or the pom
    changed since they were built. Raises :class:`KafkaRuntimeError` when java (>= 17) or,
    when a build is needed, mvn is missing, or when the build fails.
    """
    home = kafka_home(project_root)
    pom = home / "pom.xml"
    libs = home / "libs"
    find_java()
    if _is_complete(libs, pom_digest(pom)):
        return libs
    mvn = find_mvn()
    work = home / "target"  # gitignored, like libs/
    with file_lock(work / "build.lock", timeout=MVN_TIMEOUT * _MVN_ATTEMPTS, what="Kafka build"):
        digest = pom_digest(pom)
        if _is_complete(libs, digest):  # another process built it while we waited
            return libs
        fresh = work / f"libs.{os.getpid()}.new"
        old = work / f"libs.{os.getpid()}.old"
        for leftover in (fresh, old):
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            _run_mvn(mvn, pom, fresh)
            jars = sorted(p.name for p in fresh.glob("*.jar"))
            if not any(re.fullmatch(r"kafka_[\d.]+-.+\.jar", jar) for jar in jars):
                raise KafkaRuntimeError(f"mvn ran but put no kafka_*.jar into {fresh}")
            write_json_atomic(
                fresh / STAMP_NAME,
                {
                    "pom_sha256": digest,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "jars": jars,
                },
            )
            if libs.exists():
                libs.rename(old)
            fresh.rename(libs)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
            with contextlib.suppress(OSError):
                shutil.rmtree(old)
    return libs
