"""The CI gate: metric bounds from a JSON file or the command line, checked against a summary."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError
from assistant.evaluation.scoring import METRICS, SIMULATED_METRICS


@dataclass(frozen=True)
class Bound:
    """A gate bound: ``metric`` must be >= ``value`` (kind "min") or <= ``value`` (kind "max")."""

    metric: str
    value: float
    kind: str = "min"


@dataclass(frozen=True)
class GateFailure:
    bound: Bound
    actual: float | None

    def __str__(self) -> str:
        b = self.bound
        if self.actual is None:
            return f"{b.metric} is undefined for this gold set (no rows measure it), but the gate needs it"
        op, verb = (">=", "below") if b.kind == "min" else ("<=", "above")
        return f"{b.metric} = {self.actual:.4f} is {verb} the gate ({op} {b.value:g})"


def parse_bound(text: str, kind: str = "min", *, option: str = "--fail-under") -> Bound:
    """Parse ``METRIC=VALUE`` into a Bound; raise ConfigError naming the option and the value."""
    metric, sep, value = text.partition("=")
    metric = metric.strip()
    if not sep or not metric or not value.strip():
        raise ConfigError(f"{option} expects METRIC=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: {value.strip()!r} is not a number") from None
    return make_bound(metric, number, kind, where=f"{option} {text!r}")


def make_bound(metric: str, value: float, kind: str, *, where: str) -> Bound:
    known = METRICS | SIMULATED_METRICS
    if metric not in known:
        raise ConfigError(f"{where}: unknown metric {metric!r}; choose from {', '.join(known)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: bound must be a finite number, got {value}")
    higher_better = known[metric]
    if kind == "min" and not higher_better:
        raise ConfigError(f"{where}: {metric} is lower-is-better; give it a maximum (--fail-over) instead")
    if kind == "max" and higher_better:
        raise ConfigError(f"{where}: {metric} is higher-is-better; give it a minimum (--fail-under) instead")
    return Bound(metric, float(value), kind)


def load_gate(path: str | Path) -> list[Bound]:
    """Read a gate file: a JSON object mapping metric name -> bound.

    The bound is a minimum for a higher-is-better metric and a maximum for a lower-is-better
    one (``mean_sentences``, ``over_refusal_rate``, ...). Keys starting with ``_`` are notes
    (e.g. ``"_origin"``) and are not bounds.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: gate file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: gate file is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: gate file must be a JSON object of metric -> bound")
    known = METRICS | SIMULATED_METRICS
    bounds = []
    for metric, value in data.items():
        if metric.startswith("_"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: bound for {metric!r} must be a number, got {value!r}")
        kind = "max" if known.get(metric) is False else "min"
        bounds.append(make_bound(metric, float(value), kind, where=str(path)))
    return bounds


def merge_bounds(*groups: Iterable[Bound]) -> list[Bound]:
    """Later bounds replace earlier ones for the same (metric, kind)."""
    merged: dict[tuple[str, str], Bound] = {}
    for group in groups:
        for b in group:
            merged[(b.metric, b.kind)] = b
    return list(merged.values())


def check_gate(summary: dict[str, Any], bounds: Iterable[Bound]) -> list[GateFailure]:
    """The bounds the summary breaks (an undefined metric breaks any bound on it)."""
    failures = []
    for b in bounds:
        actual = summary.get(b.metric)
        if actual is None or (actual < b.value if b.kind == "min" else actual > b.value):
            failures.append(GateFailure(b, None if actual is None else float(actual)))
    return failures
