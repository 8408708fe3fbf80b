"""`assistant calibrate`: fit the answer-or-refuse decision to a labelled gold set, stored with the index."""

from __future__ import annotations

import sys
from pathlib import Path

from assistant.cli import common
from assistant.errors import ConfigError
from assistant.extras import require_extra


def register(sub, add_corpus_args) -> None:
    p = sub.add_parser("calibrate", help="fit the refusal decision to a gold set and store it with the index")
    add_corpus_args(p)
    p.add_argument("--gold", required=True, metavar="FILE", help="gold questions (JSONL/CSV) with answerable true/false rows")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the reported figures (default 5)")
    p.add_argument(
        "--simulate-unanswerable", action="store_true",
        help="also learn from every answerable question asked with the passages that answer it left out "
        "(unanswerable then); works with a gold set that has no unanswerable rows",
    )  # fmt: skip
    p.add_argument(
        "--max-answerable-refused", type=float, metavar="SHARE",
        help="operating point: refuse at most this share of the answerable gold questions (e.g. 0.08); "
        "default: the class-balanced point",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="report the cross-validated figures without saving")
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    require_extra("eval", "assistant calibrate")  # before the imports below need tabulate, sklearn
    # Deferred: numpy, pandas, scikit-learn and the models are heavy; `assistant --help` stays fast.
    import numpy as np
    from tabulate import tabulate
    from tqdm import tqdm

    from assistant.core.refusal import RefusalModel
    from assistant.evaluation.calibration import collect_features, cross_validate, fit
    from assistant.evaluation.gold import gold_digest, load_gold
    from assistant.evaluation.metrics import auroc

    if args.folds < 2:
        raise ConfigError(f"--folds must be >= 2, got {args.folds}")
    share = args.max_answerable_refused
    if share is not None and not 0 <= share < 1:
        raise ConfigError(f"--max-answerable-refused must be in [0, 1), got {share}")
    gold = load_gold(args.gold)
    assistant, _, index_dir = common.open_assistant(args)
    data = collect_features(
        assistant, gold, simulate_unanswerable=args.simulate_unanswerable,
        progress=lambda xs: tqdm(xs, desc="features", file=sys.stderr, disable=args.quiet),
    )  # fmt: skip
    X, y, rows = data.X, data.y, data.rows
    if y.min() == y.max():
        hint = "" if args.simulate_unanswerable else " (or add --simulate-unanswerable)"
        raise ConfigError(f"{args.gold}: calibration needs both answerable and unanswerable rows{hint}")
    cv = cross_validate(X, y, folds=args.folds, groups=data.groups, max_answerable_refused=share)
    default = assistant.default_refusal()
    p_default = np.array([default.probability(r) for r in rows])
    n_sim = data.n_simulated
    table = [
        ["default (dense threshold)", f"{np.mean(p_default[y == 0] < 0.5):.3f}", f"{np.mean(p_default[y == 1] < 0.5):.3f}",
         f"{auroc(p_default[y == 1], p_default[y == 0]):.3f}"],
        [f"calibrated ({int(cv['folds'])}-fold CV)", f"{cv['unanswerable_refused']:.3f}", f"{cv['answerable_refused']:.3f}",
         f"{cv['auroc']:.3f}"],
    ]  # fmt: skip
    print(f"{int((y == 1).sum())} answerable, {int((y == 0).sum())} unanswerable rows"
          + (f" ({n_sim} of them answerable questions with their passages left out)" if n_sim else ""))  # fmt: skip
    print(tabulate(table, headers=["decision", "unanswerable refused", "answerable refused", "AUROC"], disable_numparse=True))
    source = f"calibrated on {Path(args.gold).name} sha256:{gold_digest(args.gold)}"
    model = fit(X, y, source=source, max_answerable_refused=share)
    model = RefusalModel(
        weights=model.weights, bias=model.bias, source=model.source, metrics=cv, verifier=assistant.verifier_name,
        verifier_fingerprint=assistant.verifier.encoder.fingerprint if assistant.verifier is not None else "",
    )
    print("weights: " + ", ".join(f"{k}={v:+.2f}" for k, v in model.weights.items()) + f", bias={model.bias:+.2f}")
    if args.dry_run:
        print("dry run: nothing saved")
    else:
        print(f"saved -> {model.save(index_dir)}")
    return 0
