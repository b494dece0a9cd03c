"""The one-screen summary that opens docs/benchmarks.md: the run's date and machine, and each headline
figure against its best peer. bench/report.py writes it from the run's figures; without a run's results
(bench/_work/results/all.json), ``python bench/summary.py docs/benchmarks.md`` writes it from the file's
own table of figures, so the summary always matches the detail below it.

Headline rule: one row per figure, against the strongest peer for it; of figures measured after
several training budgets only the longest budget; derived figures (GFLOP/s, Mpx per CPU second) are left
to the detail.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from report import Figure, fmt_ratio, table

SUMMARY_HEAD = "## Summary"
DERIVED = ("GFLOP/s", "per CPU second")  # restate a headline figure in other units: detail only
_BUDGET = re.compile(r"after (\d+(?:\.\d+)?) min")


def _budget(what: str) -> float:
    found = _BUDGET.search(what)
    return float(found.group(1)) if found else 0.0


def headline(figures: list[Figure]) -> list[Figure]:
    """Each figure against its strongest peer; the longest budget of a figure measured after several."""
    figures = [f for f in figures if f.ratio is not None and not any(d in f.what for d in DERIVED)]
    longest: dict = {}
    for f in figures:  # the measure without its budget, e.g. "pooled Dice (10 images ...)"
        key = (f.section, _BUDGET.sub("after N min", f.what))
        longest[key] = max(longest.get(key, 0.0), _budget(f.what))
    best: dict = {}
    for f in figures:
        if _budget(f.what) != longest[(f.section, _BUDGET.sub("after N min", f.what))]:
            continue
        key = (f.section, f.what, f.nbseg)
        worse = lambda a, b: a.ratio < b.ratio if a.higher_is_better else a.ratio > b.ratio  # noqa: E731
        if key not in best or worse(f, best[key]):  # the peer nbseg compares worst against is the strongest
            best[key] = f
    return list(best.values())


def summary_section(meta: dict, figures: list[Figure]) -> str:
    """The summary's markdown: date, machine, and the headline figures' table."""
    machine = meta.get("machine", {})
    rows = headline(figures)
    behind = [f for f in rows if f.behind]
    cores = f"{machine.get('physical_cores', '?')} cores"
    head = (f"Run of **{meta.get('date', '?')}** on {machine.get('cpu', '?')} ({cores}, "
            f"GPU: {machine.get('gpu') or 'none'}). Each headline figure against its strongest peer in the same "
            f"run: nbseg is ahead or level on {len(rows) - len(behind)} and behind (by more than 2 %) on "
            f"{len(behind)}. The detail follows.")
    body = [[f.section, f.what, f.nbseg, f.peer_name, f.peer, fmt_ratio(f.ratio),
             "higher" if f.higher_is_better else "lower", "**behind**" if f.behind else ""] for f in rows]
    columns = ["area", "figure", "nbseg", "best peer", "peer's figure", "nbseg / peer", "better is", ""]
    return "\n".join([SUMMARY_HEAD, "", head, "", table(columns, body) if body else "_No paired figures._", ""])


@dataclass
class WrittenFigure(Figure):
    """A figure read back from a written report: its ratio as printed (from the unrounded numbers)."""

    written_ratio: float | None = None
    written_behind: bool | None = None  # the "**behind**" mark, set from the unrounded ratio

    @property
    def ratio(self) -> float | None:
        return self.written_ratio if self.written_ratio is not None else Figure.ratio.fget(self)

    @property
    def behind(self) -> bool:
        return self.written_behind if self.written_behind is not None else Figure.behind.fget(self)


def _number(cell: str) -> float:
    return float(cell.replace(",", "").strip())


def figures_from_markdown(text: str) -> list[Figure]:
    """The figures of a written docs/benchmarks.md's "nbseg next to its peers" table."""
    section = text.split("## nbseg next to its peers", 1)[-1].split("\n## ", 1)[0]
    figures = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[0] in ("area", "---"):
            continue
        try:
            figures.append(WrittenFigure(cells[0], cells[1], _number(cells[2]), cells[3], _number(cells[4]),
                                         higher_is_better=cells[6] == "higher",
                                         written_ratio=_number(cells[5].rstrip("x")),
                                         written_behind=len(cells) > 7 and "behind" in cells[7]))
        except ValueError:
            continue  # a row without numbers (an error) has no place in the summary
    return figures


def meta_from_markdown(text: str) -> dict:
    """Date and machine from a written report's "Machine and versions" table."""
    rows = dict(re.findall(r"^\| (date|CPU|cores|GPU) \| (.*?) \|$", text, flags=re.M))
    return {"date": rows.get("date", "?"),
            "machine": {"cpu": rows.get("CPU", "?"), "physical_cores": rows.get("cores", "?").split(" ")[0],
                        "gpu": None if rows.get("GPU", "none") == "none" else rows["GPU"]}}


def with_summary(text: str, summary: str) -> str:
    """``text`` (a report) with ``summary`` in place of its summary, or before "## Machine and versions"."""
    if SUMMARY_HEAD in text:
        before, rest = text.split(SUMMARY_HEAD, 1)
        return before + summary + "\n## " + rest.split("\n## ", 1)[1]
    before, rest = text.split("## Machine and versions", 1)
    return before + summary + "\n## Machine and versions" + rest


def main(path: str) -> None:
    target = Path(path)
    text = target.read_text()
    target.write_text(with_summary(text, summary_section(meta_from_markdown(text), figures_from_markdown(text))))
    print(f"summary written into {target}")



if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks.md")
