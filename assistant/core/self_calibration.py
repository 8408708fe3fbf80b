"""Self-calibration without labels: what the corpus's own leave-outs say about the refusal threshold.

A store's FAQ is the only data a new install has. Each of its entries, asked (as its FAQ
question, or its first sentence) with that entry left out of the corpus, is a question on the
store's own topics that the rest of the FAQ does not answer: the nearest thing to the near-topic
questions a customer asks. The share of them the refusal model refuses, and the threshold shift
that would refuse ``quantile`` of them (within [``min_shift``, ``max_shift``]), are fitted at
index time, stored beside the index as ``self_calibration.json`` (fitted again when the corpus,
model or verifier changes) and reported by ``assistant index`` and ``/healthz``.

The shift is applied only when ``APPLY_SHIFT`` is true. Leave-one-corpus-out over the tuning
corpora (docs/retrieval.md, section 7) found that it did not pay on the worst corpus without
costing the bundled corpus answerable questions, so it is measured and reported, not applied;
``assistant calibrate --gold`` (calibration.json) remains the way to move the threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant.core.refusal import RefusalModel
from assistant.core.sentences import split_sentences
from assistant.errors import ConfigError
from assistant.schema import Passage

# The assistant is typed ``Any`` here: importing core.pipeline (which opens this module) would be a cycle.
Assistant = Any

SELF_CALIBRATION_FILE = "self_calibration.json"
KEEP_FITS = 4  # fits kept per index (one per verifier the index was opened with)
MAX_PROBES = 120  # entries simulated (evenly spread over the corpus); ~35 ms each with the verifier
MAX_QUERY_WORDS = 20
# The leave-one-corpus-out choice over the tuning corpora, for the worst corpus (docs/retrieval.md, 7).
QUANTILE = 1.0
MIN_SHIFT = -0.02
MAX_SHIFT = 0.15
APPLY_SHIFT = False  # it did not pay there without losing bundled-corpus answers: reported, not applied


@dataclass(frozen=True)
class Probe:
    """One simulated leave-out: ``query`` asked with the passages ``left_out`` removed."""

    query: str
    left_out: tuple[str, ...]


@dataclass(frozen=True)
class SelfCalibration:
    """What the corpus alone says about the refusal threshold."""

    shift: float  # added to the default thresholds (cosine units)
    probes: int  # simulated leave-outs it was fitted on
    refused_before: float  # share of them the default model refuses
    refused_after: float  # share of them the shifted model refuses
    key: str  # corpus fingerprint, model and verifier it was fitted for
    quantile: float = QUANTILE
    applied: bool = APPLY_SHIFT  # whether the answer-or-refuse decision uses the shift

    def model(self, base: RefusalModel) -> RefusalModel:
        """``base`` with its thresholds raised by ``shift`` when it is applied, else ``base``."""
        if not self.applied:
            return base
        return shifted(base, self.shift, source=f"self-calibrated ({self.probes} leave-outs, threshold {self.shift:+.3f})")

    def describe(self) -> str:
        """One line for ``assistant index``."""
        if self.applied:
            return (
                f"refusal self-calibrated on {self.probes} leave-outs of the corpus's own entries: threshold "
                f"{self.shift:+.3f} (refuses {self.refused_after:.0%} of them; the default {self.refused_before:.0%})"
            )
        return (
            f"refusal: default thresholds; asked with their own entry left out, {self.refused_before:.0%} of "
            f"{self.probes} FAQ entries are refused (a threshold {self.shift:+.3f} would refuse {self.refused_after:.0%}; "
            "not applied, see docs/retrieval.md section 7; `assistant calibrate --gold` fits your own)"
        )

    def to_dict(self) -> dict:
        """The ``/healthz`` object."""
        return {"probes": self.probes, "refused": round(self.refused_before if not self.applied else self.refused_after, 4),
                "shift": self.shift, "applied": self.applied}  # fmt: skip

    def save(self, index_dir: Path) -> Path:
        """Store this fit beside the others of the index (one per key: corpus, model and verifier),
        so alternating `--verifier none` and the verifier does not fit again each time."""
        path = Path(index_dir) / SELF_CALIBRATION_FILE
        fits = {k: v for k, v in _read_fits(path)[1].items() if k != self.key}
        fits = dict(list(fits.items())[-(KEEP_FITS - 1):]) if KEEP_FITS > 1 else {}
        fits[self.key] = asdict(self)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"latest": self.key, "fits": fits}, indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, index_dir: Path, key: str | None = None) -> SelfCalibration | None:
        """The stored fit for ``key`` (None: the one saved last), or None."""
        latest, fits = _read_fits(Path(index_dir) / SELF_CALIBRATION_FILE)
        entry = fits.get(latest if key is None else key)
        try:
            return cls(**entry) if entry is not None else None
        except TypeError:
            return None  # unreadable: it is derived data, fitted again


def _read_fits(path: Path) -> tuple[str | None, dict[str, dict]]:
    """(the key saved last, key -> fit) of a self-calibration file; a file of one fit (as written
    before several were kept) reads as that fit alone; a missing or unreadable file as none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, {}
    if not isinstance(data, dict):
        return None, {}
    if isinstance(data.get("fits"), dict):
        fits = {k: v for k, v in data["fits"].items() if isinstance(v, dict)}
        return data.get("latest"), fits
    return data.get("key"), {data.get("key"): data}


def shifted(base: RefusalModel, shift: float, *, source: str | None = None) -> RefusalModel:
    """``base`` answering only from ``shift`` higher on the cosine scale of its ``dense`` feature."""
    w = base.weights.get("dense")
    if not w:
        raise ConfigError("a threshold shift needs a refusal model that weighs 'dense'")
    return replace(base, bias=base.bias - shift * w, source=source or base.source)


def probes(passages: Sequence[Passage], *, max_probes: int = MAX_PROBES) -> list[Probe]:
    """One leave-out per entry (passages sharing a title), at most ``max_probes`` spread evenly.

    The query is the entry's title when it is a question (FAQ rows, ``## Question`` headings),
    else the first sentence of its first passage; every passage under that title is left out.
    """
    entries: dict[str, list[Passage]] = {}
    for p in passages:
        entries.setdefault(p.title, []).append(p)
    if len(entries) < 2:
        return []
    out = []
    for title, group in entries.items():
        if title.rstrip().endswith("?"):
            query = title
        else:
            first = split_sentences(group[0].text)
            query = " ".join((first[0] if first else group[0].text).split()[:MAX_QUERY_WORDS])
        if query.strip():
            out.append(Probe(query=query, left_out=tuple(p.id for p in group)))
    if len(out) > max_probes:
        picks = np.linspace(0, len(out) - 1, max_probes).round().astype(int)
        out = [out[i] for i in sorted(set(picks.tolist()))]
    return out


def probe_features(assistant: Assistant, items: Sequence[Probe]) -> list[dict[str, float]]:
    """The refusal features of each probe, asked with its entry left out (the probes' queries
    encoded in one batch per model: ``Assistant.features_many``)."""
    return assistant.features_many([p.query for p in items], [p.left_out for p in items])


def headroom(model: RefusalModel, feats: dict[str, float]) -> float:
    """How far above ``model``'s cut a feature row scores, in cosine units (>= 0: answered)."""
    return model.logit(feats) / model.weights["dense"]


def fit_shift(
    model: RefusalModel,
    rows: Sequence[dict[str, float]],
    *,
    quantile: float = QUANTILE,
    min_shift: float = MIN_SHIFT,
    max_shift: float = MAX_SHIFT,
) -> float:
    """The threshold shift that refuses ``quantile`` of the leave-out ``rows``, clipped to the bounds."""
    if not 0 <= quantile <= 1:
        raise ConfigError(f"quantile must be in [0, 1], got {quantile}")
    if min_shift > max_shift:
        raise ConfigError(f"min_shift must be <= max_shift, got {min_shift} > {max_shift}")
    if not rows:
        return 0.0
    room = np.array([headroom(model, r) for r in rows])
    want = float(np.quantile(room, quantile)) + 1e-6
    return float(min(max_shift, max(min_shift, want)))


def self_calibrate(
    assistant: Assistant,
    key: str,
    *,
    quantile: float = QUANTILE,
    min_shift: float = MIN_SHIFT,
    max_shift: float = MAX_SHIFT,
    max_probes: int = MAX_PROBES,
) -> SelfCalibration:
    """Fit the shift for ``assistant``'s corpus, from its own leave-outs (no labels)."""
    base = RefusalModel.default_for(assistant.verifier_name)
    rows = probe_features(assistant, probes(assistant.index.passages, max_probes=max_probes))
    shift = fit_shift(base, rows, quantile=quantile, min_shift=min_shift, max_shift=max_shift)
    after = shifted(base, shift)

    def refused(model: RefusalModel) -> float:
        return float(np.mean([model.probability(r) < 0.5 for r in rows])) if rows else math.nan

    return SelfCalibration(
        shift=round(shift, 6), probes=len(rows), refused_before=refused(base), refused_after=refused(after),
        key=key, quantile=quantile, applied=APPLY_SHIFT,
    )  # fmt: skip


def ensure(
    assistant: Assistant, index_dir: Path, *, log: Callable[[str], None] | None = None
) -> SelfCalibration:
    """The stored self-calibration when it fits this index, else a fresh one (saved)."""
    m = assistant.index.manifest
    key = f"{m.get('corpus_fingerprint')}|{m.get('model')}|{assistant.verifier_name}"
    stored = SelfCalibration.load(index_dir, key)
    if stored is not None and stored.key == key and stored.applied == APPLY_SHIFT:
        return stored
    fitted = self_calibrate(assistant, key)
    try:
        fitted.save(index_dir)
    except OSError as exc:  # a read-only index folder: use it, fit again next time
        if log:
            log(f"refusal: could not store the self-calibration ({exc.strerror or exc})")
    return fitted
