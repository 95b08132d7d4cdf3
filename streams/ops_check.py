"""Check the shipped monitoring configuration: ``ops/prometheus`` and ``ops/alertmanager``.

A thin adapter over the tools that own the formats, plus one check of our own:

* ``promtool check config`` (Prometheus' configuration), ``promtool check rules`` (each rule
  file named by ``rule_files``) and ``amtool check-config`` (Alertmanager's configuration),
  with their output turned into :class:`Problem` values naming the file, the line and the
  reason. When a tool gives no line (``undefined receiver "x" used in route``), the line
  is found in the file from the names the message quotes.
* Every ``civicpulse_*`` metric name in a rule expression must be one the worker exposes
  (:func:`streams.observability.registry.exposed_names`): Prometheus accepts a rule over a
  misspelled metric, and that rule then never fires.

``civicpulse ops check`` (``streams/cli_ops.py``) runs :func:`check` on the shipped files.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.observability.registry import exposed_names

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMETHEUS = PROJECT_ROOT / "ops" / "prometheus" / "prometheus.yml"
DEFAULT_ALERTMANAGER = PROJECT_ROOT / "ops" / "alertmanager" / "alertmanager.yml"
TOOL_TIMEOUT = 60.0

# A metric name of ours in a PromQL expression (not part of a longer identifier).
METRIC_TOKEN = re.compile(r"(?<![A-Za-z0-9_:])civicpulse_[A-Za-z0-9_:]*")

_RULE_POSITION = re.compile(r"^(?P<line>\d+):(?P<col>\d+): (?P<reason>.+)$")
_YAML_LINE = re.compile(r"^yaml: line (?P<line>\d+): (?P<reason>.+)$")
_UNMARSHAL_LINE = re.compile(r"^\s*line (?P<line>\d+): (?P<reason>.+)$")
_QUOTED = re.compile(r'"([^"]+)"|`([^`]+)`')
_ANCHORED_REGEX = re.compile(r"^\^\(\?:(.*)\)\$$")


class OpsCheckError(Exception):
    """The configuration is invalid (``problems``) or a tool is missing (no problems)."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = tuple(problems)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file; ``line`` is 1-based, ``None`` when it cannot be told."""

    file: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        return f"{where}: {self.reason}"


@dataclass
class Report:
    """What :func:`check` looked at, and what it found wrong (nothing when ``ok``)."""

    prometheus: Path
    alertmanager: Path | None
    rule_files: list[Path] = field(default_factory=list)
    rules: int = 0
    metric_names: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- running the tools ---------------------------------------------------------------


def find_tool(name: str) -> str:
    """The path of ``promtool`` or ``amtool``; a clear error when it is not installed."""
    path = shutil.which(name)
    if path is None:
        package = "prometheus" if name in ("promtool", "prometheus") else "prometheus-alertmanager"
        raise OpsCheckError(
            f"{name} not found on PATH: `make install` installs it "
            f"(Debian package {package}), or install it yourself"
        )
    return path


def _run(tool: str, *args: str) -> tuple[int, str]:
    for arg in args:
        if arg.endswith((".yml", ".yaml")) and not Path(arg).is_file():
            return 1, f"FAILED: {arg}: no such file"
    try:
        done = subprocess.run(
            [find_tool(tool), *args],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        command = " ".join((tool, *args))
        raise OpsCheckError(f"{command} did not finish in {TOOL_TIMEOUT:.0f} s") from err
    return done.returncode, done.stdout + "\n" + done.stderr


# --- reading tool output -------------------------------------------------------------


def _strip_file_prefix(text: str, file: Path) -> str:
    for prefix in (str(file), file.name):
        if text.startswith(prefix + ": "):
            return text[len(prefix) + 2 :]
    return text


def parse_tool_output(output: str, file: Path) -> list[Problem]:
    """The problems in a promtool / amtool run over ``file`` (one file per run).

    Everything after the first ``FAILED:`` is the failure. Understood in it, after the
    file's name: ``L:C: reason`` (rule errors), ``yaml: line L: reason``, ``yaml: unmarshal
    errors:`` followed by ``line L: reason`` lines; any other message gets its line from
    :func:`locate`.
    """
    if "FAILED:" not in output:
        return []
    problems: list[Problem] = []
    for raw in output.split("FAILED:", 1)[1].splitlines():
        text = raw.strip()
        if not text or text.startswith(("amtool: error:", "Checking ", "SUCCESS")):
            continue
        text = _strip_file_prefix(text, file)
        if text.startswith("parsing YAML file "):
            text = _strip_file_prefix(text[len("parsing YAML file ") :], file)
        if text.endswith("yaml: unmarshal errors:"):
            continue  # one "line L: reason" line follows for each error
        if match := _YAML_LINE.match(text):
            # Go's YAML parser may name the line after the mistake; PyYAML's marks are exact.
            line = yaml_error_line(file) or int(match["line"])
            problems.append(Problem(file, line, f"invalid YAML: {match['reason']}"))
            continue
        match = _UNMARSHAL_LINE.match(text) or _RULE_POSITION.match(text)
        if match:
            problems.append(Problem(file, int(match["line"]), match["reason"].strip()))
        else:
            problems.append(Problem(file, locate(file, text), text))
    return _unique(problems)


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out: list[Problem] = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            out.append(problem)
    return out


def locate(file: Path, reason: str) -> int | None:
    """The line of ``file`` a line-less message is about: the line holding the name the
    message quotes as a YAML value (``receiver: x``, ``name: x``, a matcher's regex); the
    last such line when the message says a name ``is not unique``."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError:
        return None
    candidates: list[str] = []
    for double, backtick in _QUOTED.findall(reason):
        token = double or backtick
        anchored = _ANCHORED_REGEX.match(token)
        candidates.append(anchored.group(1) if anchored else token)
    lines = text.splitlines()
    for token in candidates:
        value = re.compile(
            r"(?:^|[\s:\[,{=~!-])[\"']?" + re.escape(token) + r"[\"']?\s*(?:$|[,\]}#])"
        )
        hits = [
            n
            for n, line in enumerate(lines, start=1)
            if not line.lstrip().startswith("#") and value.search(line)
        ]
        if not hits:
            hits = [
                n
                for n, line in enumerate(lines, start=1)
                if not line.lstrip().startswith("#") and token in line
            ]
        if hits:
            return hits[-1] if "not unique" in reason else hits[0]
    return None


# --- YAML with line marks --------------------------------------------------------------


def _error_mark(err: yaml.MarkedYAMLError) -> yaml.Mark | None:
    # An unclosed flow collection or quoted scalar is noticed lines later (problem_mark);
    # the mistake is where it opened (context_mark). Otherwise the problem is at the mark.
    context = err.context or ""
    if err.context_mark is not None and context.startswith(
        ("while parsing a flow", "while scanning a quoted", "while scanning a block scalar")
    ):
        return err.context_mark
    return err.problem_mark or err.context_mark


def yaml_error_line(file: Path) -> int | None:
    """The line of the first YAML syntax error in ``file`` (``None``: the file parses)."""
    problem = _yaml_problem(file)
    return problem.line if problem is not None else None


def _yaml_problem(file: Path) -> Problem | None:
    """A YAML syntax error in ``file``, with its line, as PyYAML reports it."""
    try:
        yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        return Problem(file, None, f"cannot read: {err.strerror or err}")
    except yaml.MarkedYAMLError as err:
        mark = _error_mark(err)
        line = mark.line + 1 if mark is not None else None
        return Problem(file, line, f"invalid YAML: {err.problem or err}")
    except yaml.YAMLError as err:
        return Problem(file, None, f"invalid YAML: {err}")
    return None


def _mapping_get(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found: yaml.Node = value_node
            return found
    return None


def _sequence(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def rule_expressions(file: Path) -> list[tuple[str, int, str]]:
    """``(rule name, line, expression source)`` for each rule of a Prometheus rule file;
    the source is the file's own text of the ``expr`` value, starting on ``line``."""
    text = file.read_text(encoding="utf-8")
    root = yaml.compose(text)
    out: list[tuple[str, int, str]] = []
    if root is None:
        return out
    for group in _sequence(_mapping_get(root, "groups")):
        for rule in _sequence(_mapping_get(group, "rules")):
            expr = _mapping_get(rule, "expr")
            if not isinstance(expr, yaml.ScalarNode):
                continue
            name_node = _mapping_get(rule, "alert") or _mapping_get(rule, "record")
            name = name_node.value if isinstance(name_node, yaml.ScalarNode) else "?"
            source = text[expr.start_mark.index : expr.end_mark.index]
            out.append((str(name), expr.start_mark.line + 1, source))
    return out


def check_metric_names(
    file: Path, known: frozenset[str] | None = None
) -> tuple[list[Problem], set[str]]:
    """Every ``civicpulse_*`` name in the rule expressions of ``file`` that the worker does
    not expose, at its own line; and the set of names the file uses."""
    names = exposed_names() if known is None else known
    if (bad := _yaml_problem(file)) is not None:
        return [bad], set()
    problems: list[Problem] = []
    used: set[str] = set()
    for rule, line, source in rule_expressions(file):
        for match in METRIC_TOKEN.finditer(source):
            metric = match.group(0)
            used.add(metric)
            if metric not in names:
                at = line + source.count("\n", 0, match.start())
                problems.append(
                    Problem(
                        file,
                        at,
                        f"rule {rule!r} uses metric {metric!r}, which the worker does not "
                        "expose (streams/observability/registry.py); the rule would never fire",
                    )
                )
    return problems, used


# --- the checks ----------------------------------------------------------------------


def check_prometheus_config(path: Path) -> list[Problem]:
    """``promtool check config --syntax-only``: the configuration itself (rule files are
    checked by :func:`check_rules`)."""
    code, output = _run("promtool", "check", "config", "--syntax-only", str(path))
    problems = parse_tool_output(output, path)
    if code != 0 and not problems:
        problems.append(Problem(path, None, f"promtool check config failed: {output.strip()}"))
    return problems


def check_rules(path: Path) -> tuple[list[Problem], int]:
    """``promtool check rules`` on one rule file: its problems and its number of rules."""
    code, output = _run("promtool", "check", "rules", str(path))
    problems = parse_tool_output(output, path)
    if code != 0 and not problems:
        problems.append(Problem(path, None, f"promtool check rules failed: {output.strip()}"))
    found = re.search(r"SUCCESS: (\d+) rules found", output)
    return problems, int(found.group(1)) if found else 0


def check_alertmanager_config(path: Path) -> list[Problem]:
    """``amtool check-config`` on Alertmanager's configuration."""
    code, output = _run("amtool", "check-config", str(path))
    problems = parse_tool_output(output, path)
    if code != 0 and not problems:
        problems.append(Problem(path, None, f"amtool check-config failed: {output.strip()}"))
    return problems


def rule_files(prometheus_config: Path) -> list[Path]:
    """The rule files ``rule_files`` names (globs, relative to the configuration's folder)."""
    data: Any = yaml.safe_load(prometheus_config.read_text(encoding="utf-8")) or {}
    patterns = (data.get("rule_files") or []) if isinstance(data, dict) else []
    files: list[Path] = []
    for pattern in patterns:
        full = Path(pattern) if Path(pattern).is_absolute() else prometheus_config.parent / pattern
        files.extend(Path(p) for p in sorted(glob.glob(str(full))))
    return files


def check(
    prometheus: Path = DEFAULT_PROMETHEUS, alertmanager: Path | None = DEFAULT_ALERTMANAGER
) -> Report:
    """Every check on a Prometheus configuration (and its rule files) and an Alertmanager
    configuration. Problems are in the report; a missing tool raises :class:`OpsCheckError`."""
    report = Report(prometheus=prometheus, alertmanager=alertmanager)
    report.problems.extend(check_prometheus_config(prometheus))
    if not report.problems:
        report.rule_files = rule_files(prometheus)
        if not report.rule_files:
            report.problems.append(
                Problem(prometheus, locate(prometheus, '"rule_files"'), "no rule files found")
            )
        for rule_file in report.rule_files:
            problems, count = check_rules(rule_file)
            report.problems.extend(problems)
            report.rules += count
            if not problems:
                unknown, used = check_metric_names(rule_file)
                report.problems.extend(unknown)
                report.metric_names |= used
    if alertmanager is not None:
        report.problems.extend(check_alertmanager_config(alertmanager))
    return report


def require_valid(
    prometheus: Path = DEFAULT_PROMETHEUS, alertmanager: Path | None = DEFAULT_ALERTMANAGER
) -> Report:
    """:func:`check`, raising :class:`OpsCheckError` (one ``file:line: reason`` a line)
    when anything is wrong."""
    report = check(prometheus, alertmanager)
    if not report.ok:
        raise OpsCheckError("\n".join(str(p) for p in report.problems), report.problems)
    return report
