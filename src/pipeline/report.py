"""Every source experiment against its note's figures and its bar, from what the stages wrote.

usage: python -m pipeline.report [<override> ...]

    python -m pipeline.report          # every experiment in params.yaml; never trains
    dvc repro report                   # the same, as the pipeline's last stage

Reads, for every experiment: metrics/<experiment>.json (evaluate), models/<experiment>/runs.json
(train) and, when the tune stage ran, tuning/<experiment>/best_params.json. A missing metrics or
runs file stops it, naming the stage to run, before anything is written.

Writes reports/report.md, a self-contained reports/report.html (figures embedded) and
reports/figures/<experiment>.png. The table has one row per experiment, variant and reported
metric: the note's figure, ours (mean ± std where folds or seeds ran), the difference, the tuned
result, the training wall time, the MLflow run id and, on the experiment's first row, its bar as
evaluate checked it (pipeline.bars): met, not met with the rules missed and their figures, not
checked (a variant that did not run), or – (no bar).

Set per experiment in conf/experiments/<name>.yaml: ``report.metrics`` (the first listed that a
variant measured, plus any other listed one it measured; without it, its first test metric) and
``errata``, a text on where the note's figure misleads, whose ``{variants[v][metric]}`` and
``{baseline[metric]}`` fields are filled from the metrics file, so its numbers are the measured ones.
"""

from __future__ import annotations

import base64
import html
import io
import math
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from pipeline import cli, layout
from pipeline.config import load
from pipeline.errors import MissingInput

REPORT_DIR = layout.REPORTS
TITLE = "Source experiments: the notes' figures against ours"


@dataclass
class Row:
    experiment: str
    variant: str
    metric: str
    note: float | None  # the source note's figure
    ours: float | None  # None for a variant only the tune stage trains
    std: float | None
    tuned: float | None
    seconds: float | None
    run_id: str | None

    @property
    def diff(self) -> float | None:
        measured = self.ours if self.ours is not None else self.tuned
        return None if self.note is None or measured is None else measured - self.note


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def shown_metrics(entry: Mapping[str, Any], wanted: list[str]) -> list[str]:
    """The listed metrics this variant measured; without a list, its first test metric."""
    if wanted:
        return [m for m in wanted if _number(entry.get(m)) is not None]
    return [k for k in entry if k.startswith("test_") and _number(entry[k]) is not None][:1]


def experiment_rows(
    name: str,
    exp_cfg: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tuned: Mapping[str, Any] | None,
    runs: Mapping[str, str],
) -> list[Row]:
    wanted = list((exp_cfg.get("report") or {}).get("metrics") or [])
    tune_variant = (exp_cfg.get("tune") or {}).get("variant")
    rows = []
    for variant, entry in metrics["variants"].items():
        for metric in shown_metrics(entry, wanted):
            std_key = metric[: -len("_mean")] + "_std" if metric.endswith("_mean") else None
            tuned_value = None
            if tuned and variant == tune_variant:
                # the best trial's score on the same split: its test score, or the tuned metric
                tuned_value = _number((tuned.get("best_test") or {}).get(metric))
                if tuned_value is None and tuned.get("metric") == metric:
                    tuned_value = _number(tuned.get("best_value"))
            rows.append(
                Row(
                    experiment=name,
                    variant=variant,
                    metric=metric,
                    note=_number(entry.get(f"note_{metric}")),
                    ours=float(entry[metric]),
                    std=_number(entry.get(std_key)) if std_key else None,
                    tuned=tuned_value,
                    seconds=_number(entry.get("train_seconds")),
                    run_id=runs.get(variant),
                )
            )
    if tuned and tune_variant and tune_variant not in metrics["variants"]:
        # a tune-only variant (wide & deep's `search`): the train stage never ran it, so the
        # tuned test score is its only figure, beside the note's figure for the same metric
        notes = {m: _number(e.get(f"note_{m}")) for e in metrics["variants"].values() for m in wanted}
        for metric in wanted:
            value = _number((tuned.get("best_test") or {}).get(metric))
            if value is not None:
                rows.append(
                    Row(
                        experiment=name,
                        variant=f"{tune_variant} (tune only)",
                        metric=metric,
                        note=notes.get(metric),
                        ours=None,
                        std=None,
                        tuned=value,
                        seconds=None,
                        run_id=None,
                    )
                )
    return rows


def errata_text(template: str, metrics: Mapping[str, Any]) -> str:
    """The experiment's errata with its measured numbers filled in."""
    try:
        return template.format(**metrics)
    except (KeyError, IndexError, ValueError) as error:
        return f"{template}\n\n(the report could not fill in {error}: a field names no measurement)"


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000:  # counts (parameters, seconds): whole numbers, not 5.37e+04
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) >= 100 else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def table(rows: list[Row], bars: Mapping[str, str] | None = None) -> list[list[str]]:
    """The cells, header first; an experiment's bar (``bars``) stands on its first row."""
    header = [
        "experiment",
        "variant",
        "metric",
        "note",
        "ours",
        "diff",
        "tuned",
        "train s",
        "MLflow run",
        "bar",
    ]
    body, shown = [], set()
    for r in rows:
        bar = "" if r.experiment in shown else (bars or {}).get(r.experiment, "–")
        shown.add(r.experiment)
        body.append(
            [
                r.experiment,
                r.variant,
                r.metric,
                _fmt(r.note),
                _fmt(r.ours) + (f" ± {_fmt(r.std)}" if r.std is not None else ""),
                ("+" if (r.diff or 0) > 0 else "") + _fmt(r.diff) if r.diff is not None else "–",
                _fmt(r.tuned),
                _fmt(r.seconds, 3),
                (r.run_id or "–")[:12],
                bar,
            ]
        )
    return [header, *body]


def markdown_table(cells: list[list[str]]) -> str:
    header, *body = cells
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def comparison_figure(name: str, rows: list[Row]):
    """Ours (with std bars) beside the note's figure and the tuned result, per variant."""
    from pipeline.plots import plt

    figure, axis = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 3.4))
    labels = [f"{r.variant}\n{r.metric}" for r in rows]
    x = range(len(rows))
    width = 0.27
    axis.bar([i - width for i in x], [r.note or 0 for r in rows], width, label="note", color="#bbbbbb")
    axis.bar(
        list(x),
        [r.ours or 0 for r in rows],
        width,
        yerr=[r.std or 0 for r in rows],
        label="ours",
        color="#1f77b4",
        capsize=3,
    )
    axis.bar([i + width for i in x], [r.tuned or 0 for r in rows], width, label="tuned", color="#2ca02c")
    values = [v for r in rows for v in (r.note, r.ours, r.tuned) if v]
    if values and min(values) > 0 and max(values) <= 1:  # accuracies: zoom where they differ
        axis.set_ylim(max(0.0, min(values) - 0.05), 1.0)
    axis.set_xticks(list(x), labels, fontsize=7, rotation=30, ha="right")
    axis.set_title(name)
    axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _png(figure) -> bytes:
    from pipeline.plots import plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def render_html(
    title: str, intro: str, cells: list[list[str]], errata: dict[str, str], images: dict[str, bytes]
) -> str:
    header, *body = cells
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    notes = "".join(f"<h3>{html.escape(k)}</h3><p>{html.escape(v)}</p>" for k, v in errata.items())
    figures = "".join(
        f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(n)}</figcaption></figure>'
        for n, png in images.items()
    )
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left}tr:nth-child(even){background:#f6f6f6}"
        "img{max-width:100%}figure{display:inline-block;margin:1em}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(intro)}</p><table><tr>{head}</tr>{rows}</table>"
        f"<h2>Errata: where a note's figure misleads</h2>{notes}<h2>Figures</h2>{figures}"
        "</body></html>"
    )


def read_inputs(cfg) -> dict[str, dict[str, Any]]:
    """metrics, tuning result and run ids of every experiment; all missing files named at once."""
    from pipeline.io import read_json

    inputs, missing = {}, []
    for name in cfg.experiments:
        paths = {
            "metrics": layout.metrics(name),
            "runs": layout.run_record(name),
            "tuned": layout.best_params(name),
        }
        for key in ("metrics", "runs"):
            if not paths[key].is_file():
                missing.append(
                    f"{paths[key]} (run: dvc repro {'evaluate' if key == 'metrics' else 'train'}@{name})"
                )
        if all(paths[k].is_file() for k in ("metrics", "runs")):
            inputs[name] = {
                "metrics": read_json(paths["metrics"]),
                "runs": read_json(paths["runs"])["variants"],
                # the tune stage is optional for the report: no study, no tuned column
                "tuned": read_json(paths["tuned"]) if paths["tuned"].is_file() else None,
            }
    if missing:
        raise MissingInput("The report reads what the stages wrote; missing:\n  " + "\n  ".join(missing))
    return inputs


@dataclass
class Sections:
    """What the report shows, gathered from the stages' outputs."""

    rows: list[Row]
    bars: dict[str, str]  # experiment -> met / not met: <rules> / not checked / –
    errata: dict[str, str]  # experiment -> its errata, numbers filled in
    images: dict[str, bytes]  # file name -> PNG of the experiment's comparison figure


def gather(cfg, inputs: Mapping[str, Mapping[str, Any]]) -> Sections:
    """Rows, bar, errata and comparison figure of every experiment read."""
    from omegaconf import OmegaConf

    from pipeline import bars

    sections = Sections(rows=[], bars={}, errata={}, images={})
    for name, found in inputs.items():
        exp_cfg = OmegaConf.to_container(cfg.experiments[name], resolve=True)
        rows = experiment_rows(name, exp_cfg, found["metrics"], found["tuned"], found["runs"])
        sections.rows += rows
        sections.bars[name] = bars.summary(found["metrics"].get("bar"))
        if exp_cfg.get("errata"):
            sections.errata[name] = errata_text(str(exp_cfg["errata"]).strip(), found["metrics"])
        if rows:
            sections.images[f"{name}.png"] = _png(comparison_figure(name, rows))
    return sections


def intro_text(commit: str) -> str:
    return (
        f"Rendered by `python -m pipeline.report` from metrics/, tuning/ and models/ at git "
        f"commit {commit}. 'ours' is the variant's score (mean ± std over folds or seeds "
        "where several ran); 'tuned' is the tune stage's best trial on the same split; "
        "'train s' the training wall time of the variant; MLflow run: the variant's train run; "
        "'bar' the experiment's bar (conf/experiments/<name>.yaml) as the evaluate stage checked it."
    )


def render_markdown(
    title: str, intro: str, cells: list[list[str]], errata: dict[str, str], images: dict[str, bytes]
) -> str:
    return (
        "\n\n".join(
            [
                f"# {title}",
                intro,
                markdown_table(cells),
                "## Errata: where a note's figure misleads",
                *[f"**{name}.** {text}" for name, text in errata.items()],
                "## Figures",
                *[f"![{n}](figures/{n})" for n in images],
            ]
        )
        + "\n"
    )


def write_report(sections: Sections, commit: str) -> None:
    """reports/report.md, reports/report.html and reports/figures/, all at once or none."""
    from pipeline.io import atomic_dir

    cells, intro = table(sections.rows, sections.bars), intro_text(commit)
    with atomic_dir(REPORT_DIR) as out:
        (out / "figures").mkdir()
        for file_name, png in sections.images.items():
            (out / "figures" / file_name).write_bytes(png)
        (out / "report.md").write_text(render_markdown(TITLE, intro, cells, sections.errata, sections.images))
        (out / "report.html").write_text(render_html(TITLE, intro, cells, sections.errata, sections.images))


def main(args: list[str]) -> int:
    cfg = load(args)  # a bad override fails here, before MLflow is imported
    from pipeline.tracking import git_commit

    inputs = read_inputs(cfg)
    sections = gather(cfg, inputs)
    write_report(sections, git_commit())
    cli.progress(
        f"report: {len(sections.rows)} rows for {len(inputs)} experiments -> "
        f"{REPORT_DIR}/report.md, {REPORT_DIR}/report.html"
    )
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
