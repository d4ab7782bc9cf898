"""Regularised zoo entries against their siblings: the verdict, the card section, the
re-rendering after a sibling moves, and the docs table (tests/test_zoo.py covers the
rest of the zoo)."""

import json
import re
from pathlib import Path

import pytest

from odezoo.zoo import compare, comparison_rows, refresh_comparisons
from odezoo.zoo._compare import (
    HEADING,
    TABLE_END,
    TABLE_START,
    comparison_section,
    describe_regularisation,
    docs_block,
    refresh_dependents,
)

ROOT = Path(__file__).resolve().parents[1]


def _metrics(metric, nfe, *, key="loss", time=100.0, train_nfe=50, sweep=()):
    return {
        "metrics": {key: metric, "nfe_forward": nfe},
        "eval_solver": {"solver": "Dopri5", "rtol": 1e-6, "atol": 1e-6},
        "training": {
            "total_time_s": time,
            "compile_time_s": 10.0,
            "step_time_median_s": 0.1,
            "nfe_forward_final": train_nfe,
            "nfe_backward_final": train_nfe - 2,
        },
        "tolerance_sweep": [
            {"rtol": tol, "atol": tol, key: m, "nfe_forward": n} for tol, m, n in sweep
        ],
    }


def _acc(metric, nfe):
    return _metrics(metric, nfe, key="accuracy")


@pytest.mark.parametrize(
    "ours, theirs, reached, within, fewer",
    [
        # NLL: 0.015 nat worse, 141 / 63 = 2.24x fewer NFE.
        (_metrics(2.437, 63), _metrics(2.422, 141), True, True, True),
        # NLL 0.03 nat worse: outside 0.02 nat, though 3x fewer NFE.
        (_metrics(2.452, 47), _metrics(2.422, 141), False, False, True),
        # Better NLL but only 141 / 75 = 1.88x fewer NFE.
        (_metrics(2.40, 75), _metrics(2.422, 141), False, True, False),
        # Exactly 2x is enough.
        (_metrics(3.55, 100), _metrics(3.544, 200), True, True, True),
        # Accuracy 0.4 points worse, 33 / 15 = 2.2x: reached.
        (_acc(0.9925, 15), _acc(0.9965, 33), True, True, True),
        # Accuracy 0.6 points worse: not reached.
        (_acc(0.9905, 15), _acc(0.9965, 33), False, False, True),
    ],
)  # fmt: skip
def test_compare_verdict(ours, theirs, reached, within, fewer):
    c = compare(ours, theirs)
    assert (c.reached, c.within, c.fewer) == (reached, within, fewer)
    assert c.nfe_ratio == pytest.approx(
        ours["metrics"]["nfe_forward"] / theirs["metrics"]["nfe_forward"]
    )


def test_accuracy_is_compared_where_both_have_one():
    ours = _metrics(0.99, 15, key="accuracy")
    ours["metrics"]["loss"] = 5.0  # a much worse loss does not matter: accuracy is the metric
    theirs = _metrics(0.992, 33, key="accuracy")
    theirs["metrics"]["loss"] = 0.01
    c = compare(ours, theirs)
    assert c.metric == "accuracy" and c.reached


def test_comparison_section_renders_both_entries_and_the_verdict():
    cfg = {"train": {"regularisation": {"kinetic": 0.01, "jacobian": 0.01, "taylor": 0.0}}}
    sweep_a = [(1e-3, 2.43, 39), (1e-6, 2.422, 141)]
    sweep_b = [(1e-3, 2.44, 21), (1e-6, 2.437, 63)]
    sib = _metrics(2.422, 141, time=565.0, train_nfe=123, sweep=sweep_a)
    ours = _metrics(2.437, 63, time=300.0, train_nfe=45, sweep=sweep_b)
    text = "\n".join(comparison_section("moons-rnode", cfg, ours, "moons", sib))
    assert text.startswith(HEADING)
    assert "RNODE (kinetic 0.01, jacobian 0.01)" in text
    assert "**reached**" in text and "not reached" not in text
    assert "| test forward NFE at rtol=1e-06, atol=1e-06 | 141 | 63 |" in text
    assert "| training forward / backward NFE at the end | 123 / 121 | 45 / 43 |" in text
    assert "| total training time | 565 s | 300 s |" in text
    assert "| compile time / median training step | 10 s / 0.1 s | 10 s / 0.1 s |" in text
    assert "| 0.001 | 2.43 | 39 | 2.44 | 21 |" in text
    assert "2.24x fewer" in text
    worse = _metrics(2.452, 63, sweep=sweep_b)
    text = "\n".join(comparison_section("moons-rnode", cfg, worse, "moons", sib))
    assert "**not reached**" in text and "outside the bound" in text
    missing = comparison_section("moons-rnode", cfg, ours, "moons", None)
    assert "no card yet" in "\n".join(missing)


def test_describe_regularisation():
    assert describe_regularisation(None) == "none"
    assert describe_regularisation({"taylor": 0.01, "taylor_order": 3, "steer": 0.5}) == (
        "TayNODE + STEER (taylor 0.01 (order 3), steer 0.5)"
    )


def _entry(root, name, metrics, sibling=None):
    d = root / name
    d.mkdir(parents=True)
    cfg = {"name": name, "model": {"type": "odenet"}, "train": {"steps": 1}}
    if sibling is not None:
        cfg["train"]["regularisation"] = {"kinetic": 0.1}
        cfg["meta"] = {"card": {"sibling": sibling}}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def test_cards_follow_a_rebuilt_sibling(tmp_path, monkeypatch):
    monkeypatch.setenv("ODEZOO_ZOO_PATH", str(tmp_path))
    _entry(tmp_path, "tst-plain", _metrics(0.99, 33, key="accuracy"))
    d = _entry(tmp_path, "tst-plain-rnode", _metrics(0.988, 15, key="accuracy"), "tst-plain")
    (d / "card.md").write_text("# tst-plain-rnode\n\n## Metrics\n\nx\n\n## Training\n\ny\n")
    assert refresh_comparisons(["tst-plain-rnode"]) == ["tst-plain-rnode"]
    card = (d / "card.md").read_text()
    assert card.index("## Metrics") < card.index(HEADING) < card.index("## Training")
    assert "**reached**" in card
    # The sibling is retrained and gets better: the card's verdict follows.
    (tmp_path / "tst-plain" / "metrics.json").write_text(
        json.dumps(_metrics(0.999, 40, key="accuracy"))
    )
    assert refresh_comparisons(["tst-plain-rnode"]) == ["tst-plain-rnode"]
    card = (d / "card.md").read_text()
    assert "**not reached**" in card and card.count(HEADING) == 1
    assert card.endswith("## Training\n\ny\n")
    assert refresh_comparisons(["tst-plain-rnode"]) == []  # nothing moved
    rows = comparison_rows(["tst-plain-rnode"])
    assert [(r["entry"], r["reached"]) for r in rows] == [
        ("tst-plain", None),
        ("tst-plain-rnode", False),
    ]
    (tmp_path / "tst-plain" / "metrics.json").write_text(
        json.dumps(_metrics(0.99, 33, key="accuracy"))
    )
    assert refresh_dependents("tst-plain") == ["tst-plain-rnode"]  # as build_entry does
    assert "**reached**" in (d / "card.md").read_text()


def _docs_table() -> str:
    text = (ROOT / "docs" / "regularisers-zoo.md").read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[start:end].strip() + "\n"


def test_docs_table_matches_the_entries_metrics():
    assert _docs_table() == docs_block(), (
        "docs/regularisers-zoo.md is out of date: run "
        "`odezoo zoo compare --docs docs/regularisers-zoo.md`"
    )
    rows = comparison_rows()
    # Every regularised entry with a card is in the table, with its own metrics.json.
    for r in rows:
        m = json.loads((ROOT / "zoo" / r["entry"] / "metrics.json").read_text())["metrics"]
        assert r["value"] == m[r["metric"]] and r["nfe"] == m["nfe_forward"]
    listed = set(re.findall(r"\[`([a-z0-9-]+)`\]", _docs_table()))
    assert listed == {r["entry"] for r in rows}


def test_shipped_regularised_cards_are_current():
    for r in comparison_rows():
        if r["reached"] is None:
            continue
        card = (ROOT / "zoo" / r["entry"] / "card.md").read_text()
        verdict = "**reached**" if r["reached"] else "**not reached**"
        assert HEADING in card and verdict in card, (
            f"{r['entry']}'s card does not match its sibling's metrics.json: run "
            "`odezoo zoo compare`"
        )
