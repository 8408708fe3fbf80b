"""Self-calibration without labels: the refusal threshold fitted to the corpus's own leave-outs."""

from pathlib import Path

import pytest

from assistant.core import self_calibration as sc
from assistant.core.corpus import load_corpus
from assistant.core.pipeline import Assistant
from assistant.core.refusal import RefusalModel
from assistant.errors import ConfigError
from assistant.models.verifier import VERIFIER_NAME

ROOT = Path(__file__).resolve().parent.parent
BIKE = ROOT / "evals" / "corpora" / "bike-shop" / "speichenwerk-faq.md"
SUBSCRIPTION = ROOT / "evals" / "corpora" / "software-subscription" / "terms.txt"


def test_probes_ask_each_entry_with_it_left_out():
    probes = sc.probes(load_corpus([BIKE]))
    assert len(probes) == 12
    by_query = {p.query: p.left_out for p in probes}
    assert by_query["Can I change or cancel my order?"] == ("speichenwerk-faq:can-i-change-or-cancel-my-order-1",)
    # a title that is not a question: its first sentence is asked
    assert by_query["Speichenwerk is a bike shop and repair workshop in Berlin-Kreuzberg."] == (
        "speichenwerk-faq:speichenwerk-bikes-frequently-asked-questions-1",
    )


def test_probes_leave_out_a_whole_section_and_stay_within_the_cap():
    passages = load_corpus([SUBSCRIPTION])
    probes = sc.probes(passages)
    billing = next(p for p in probes if p.query.startswith("Subscriptions renew automatically"))
    assert billing.left_out == tuple(p.id for p in passages if p.title == "Billing") and len(billing.left_out) == 3
    capped = sc.probes(passages, max_probes=4)
    assert len(capped) == 4 and capped[0] == probes[0] and capped[-1] == probes[-1]
    assert sc.probes(passages[:1]) == []  # one entry: nothing left to ask it against


BASE = RefusalModel.default(0.5)  # answers from dense 0.5 (plain text)
ROWS = [{"dense": d, "faq": 0.0} for d in (0.30, 0.40, 0.45, 0.55, 0.60)]  # headroom -0.2, -0.1, -0.05, 0.05, 0.1


@pytest.mark.parametrize(
    "quantile, lo, hi, expected",
    [(1.0, 0.0, 0.2, 0.1), (1.0, 0.0, 0.08, 0.08), (0.5, 0.0, 0.2, 0.0), (0.5, -0.1, 0.2, -0.05), (0.75, 0.0, 0.2, 0.05)],
)
def test_fit_shift_refuses_the_quantile_within_bounds(quantile, lo, hi, expected):
    assert sc.fit_shift(BASE, ROWS, quantile=quantile, min_shift=lo, max_shift=hi) == pytest.approx(expected, abs=1e-5)
    assert sc.fit_shift(BASE, [], quantile=quantile, min_shift=lo, max_shift=hi) == 0.0


def test_shifted_moves_every_threshold_by_the_shift():
    base = RefusalModel.default_for(VERIFIER_NAME)
    moved = sc.shifted(base, 0.04, source="s")
    for faq, t in ((0.0, 0.53), (1.0, 0.65)):
        assert moved.probability({"dense": t + 0.04, "margin": 0.0, "faq": faq}) == pytest.approx(0.5)
        assert base.probability({"dense": t, "margin": 0.0, "faq": faq}) == pytest.approx(0.5)
    assert moved.source == "s" and moved.verifier == VERIFIER_NAME


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sc.fit_shift(BASE, ROWS, quantile=1.5), "quantile must be in"),
        (lambda: sc.fit_shift(BASE, ROWS, min_shift=0.1, max_shift=0.0), "min_shift must be <= max_shift"),
        (lambda: sc.shifted(RefusalModel(weights={"margin": 1.0}), 0.1), "weighs 'dense'"),
    ],
)
def test_bad_settings_raise(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_a_stored_self_calibration_survives_a_round_trip_and_junk_is_refitted(tmp_path):
    s = sc.SelfCalibration(shift=0.03, probes=12, refused_before=0.6, refused_after=0.8, key="k")
    s.save(tmp_path)
    assert sc.SelfCalibration.load(tmp_path) == s
    (tmp_path / sc.SELF_CALIBRATION_FILE).write_text("{not json")
    assert sc.SelfCalibration.load(tmp_path) is None


def test_each_verifier_keeps_its_own_fit_and_a_file_of_one_fit_still_reads(tmp_path):
    import json
    from dataclasses import asdict

    fits = [sc.SelfCalibration(shift=0.01 * i, probes=12, refused_before=0.5, refused_after=0.6, key=f"c|m|v{i}")
            for i in range(sc.KEEP_FITS + 1)]  # fmt: skip
    fits[0].save(tmp_path)
    fits[1].save(tmp_path)  # another verifier on the same index: the first fit is kept
    assert sc.SelfCalibration.load(tmp_path, "c|m|v0") == fits[0]
    assert sc.SelfCalibration.load(tmp_path, "c|m|v1") == fits[1] == sc.SelfCalibration.load(tmp_path)
    for f in fits[2:]:
        f.save(tmp_path)
    assert sc.SelfCalibration.load(tmp_path, "c|m|v0") is None  # the oldest goes past KEEP_FITS
    assert sc.SelfCalibration.load(tmp_path, fits[-1].key) == fits[-1]
    assert sc.SelfCalibration.load(tmp_path, "c|m|other") is None
    (tmp_path / sc.SELF_CALIBRATION_FILE).write_text(json.dumps(asdict(fits[0])))  # as written before
    assert sc.SelfCalibration.load(tmp_path, "c|m|v0") == fits[0] == sc.SelfCalibration.load(tmp_path)
    assert sc.SelfCalibration.load(tmp_path, "c|m|v1") is None


def test_the_shift_is_applied_only_when_switched_on():
    s = sc.SelfCalibration(shift=0.04, probes=12, refused_before=0.5, refused_after=0.9, key="k", applied=False)
    base = RefusalModel.default_for(VERIFIER_NAME)
    assert s.model(base) == base and "not applied" in s.describe() and "50% of 12 FAQ entries" in s.describe()
    on = sc.SelfCalibration(shift=0.04, probes=12, refused_before=0.5, refused_after=0.9, key="k", applied=True)
    assert on.model(base) == sc.shifted(base, 0.04, source="self-calibrated (12 leave-outs, threshold +0.040)")
    assert on.to_dict() == {"probes": 12, "refused": 0.9, "shift": 0.04, "applied": True}


def test_real_model_self_calibrates_at_index_time_and_gold_calibration_wins(
    onnx_encoder, onnx_verifier, tmp_path, monkeypatch
):
    monkeypatch.setattr(sc, "APPLY_SHIFT", False)
    idx = tmp_path / "idx"
    a, _ = Assistant.open([BIKE], idx, encoder=onnx_encoder, verifier=onnx_verifier, self_calibrate=True)
    fitted = a.self_calibration
    assert fitted is not None and fitted.probes == 12 and fitted.applied is False
    assert (idx / sc.SELF_CALIBRATION_FILE).is_file()
    assert sc.MIN_SHIFT <= fitted.shift <= sc.MAX_SHIFT and fitted.refused_after >= fitted.refused_before
    base = RefusalModel.default_for(VERIFIER_NAME)
    assert a.refusal == base
    # the leave-outs it was fitted on: the default and the shifted model refuse the shares it reports
    items = sc.probes(a.index.passages)
    rows = sc.probe_features(a, items)
    # asked in one batch, the probes get the features they get one by one (up to float rounding)
    assert rows == [pytest.approx(a.features_for(p.query, leave_out=p.left_out), abs=1e-5) for p in items]
    assert sum(base.probability(r) < 0.5 for r in rows) / len(rows) == pytest.approx(fitted.refused_before)
    moved = sc.shifted(base, fitted.shift)
    assert sum(moved.probability(r) < 0.5 for r in rows) / len(rows) == pytest.approx(fitted.refused_after)

    # the library default does not self-calibrate
    d, _ = Assistant.open([BIKE], idx, encoder=onnx_encoder, verifier=onnx_verifier)
    assert d.self_calibration is None and d.refusal == base

    # switched on: the same index is fitted again (the stored fit says "not applied") and the
    # answer-or-refuse decision uses the shift
    monkeypatch.setattr(sc, "APPLY_SHIFT", True)
    on, _ = Assistant.open([BIKE], idx, encoder=onnx_encoder, verifier=onnx_verifier, self_calibrate=True)
    assert on.self_calibration.applied is True and on.self_calibration.shift == fitted.shift
    assert on.refusal == sc.shifted(base, fitted.shift, source=on.refusal.source)

    # reopened unchanged: the stored fit is used, not fitted again
    monkeypatch.setattr(sc, "self_calibrate", lambda *a, **k: pytest.fail("fitted again"))
    b, _ = Assistant.open([BIKE], idx, encoder=onnx_encoder, verifier=onnx_verifier, self_calibrate=True)
    assert b.self_calibration == on.self_calibration and b.refusal == on.refusal

    # `assistant calibrate --gold` stores calibration.json: it decides
    RefusalModel(weights={"dense": 10.0}, bias=-5.0, source="calibrated on g", verifier=VERIFIER_NAME).save(idx)
    c, _ = Assistant.open([BIKE], idx, encoder=onnx_encoder, verifier=onnx_verifier, self_calibrate=True)
    assert c.refusal.source == "calibrated on g" and c.default_refusal() == on.refusal


def test_assistant_index_reports_the_self_calibration(tiny_corpus, tmp_path, monkeypatch, capsys, fake_encoder):
    from assistant.cli.main import main

    def open_assistant(args):
        a, stats = Assistant.open([tiny_corpus], tmp_path / "idx", encoder=fake_encoder, self_calibrate=True)
        return a, stats, tmp_path / "idx"

    monkeypatch.setattr("assistant.cli.common.open_assistant", open_assistant)
    assert main(["index", "--corpus", str(tiny_corpus)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("index built:")
    assert out[1].startswith("refusal: default thresholds; asked with their own entry left out,") and "of 4 FAQ entries" in out[1]
