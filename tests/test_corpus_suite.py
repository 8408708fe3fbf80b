"""The FAQ corpus suite (evals/corpora/) and the replay behind scripts/corpus_suite.py."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.core.corpus import load_corpus
from assistant.core.refusal import RefusalModel
from assistant.evaluation.gold import load_gold
from assistant.evaluation.metrics import passage_is_relevant
from assistant.schema import Passage

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))  # a script may import another (title_only imports corpus_suite)
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def suite():
    return _script("corpus_suite")


def test_the_suite_has_tuning_and_test_corpora_of_different_shapes(suite):
    corpora = suite.discover(ROOT / "evals" / "corpora")
    assert [c.split for c in corpora].count("tuning") == 8 and [c.split for c in corpora].count("test") == 3
    shapes = {f.suffix for c in corpora for f in c.files if c.name != "bundled"}
    assert shapes == {".md", ".txt", ".csv", ".html", ".jsonl"}


@pytest.mark.parametrize(
    "name",
    ["bike-shop", "software-subscription", "restaurant", "garden-centre", "phone-repair", "travel-agency", "pharmacy",
     "pet-supplies", "bookshop", "coffee-roastery"],  # fmt: skip
)
def test_every_gold_row_is_scorable_on_its_corpus(suite, name):
    corpus = next(c for c in suite.discover(ROOT / "evals" / "corpora") if c.name == name)
    passages = load_corpus(list(corpus.files))
    gold = load_gold(corpus.gold)
    answerable = [q for q in gold if q.answerable]
    assert len(gold) >= 20 and len(answerable) >= 14 and len(gold) - len(answerable) >= 8
    for q in answerable:  # each fact set is stated by some passage, so the row can be answered right
        assert any(passage_is_relevant(p, (), q.must_include) for p in passages), q.id


def test_replay_decides_as_the_model_would(suite):
    model = RefusalModel.default(0.5)
    rows = [
        suite.Row({"dense": 0.7}, True, True, None),  # answered, right
        suite.Row({"dense": 0.3}, True, True, True),  # refused, but the contact answer is right
        suite.Row({"dense": 0.3}, False, False, None),  # refused: right
        suite.Row({"dense": 0.6}, False, False, None),  # answered an unanswerable one: wrong
    ]
    assert suite.replay(rows, model) == {"answerable": 1.0, "unanswerable": 0.5}
    assert suite.worst([{"answerable": 1.0, "unanswerable": 0.5}, {"answerable": 0.5, "unanswerable": 0.5}]) == (0.5, 0.625)


def test_replay_applies_the_rules_the_pipeline_applies_after_the_model(suite):
    # The default model's reading (RefusalModel.default: plain text at 0.5, FAQ rows at 0.58 here).
    model = RefusalModel.default(0.5)
    faq = {"dense": 0.52, "faq": 1.0}  # an FAQ row under its threshold
    # Its answer sentence states the asked time at 0.6: decided as plain text, answered.
    assert suite.answers(suite.Row(faq, True, True, None, stated=0.6), model) == (True, False)
    assert suite.answers(suite.Row(faq, True, True, None, stated=0.4), model) == (False, False)
    # A bare "Yes," lead of a plain-text section is answered only at the FAQ-row threshold: refused
    # as not_stated, so no contact answer stands in for it.
    yes = suite.Row({"dense": 0.55, "faq": 0.0}, False, False, True, yes_title=True)
    assert suite.answers(yes, model) == (False, True)
    assert suite.replay([yes, suite.Row({"dense": 0.7}, True, True, None)], model) == {"answerable": 1.0, "unanswerable": 1.0}
    # An answer that would state no amount for "how much" is refused anyway.
    assert suite.answers(suite.Row({"dense": 0.9}, False, False, None, not_stated=True), model) == (False, True)


# The title-only rule (scripts/title_only.py): measured, not shipped.


class _Recorder:
    def __init__(self):
        self.calls = []

    def embed_many(self, texts):
        self.calls.append(list(texts))
        return np.ones((len(texts), 2), dtype=np.float32)


def test_title_only_replay_reads_the_question_without_its_title_words_against_the_passage():
    TitleOnly = _script("title_only").TitleOnly
    returns = Passage("f:ret", "f", "Can I return a refurbished phone?",
                      "You can return a refurbished phone within 30 days of delivery for a full refund.", "f.md", 3)  # fmt: skip
    shipping = Passage("f:ship", "f", "Shipping", "Delivery costs 6.50 euros.", "f.md", 9)
    v = _Recorder()
    rule = TitleOnly(v)
    scores = lambda vq, pid: [(0, 10, 0.2), (11, 20, 0.1)]  # noqa: E731 - the verifier's cosine per sentence
    q = "Can I spread the cost of a refurbished phone over monthly instalments?"
    assert rule.read(q, returns, scores) == (0.0, 0.2, 4)  # "spread", "cost", "monthly", "instalments": none in the passage
    assert v.calls == [["Can I spread the cost of a over monthly instalments?"]]  # the title's words taken out
    assert rule.run(q, returns, scores) == 0.2
    # Not read: a topic title, nothing else asked, or the words left mostly in the passage (nothing embedded)
    v.calls.clear()
    assert rule.read("who pays for shipping?", shipping, scores) is None
    assert rule.read("refurbished phone?", returns, scores) is None
    assert rule.run("can I return my refurbished phone for a full refund within 30 days?", returns, scores) is None
    assert rule.read("a full refund for a lost phone?", returns, scores) == (pytest.approx(2 / 3), 0.2, 3)  # read at any coverage ...
    assert rule.run("a full refund for a lost phone?", returns, scores) is None  # ... but the rule stops at 0.25
    assert rule.read("Can I return a phone?", returns, lambda vq, pid: []) is None  # no indexed sentences: FAQ rows
    # A word or two beyond the title most often reword it ("Is travel insurance required?" under "Do I
    # need travel insurance?"): read, but the rule needs three.
    assert rule.read("is a refurbished phone guaranteed?", returns, scores) == (0.0, 0.2, 1)
    assert rule.run("is a refurbished phone guaranteed?", returns, scores) is None
