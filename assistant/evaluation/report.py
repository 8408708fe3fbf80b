"""Write an eval run to a folder: per-question CSV, summary JSON, Markdown and self-contained HTML.

A report is a list of :class:`ReportSection` (text, tables, PNG figures), rendered the same way
to Markdown and HTML. To add a plot or table, build a section (``figure_png`` turns a
matplotlib Figure into PNG bytes) and pass it in ``extra_sections``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from assistant.evaluation.baseline import Comparison, results_csv_frame
from assistant.evaluation.gate import Bound
from assistant.evaluation.run import EvalRun
from assistant.evaluation.scoring import (
    METRICS,
    SIMULATED_METRICS,
    breakdown,
    clarify_count,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_GROUPS_PLOTTED = 25  # bars in a by-group plot; the table below it lists every group
COLORS = {"answered": "#2b6cb0", "refused": "#dd6b20", "right": "#38a169", "wrong": "#e53e3e"}


@dataclass(frozen=True)
class ReportFigure:
    """A PNG image with a title; ``name`` is its file stem in the Markdown report's folder."""

    name: str
    title: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class ReportTable:
    title: str
    frame: pd.DataFrame
    caption: str = ""
    max_rows: int | None = None  # longer tables are cut (with a note) in Markdown/HTML, not in CSVs


@dataclass(frozen=True)
class ReportSection:
    title: str
    text: str = ""  # plain text; paragraphs separated by blank lines
    figures: Sequence[ReportFigure] = field(default_factory=tuple)
    tables: Sequence[ReportTable] = field(default_factory=tuple)


def figure_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """Render a matplotlib Figure (made with ``matplotlib.figure.Figure``, no pyplot) to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def new_figure(width: float = 7.5, height: float = 3.6) -> Figure:
    """A pyplot-free Figure (Agg canvas), safe in servers and threads."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


# --- standard sections ----------------------------------------------------------------------


def summary_table(run: EvalRun) -> pd.DataFrame:
    """metric | value | gate | status (| baseline | change): the table the CLI prints too."""
    bounds = {b.metric: b for b in run.bounds}
    failing = {f.bound.metric for f in run.failures}
    base = run.comparison.baseline_summary if run.comparison else None
    rows = []
    for name in [*METRICS, *(k for k in SIMULATED_METRICS if k in run.summary)]:
        value = run.summary.get(name)
        b: Bound | None = bounds.get(name)
        row: dict[str, Any] = {
            "metric": name,
            "value": value,
            "gate": "" if b is None else f"{'>=' if b.kind == 'min' else '<='} {b.value:g}",
            "status": "" if b is None else ("FAIL" if name in failing else "ok"),
        }
        if base is not None:
            before = base.get(name)
            row["baseline"] = before
            row["change"] = value - before if value is not None and before is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_figure(groups: pd.DataFrame, by: str, *, name: str, title: str) -> ReportFigure:
    """Horizontal bars of accuracy per group, n on each bar.

    With more than MAX_GROUPS_PLOTTED groups, only the least accurate ones are drawn.
    """
    cut = len(groups) > MAX_GROUPS_PLOTTED
    shown = groups.sort_values(["accuracy", "n"], ascending=[True, False], kind="stable") if cut else groups
    shown = shown.head(MAX_GROUPS_PLOTTED).iloc[::-1]
    fig = new_figure(7.5, max(2.0, 0.32 * len(shown) + 1.0))
    ax = fig.add_subplot()
    ys = range(len(shown))  # positions, not labels: two long labels may shorten to the same text
    ax.barh(ys, shown["accuracy"], color=COLORS["answered"])
    ax.set_yticks(ys, [shorten(str(s), 45) for s in shown[by]])
    for y, (acc, n) in enumerate(zip(shown["accuracy"], shown["n"])):
        ax.text(min(acc, 1.0) + 0.01, y, f"{acc:.0%} of {n}", va="center", fontsize=8)
    ax.set_xlim(0, 1.18)
    ax.set_xlabel("accuracy (answer correct, or refusal where the FAQ has no answer)")
    ax.grid(axis="x", alpha=0.3)
    caption = f"The {len(shown)} least accurate of {len(groups)} groups (the CSV lists all)." if cut else ""
    return ReportFigure(name=name, title=title, png=figure_png(fig), caption=caption)


def confidence_figure(results: pd.DataFrame) -> ReportFigure:
    """Histogram of confidence for answered vs refused questions, split by right/wrong."""
    fig = new_figure(7.5, 3.4)
    axes = fig.subplots(1, 2, sharey=True)
    bins = [i / 20 for i in range(21)]
    answered = results["answered"].astype(bool)
    correct = results["correct"].astype(bool)
    for ax, mask, label in ((axes[0], answered, "answered"), (axes[1], ~answered, "refused")):
        sub = results[mask]
        ok = correct[mask]
        ax.hist(
            [sub.loc[ok, "confidence"], sub.loc[~ok, "confidence"]],
            bins=bins, stacked=True, color=[COLORS["right"], COLORS["wrong"]],
            label=["right", "wrong"],
        )  # fmt: skip
        ax.set_title(f"{label} ({int(mask.sum())})", color=COLORS[label])
        ax.set_xlim(0, 1)
        ax.set_xlabel("confidence")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("questions")
    axes[0].legend(loc="upper left", fontsize=8)
    caption = (
        "Confidence as the assistant reported it (Answer.confidence), answered questions left, refused right; "
        "green = the row was scored right, red = wrong. A good threshold separates red from green."
    )
    return ReportFigure(name="confidence", title="Confidence, answered vs refused", png=figure_png(fig), caption=caption)


def standard_sections(run: EvalRun) -> list[ReportSection]:
    """The built-in report: summary and gate, accuracy by section and category, confidence."""
    results, s = run.results, run.summary
    text = [
        f"{s['n']} questions ({s['n_answerable']} answerable, {s['n_unanswerable']} unanswerable); "
        f"{int(results['correct'].astype(bool).sum())} scored right."
    ]
    if run.bounds:
        text.append(
            "Gate: FAILED: " + "; ".join(str(f) for f in run.failures) if run.failures else "Gate: passed."
        )
    sections = [ReportSection("Summary", "\n\n".join(text), tables=(ReportTable("Metrics", summary_table(run)),))]
    by_section = breakdown(results, "section")
    sections.append(
        ReportSection(
            "Accuracy by section",
            "Grouped by the FAQ section that holds the expected answer "
            "(the section of the first relevant passage; unanswerable rows form their own group).",
            figures=(accuracy_figure(by_section, "section", name="accuracy_by_section", title="Accuracy by section"),),
            tables=(ReportTable("By section", by_section, max_rows=60),),
        )
    )
    if (results["category"].fillna("").astype(str) != "").any():
        by_category = breakdown(results, "category")
        sections.append(
            ReportSection(
                "Accuracy by category",
                "Grouped by the gold rows' `category` field (how the question is written).",
                figures=(accuracy_figure(by_category, "category", name="accuracy_by_category", title="Accuracy by category"),),
                tables=(ReportTable("By category", by_category),),
            )
        )
    if "conversation" in results and (results["conversation"] == "follow-up").any():
        sections.append(
            ReportSection(
                "Accuracy with and without history",
                "Follow-ups (gold rows with `history`, asked in their conversation) against single questions; "
                f"{clarify_count(results)} vague message(s) were answered with topics to choose from (`clarify`).",
                tables=(ReportTable("By conversation", breakdown(results, "conversation")),),
            )
        )
    sections.append(ReportSection("Confidence", figures=(confidence_figure(results),)))
    return sections


def comparison_section(comparison: Comparison) -> ReportSection:
    c = comparison
    text = (
        f"{len(c.regressions)} question(s) went from right to wrong, {len(c.fixes)} from wrong to right; "
        f"{len(c.added)} new, {len(c.removed)} no longer in the gold set."
    )
    return ReportSection(
        "Changes since the baseline",
        text,
        tables=(ReportTable("Right -> wrong", c.regressions), ReportTable("Wrong -> right", c.fixes)),
    )


def failures_section(results: pd.DataFrame) -> ReportSection:
    wrong = results[~results["correct"].astype(bool)]
    cols = ["id", "category", "section", "question", "expected", "got", "failure", "confidence"]
    return ReportSection(
        "Failing questions",
        f"{len(wrong)} of {len(results)} questions scored wrong." if len(wrong) else "Every question scored right.",
        tables=(ReportTable("Failing questions", wrong[cols].reset_index(drop=True), max_rows=200),) if len(wrong) else (),
    )


def build_sections(run: EvalRun, extra_sections: Sequence[ReportSection] = ()) -> list[ReportSection]:
    """Standard sections, then a baseline comparison, then ``extra_sections``, then failing questions."""
    sections = standard_sections(run)
    if run.comparison is not None:
        sections.append(comparison_section(run.comparison))
    sections.extend(extra_sections)
    sections.append(failures_section(run.results))
    return sections


# --- rendering ------------------------------------------------------------------------------


def render_markdown(title: str, meta: dict[str, str], sections: Sequence[ReportSection], *, figure_dir: str) -> str:
    """Markdown with figures linked as ``{figure_dir}/{name}.png`` (write them there)."""
    out = [f"# {title}", ""]
    out += [f"- **{k}**: {v}" for k, v in meta.items()]
    for sec in sections:
        out += ["", f"## {sec.title}", ""]
        if sec.text:
            out += [sec.text, ""]
        for fig in sec.figures:
            out += [f"![{fig.title}]({figure_dir}/{fig.name}.png)", ""]
            if fig.caption:
                out += [f"*{fig.caption}*", ""]
        for table in sec.tables:
            frame, note = _cut(table)
            out += [f"**{table.title}**", ""]
            if table.caption:
                out += [table.caption, ""]
            out += [_markdown_table(frame) if len(frame) else "(none)", ""]
            if note:
                out += [note, ""]
    return "\n".join(out).rstrip() + "\n"


def render_html(title: str, meta: dict[str, str], sections: Sequence[ReportSection]) -> str:
    """One self-contained HTML page: figures are embedded as base64 PNG data URIs."""
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", "<dl class='meta'>"]
    body += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in meta.items()]
    body.append("</dl>")
    nav = " · ".join(f"<a href='#{_anchor(s.title)}'>{e(s.title)}</a>" for s in sections)
    body.append(f"<nav>{nav}</nav>")
    for sec in sections:
        body.append(f"<section id='{_anchor(sec.title)}'><h2>{e(sec.title)}</h2>")
        for para in filter(None, sec.text.split("\n\n")):
            cls = " class='fail'" if "FAILED" in para else ""
            body.append(f"<p{cls}>{e(para)}</p>")
        for fig in sec.figures:
            data = base64.b64encode(fig.png).decode("ascii")
            body.append(
                f"<figure><img alt='{e(fig.title)}' src='data:image/png;base64,{data}'>"
                + (f"<figcaption>{e(fig.caption)}</figcaption>" if fig.caption else "")
                + "</figure>"
            )
        for table in sec.tables:
            frame, note = _cut(table)
            body.append(f"<h3>{e(table.title)}</h3>")
            if table.caption:
                body.append(f"<p>{e(table.caption)}</p>")
            if len(frame):
                body.append(_html_table(frame))
            else:
                body.append("<p>(none)</p>")
            if note:
                body.append(f"<p class='note'>{e(note)}</p>")
        body.append("</section>")
    return _PAGE.format(title=e(title), body="\n".join(body))


def write_report(
    out_dir: str | Path,
    run: EvalRun,
    *,
    meta: dict[str, str] | None = None,
    title: str = "Assistant evaluation",
    extra_sections: Sequence[ReportSection] = (),
) -> dict[str, Path]:
    """Write results.csv, summary.json, by_section.csv, by_category.csv, report.md (+ figures/) and report.html
    (and simulated.csv when the run has the leave-out simulation).

    Returns the written paths by name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    sections = build_sections(run, extra_sections)
    paths = {
        "results": out / "results.csv",
        "summary": out / "summary.json",
        "by_section": out / "by_section.csv",
        "by_category": out / "by_category.csv",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    results_csv_frame(run.results).to_csv(paths["results"], index=False)
    write_summary_json(paths["summary"], run.summary)
    breakdown(run.results, "section").to_csv(paths["by_section"], index=False)
    breakdown(run.results, "category").to_csv(paths["by_category"], index=False)
    if run.simulated is not None:
        paths["simulated"] = out / "simulated.csv"
        frame = run.simulated.assign(left_out=run.simulated["left_out"].map("|".join))
        results_csv_frame(frame).to_csv(paths["simulated"], index=False)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    for sec in sections:
        for fig in sec.figures:
            (figures / f"{fig.name}.png").write_bytes(fig.png)
    paths["markdown"].write_text(render_markdown(title, meta, sections, figure_dir="figures"), encoding="utf-8")
    paths["html"].write_text(render_html(title, meta, sections), encoding="utf-8")
    return paths


def write_summary_json(path: str | Path, summary: dict[str, Any]) -> None:
    """The summary object as JSON (undefined metrics as null)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    Path(path).write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")


def _cut(table: ReportTable) -> tuple[pd.DataFrame, str]:
    if table.max_rows is not None and len(table.frame) > table.max_rows:
        return table.frame.head(table.max_rows), f"First {table.max_rows} of {len(table.frame)} rows (see the CSV files)."
    return table.frame, ""


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v: Any) -> Any:
        if isinstance(v, str):
            return " ".join(v.split()).replace("|", "\\|")
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v

    return frame.map(cell).to_markdown(index=False, floatfmt=".3f")


def _html_table(frame: pd.DataFrame) -> str:
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    return frame.to_html(index=False, escape=True, na_rep="", formatters={c: fmt for c in frame.columns}, border=0)


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #1a202c; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #cbd5e0; padding-bottom: .2em; margin-top: 1.8em; }}
dl.meta {{ display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }} dt {{ font-weight: 600; }} dd {{ margin: 0; }}
nav {{ margin: 1em 0; }} nav a {{ color: #2b6cb0; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }}
th, td {{ border: 1px solid #e2e8f0; padding: .3em .6em; text-align: left; vertical-align: top; max-width: 420px; overflow-wrap: anywhere; }}
th {{ background: #edf2f7; white-space: nowrap; }} td:first-child {{ white-space: nowrap; }} tr:nth-child(even) td {{ background: #f7fafc; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }} figcaption, .note {{ color: #4a5568; font-size: 13px; }}
.fail {{ color: #c53030; font-weight: 600; }}
</style></head>
<body>
{body}
</body></html>
"""
