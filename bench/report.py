"""Markdown writer for docs/benchmarks.md: machine, versions, every figure next to its peer's figure
from the same run with the ratio, a "where nbseg is behind" reading, and hand-written notes that
regeneration keeps (between NOTES_START and NOTES_END).

Input is the dict that ``bench/run_all.py`` collects::

    {"meta": {"date", "quick", "threads", "machine": {...}, "versions": {...}, "seconds"},
     "benchmarks": {name: {"status": "ok"|"error"|"skipped", "seconds", "command", "result", "error", "note"}}}

Each benchmark has a section writer below; one that cannot read its result (say a script changed its
JSON) falls back to the raw JSON, so a report is always written.
"""
from __future__ import annotations

import json
import math
import traceback
from dataclasses import dataclass

NOTES_START = "<!-- hand-written notes: start (kept when the file is regenerated) -->"
NOTES_END = "<!-- hand-written notes: end -->"
DEFAULT_NOTES = "_(none yet: write notes here; `python bench/run_all.py` keeps this part)_"

# The order of the sections in the report; names are the keys of results["benchmarks"].
ORDER = ("train_throughput", "quality", "predict", "predict_volume", "lucchi3d", "planned", "labels", "teaching_run", "import_time", "gpu")
TITLES = {
    "train_throughput": "Training throughput (CPU)",
    "quality": "Time to quality: DSB2018 fluorescence nuclei",
    "predict": "Inference throughput (crop, full TTA)",
    "predict_volume": "Inference memory on the whole Lucchi++ volume",
    "lucchi3d": "3D: Lucchi++ mitochondria",
    "planned": "Defaults chosen by the data: the training plan on other kinds of data",
    "labels": "Label tools: ground truth from several experts, QC",
    "teaching_run": "Teaching run: the notebooks in quick mode",
    "import_time": "Import time",
    "gpu": "GPU",
}


@dataclass
class Figure:
    """One nbseg figure next to a peer's figure from the same run."""

    section: str
    what: str
    nbseg: float
    peer_name: str
    peer: float
    unit: str = ""
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        """nbseg / peer (nan where undefined)."""
        if not _finite(self.nbseg) or not _finite(self.peer) or self.peer == 0:
            return None
        return self.nbseg / self.peer

    @property
    def behind(self) -> bool:
        """True where nbseg does worse than the peer by more than 2 %."""
        r = self.ratio
        if r is None:
            return False
        return r < 0.98 if self.higher_is_better else r > 1.02


# ------------------------------------------------------------------ formatting helpers


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value, digits: int = 3) -> str:
    """Numbers for tables: ``digits`` significant-ish places, '—' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def fmt_ratio(ratio) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def table(header, rows) -> str:
    """A markdown table; cells are formatted with :func:`fmt` unless already strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [c if isinstance(c, str) else fmt(c) for c in row]
        lines.append("| " + " | ".join(cell.replace("|", "/").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ notes kept across regenerations


def extract_notes(existing: str | None) -> str:
    """The hand-written part of an earlier report (between the markers), or the placeholder."""
    if not existing or NOTES_START not in existing or NOTES_END not in existing:
        return DEFAULT_NOTES
    inner = existing.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0].strip("\n")
    return inner if inner.strip() else DEFAULT_NOTES


# ------------------------------------------------------------------ sections


def section_train_throughput(result) -> tuple[str, list[Figure]]:
    """bench/train_throughput.py: a list of {spatial_dims, size, patch, batch, rows}."""
    parts, figures = [], []
    for r in result:
        rows = r["rows"]
        bare = rows.get("bare 3x3 conv", {}).get("gflops")
        monai = rows.get("MONAI BasicUNet", {})
        body = []
        for name in ("nbseg UNet", "MONAI BasicUNet"):
            if name not in rows:
                continue
            x = rows[name]
            body.append([name, x.get("params_m"), x.get("gflop_per_step"), x.get("patches_per_s"), x.get("gflops"),
                         fmt_ratio(x["gflops"] / bare if bare else None).replace("x", "") if bare else "—",
                         fmt_ratio(x["patches_per_s"] / monai["patches_per_s"]) if monai else "—"])
        body.append(["bare 3x3 conv (fwd+bwd)", "", "", "", bare, "1.00", ""])
        label = f"{r['spatial_dims']}D, size {r['size']}, patch {'x'.join(map(str, r['patch']))}, batch {r['batch']}"
        parts.append(f"**{label}**\n\n" + table(
            ["model", "params (M)", "GFLOP/step", "patches/s", "GFLOP/s", "share of bare conv", "vs MONAI"], body))
        if "nbseg UNet" in rows and monai:
            figures.append(Figure("training", f"training patches/s, {label}", rows["nbseg UNet"]["patches_per_s"],
                                  "MONAI BasicUNet", monai["patches_per_s"], "patches/s"))
            figures.append(Figure("training", f"achieved GFLOP/s, {label}", rows["nbseg UNet"]["gflops"],
                                  "MONAI BasicUNet", monai["gflops"], "GFLOP/s"))
    intro = ("Training steps (AdamW, Dice+CE) on random data, same patch, batch, loss and threads for each model; "
             "GFLOP/s counts the convolutions (forward + backward = 3x forward). The bare convolution is the "
             "ceiling this CPU reaches on the U-Net's typical layer.")
    return intro + "\n\n" + "\n\n".join(parts), figures


DISPLAY = {"monai": "MONAI", "deepflash2": "deepflash2", "otsu": "Otsu + connected components"}


def display(method: str) -> str:
    return DISPLAY.get(method, method)


QUALITY_METRICS = (("dice", "pooled Dice"), ("f1@0.5", "F1@0.5"), ("map", "mAP 0.5:0.95"))


def section_quality(result) -> tuple[str, list[Figure]]:
    """bench/quality.py: {rows: [{method, budget_min, dice, f1@0.5, map, ...}], ...}."""
    rows = result["rows"]
    body = []
    for r in rows:
        if r.get("status", "ok") != "ok":
            body.append([display(r["method"]), _budget(r), "—", "—", "—", "—", "—", "error: " + str(r.get("error", ""))[:200]])
            continue
        body.append([display(r["method"]), _budget(r), r.get("dice"), r.get("f1@0.5"), r.get("map"), r.get("train_s"),
                     r.get("predict_s"), r.get("note", "")])
    text = [f"Held-back test set: {result.get('test_images', '?')} DSB2018 fluorescence images "
            f"(seeded split of bench/datasets.py; {result.get('train_images', '?')} training images). "
            f"Every method ran as its own process with {result.get('threads', '?')} threads and was scored by the same "
            "code (`nbseg.evaluation`: Dice pooled over pixels, F1 at IoU 0.5 pooled over objects, mean per-image "
            "DSB 2018 average precision over IoU 0.5:0.95).",
            "",
            table(["method", "budget (min)", "pooled Dice", "F1@0.5", "mAP 0.5:0.95", "train s", "predict s", "notes"],
                  body)]
    text += _df2_subset_table(result)
    if result.get("setup"):
        text += ["", "Set-up: " + "; ".join(f"{k}: {v}" for k, v in result["setup"].items())]
    figures = []
    by = {(r["method"], r.get("budget_min")): r for r in rows if r.get("status", "ok") == "ok"}
    for (method, budget), r in sorted(by.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or 0)):
        if method == "nbseg" or budget is None:
            continue
        ours = by.get(("nbseg", budget))
        if not ours:
            continue
        paired = method == "deepflash2" and ours.get("df2_subset")
        if paired:  # deepflash2 predicted only a subset: compare on those images
            ours = ours["df2_subset"]
        where = f" ({r.get('images')} images deepflash2 predicted)" if paired else ""
        for key, label in QUALITY_METRICS:
            if _finite(ours.get(key)) and _finite(r.get(key)):
                figures.append(Figure("quality", f"{label} after {budget:g} min{where}", ours[key], display(method),
                                      r[key]))
    floor = next((r for r in rows if r.get("budget_min") in (None, 0) and r.get("status", "ok") == "ok"), None)
    if floor:
        for budget in sorted({b for m, b in by if m == "nbseg" and b}):
            ours = by[("nbseg", budget)]
            if _finite(ours.get("map")) and _finite(floor.get("map")):
                figures.append(Figure("quality", f"mAP 0.5:0.95 after {budget:g} min", ours["map"],
                                      display(floor["method"]), floor["map"]))
    return "\n".join(text), figures


def _df2_subset_table(result) -> list[str]:
    """The paired table on the test images deepflash2 predicted (its CPU prediction is slow)."""
    rows = [r for r in result["rows"] if r.get("status", "ok") == "ok"]
    df2 = [r for r in rows if r["method"] == "deepflash2"]
    if not result.get("df2_test_images") or not df2:
        return []
    body = [[display(r["method"]), _budget(r), *(r[k] for k, _ in QUALITY_METRICS)] for r in df2]
    body += [[display(r["method"]), _budget(r), *(r["df2_subset"].get(k) for k, _ in QUALITY_METRICS)]
             for r in rows if r.get("df2_subset")]
    per_image = [r["predict_s"] / r["images"] for r in df2 if r.get("predict_s") and r.get("images")]
    speed = f" ({max(per_image):.0f} s per image here)" if per_image else ""
    return ["", f"deepflash2's CPU prediction (its default tiles and flip TTA) is slow{speed}, so it "
                f"predicted the first {result['df2_test_images']} test images (sorted names); every method scored "
                "on those same images:", "",
            table(["method", "budget (min)", *(label for _, label in QUALITY_METRICS)], body)]


def _budget(row):
    b = row.get("budget_min")
    return "—" if b in (None, 0) else f"{b:g}"


def section_predict(result) -> tuple[str, list[Figure]]:
    """bench/predict.py: written by another script; shows its markdown (or its rows) and picks the
    nbseg-vs-MONAI Mpx/s and peak-RSS pairs where it can find them."""
    figures = []
    if isinstance(result, dict) and isinstance(result.get("markdown"), str):
        text = result["markdown"]
    else:
        text = generic_section(result)
    for item in _walk_rows(result):
        nb, mo = _pair(item, "mpx_per_s")
        if nb is not None:
            figures.append(Figure("inference", f"inference Mpx/s{_label(item)}", nb, "MONAI sliding_window", mo, "Mpx/s"))
        nb, mo = _pair(item, "mpx_per_cpu_s")
        if nb is not None:
            figures.append(Figure("inference", f"inference Mpx per CPU second{_label(item)}", nb, "MONAI sliding_window",
                                  mo, "Mpx/CPU s"))
        nb, mo = _pair(item, "peak_rss_mb")
        if nb is not None:
            figures.append(Figure("inference", f"peak RSS (MB){_label(item)}", nb, "MONAI sliding_window", mo, "MB",
                                  higher_is_better=False))
    if isinstance(result, dict) and isinstance(result.get("limit"), dict) and isinstance(result.get("nbseg"), dict):
        ours, limit = result["nbseg"].get("mpx_per_s"), result["limit"].get("limit_mpx_per_s")
        if _finite(ours) and _finite(limit):
            figures.append(Figure("inference", "inference Mpx/s against the physical limit of its tiles", ours,
                                  "physical limit", limit, "Mpx/s"))
    return text, figures


def _walk_rows(result):
    """Dicts anywhere in a JSON result (depth-first)."""
    if isinstance(result, dict):
        yield result
        for value in result.values():
            yield from _walk_rows(value)
    elif isinstance(result, list):
        for value in result:
            yield from _walk_rows(value)


def _pair(item: dict, key: str):
    """(nbseg, monai) values of ``key`` in a dict holding both as sub-dicts {'nbseg': {...}, 'monai': {...}}."""
    ours = next((v for k, v in item.items() if isinstance(v, dict) and k.lower().startswith("nbseg")), None)
    theirs = next((v for k, v in item.items() if isinstance(v, dict) and k.lower().startswith("monai")), None)
    if ours and theirs and _finite(ours.get(key)) and _finite(theirs.get(key)):
        return ours[key], theirs[key]
    return None, None


def _label(item: dict) -> str:
    bits = [f"{k} {item[k]}" for k in ("tta", "dataset", "data", "case") if isinstance(item.get(k), (str, int))]
    return f" ({', '.join(bits)})" if bits else ""


PLANNED_SCORES = {"lucchi": ("iou", "foreground IoU"), "bbbc050": ("f1@0.5", "F1@0.5"),
                  "isbi": ("pixel_error", "pixel error"),
                  "isbi-stack": ("pixel_error", "pixel error"), "epfl": ("mean_fg_iou", "mean foreground IoU")}


def section_planned(result) -> tuple[str, list[Figure]]:
    """bench/planned.py: {threads, tta, rows: [{case, variant, budget_min, plan, val_dice, <scores>, ...}]}."""
    body = []
    for r in sorted(result["rows"], key=lambda r: (r["case"], r["variant"], r["budget_min"])):
        key, name = PLANNED_SCORES.get(r["case"], ("dice", "Dice"))
        if r.get("status", "ok") != "ok":
            body.append([r["case"], r["variant"], f"{r['budget_min']:g}", "—", "—", "—",
                         "error: " + str(r.get("error"))[:160]])
            continue
        extra = [f"{k.replace('_', ' ')} {fmt(r[k])}" for k in ("dice", "min_class_iou", "challenge_pixel_error")
                 if k in r and k != key]
        body.append([r["case"], r["variant"], f"{r['budget_min']:g}", f"{name} {fmt(r.get(key))}", r.get("val_dice"),
                     r.get("plan", "").removeprefix("plan: "), ", ".join(extra)])
    text = (f"`nbseg train` with its defaults (the plan it prints) on a fixed split of each data set, "
            f"{result.get('threads', '?')} threads, TTA {result.get('tta', 'none')}; the score is on the held-back "
            "part, beside the best validation Dice training reported. Variant `3d` forces the 3D network "
            "(`--model-dims 3`).\n\n"
            + table(["data", "variant", "minutes", "held-back score", "reported val Dice", "plan", "also"], body))
    return text, []


def section_lucchi3d(result) -> tuple[str, list[Figure]]:
    """bench/lucchi3d.py: {budget_min, train_shape, val_shape, bar, rows: [{method, iou, dice, train_s, ...}]}."""
    body = []
    for r in result["rows"]:
        if r.get("status", "ok") != "ok":
            body.append([display(r["method"]), "—", "—", "—", "—", "error: " + str(r.get("error", ""))[:200]])
        else:
            body.append([display(r["method"]), r.get("iou"), r.get("dice"), r.get("train_s"), r.get("predict_s"),
                         r.get("note", "")])
    text = (f"Lucchi++ volume split by z: training {result.get('train_shape')}, validation {result.get('val_shape')} "
            f"(ZYX). {result.get('budget_min', 0):g} min of CPU training each, {result.get('threads', '?')} threads; "
            f"foreground IoU over the whole validation part, TTA {result.get('tta', 'flips')}. "
            f"The bar: MONAI's 3D U-Net reaches IoU {fmt(result.get('bar'))} there after 10 CPU minutes.\n\n"
            + table(["method", "IoU", "Dice", "train s", "predict s", "notes"], body))
    ok = {r["method"]: r for r in result["rows"] if r.get("status", "ok") == "ok"}
    figures = []
    ours = ok.get("nbseg")
    for name, r in ok.items():
        if name != "nbseg" and ours and _finite(ours.get("iou")) and _finite(r.get("iou")):
            figures.append(Figure("3D", f"Lucchi++ validation IoU after {result.get('budget_min', 0):g} min",
                                  ours["iou"], display(name), r["iou"]))
    return text, figures


def section_labels(result) -> tuple[str, list[Figure]]:
    """bench/labels.py: {ground_truth: [...], qc_dsb2018: {...}}."""
    gt = result.get("ground_truth", [])
    text = ["Ground truth from 10 experts (BU-BIL ds1), mean Dice against the GoldStandard:", "",
            table(["experts", "method", "mean Dice", "min", "max"],
                  [[r["experts"], r["method"], r["mean_dice"], r["min_dice"], r["max_dice"]] for r in gt])]
    figures = []
    for experts in sorted({r["experts"] for r in gt}):
        rows = [r for r in gt if r["experts"] == experts]
        # majority vote is nbseg's default (nbseg.labels.consensus); STAPLE over the marked pixels at p > 0.5
        # the alternative it is measured against (results of runs when STAPLE was the default read the same)
        staple = next((r for r in rows if r["method"].startswith("STAPLE, pixels any expert marked, p > 0.5")), None)
        majority = next((r for r in rows if r["method"].startswith("majority")), None)
        if staple and majority:
            figures.append(Figure("labels", f"majority vote (default) mean Dice, {experts}", majority["mean_dice"],
                                  "STAPLE, p > 0.5", staple["mean_dice"]))
    qc = result.get("qc_dsb2018")
    if qc:
        text += ["", f"QC of DSB 2018: {qc['flagged']} of {qc['images']} images flagged in {fmt(qc['seconds'])} s.", "",
                 table(["flag", "images", "first reason"],
                       [[f, v["count"], v.get("first_reason", "")[:120]] for f, v in qc["flags"].items()])]
    return "\n".join(text), figures


def section_teaching_run(result) -> tuple[str, list[Figure]]:
    """run_all's teaching run: {status, times: {notebook: s}, total_s, sample, note}."""
    if result.get("status") == "skipped":
        return f"Not run: {result.get('note', 'skipped')}.", []
    times = result.get("times", {})
    text = (f"The notebooks 01 → 07 executed top to bottom with nbclient, `NBSEG_QUICK=1`, sample "
            f"`{result.get('sample', '?')}`, one project folder: **{fmt(result.get('total_s'))} s** in all.\n\n"
            + table(["notebook", "seconds"], [[k, f"{v:.1f}"] for k, v in times.items()]))
    if result.get("note"):
        text += f"\n\n{result['note']}"
    return text, []


def section_import_time(result) -> tuple[str, list[Figure]]:
    """bench/import_time.py: {repeats, rows: [{module, median_s, min_s, max_s}]}."""
    text = (f"Fresh interpreter per import (`python -X importtime` not used: wall time of `python -c 'import M'` minus "
            f"a bare `python -c pass`), median of {result.get('repeats', '?')} runs.\n\n"
            + table(["import", "median s", "min s", "max s"],
                    [[r["module"], *(f"{r[k]:.3f}" if _finite(r.get(k)) else "error: " + str(r.get("error", ""))[:80]
                                     for k in ("median_s", "min_s", "max_s"))] for r in result["rows"]]))
    figures = []
    rows = {r["module"]: r for r in result["rows"]}
    ours = rows.get("nbseg.train", {}).get("median_s")  # what a user imports to train, against the peers'
    for peer in ("monai", "deepflash2.learner"):
        if _finite(ours) and peer in rows and _finite(rows[peer].get("median_s")):
            figures.append(Figure("startup", "import time (s), `import nbseg.train`", ours, f"import {peer}",
                                  rows[peer]["median_s"], "s", higher_is_better=False))
    return text, figures


def section_gpu(result) -> tuple[str, list[Figure]]:
    """bench/gpu.py: {gpu: None, note} when no GPU, else {gpu, rows: [{what, fp32, best, setting, unit}]}."""
    if not result.get("gpu"):
        return f"No GPU lent in this run: {result.get('note', 'no CUDA device visible')}.", []
    body, figures = [], []
    for r in result.get("rows", []):
        speedup = r["best"] / r["fp32"] if _finite(r.get("best")) and _finite(r.get("fp32")) and r["fp32"] else None
        body.append([r["what"], r.get("fp32"), r.get("best"), r.get("setting", ""), fmt_ratio(speedup), r.get("unit", "")])
        if speedup is not None:
            figures.append(Figure("GPU", f"{r['what']} ({r.get('setting', '')})", r["best"], "same on fp32", r["fp32"],
                                  r.get("unit", "")))
    text = f"Device: {result['gpu']}; torch {result.get('torch', '?')}.\n\n" + table(
        ["what", "fp32", "best", "setting", "speed-up", "unit"], body)
    for note in result.get("notes", []):
        text += f"\n- {note}"
    return text, figures


SECTIONS = {
    "train_throughput": section_train_throughput,
    "quality": section_quality,
    "predict": section_predict,
    "predict_volume": section_predict,
    "lucchi3d": section_lucchi3d,
    "planned": section_planned,
    "labels": section_labels,
    "teaching_run": section_teaching_run,
    "import_time": section_import_time,
    "gpu": section_gpu,
}


def generic_section(result) -> str:
    """Any result as a JSON block (for scripts without a section writer)."""
    dumped = json.dumps(result, indent=1, default=str)
    if len(dumped) > 6000:
        dumped = dumped[:6000] + "\n... (cut)"
    return "```json\n" + dumped + "\n```"


def render_benchmark(name: str, entry: dict) -> tuple[str, list[Figure]]:
    """The body of one benchmark's section and its figures; never raises."""
    status = entry.get("status")
    seconds = f" ({fmt(entry['seconds'])} s)" if _finite(entry.get("seconds")) else ""
    if status == "error":
        error = str(entry.get("error", "unknown error")).strip()[-3000:]
        return (f"**Failed**{seconds}: `{entry.get('command', name)}`\n\n```\n{error}\n```", [])
    if status == "skipped":
        return f"Not run: {entry.get('note', 'skipped')}.", []
    writer = SECTIONS.get(name)
    result = entry.get("result")
    try:
        body, figures = writer(result) if writer else (generic_section(result), [])
    except Exception:  # a changed JSON layout must not lose the run: show the raw result
        body = ("_The section writer could not read this result (" + traceback.format_exc(limit=1).strip().splitlines()[-1]
                + "); raw result:_\n\n" + generic_section(result))
        figures = []
    if entry.get("note"):
        body += f"\n\n{entry['note']}"
    footer = f"\n\n<sub>`{entry['command']}`{seconds}</sub>" if entry.get("command") else ""
    return body + footer, figures


def machine_section(meta: dict) -> str:
    machine, versions = meta.get("machine", {}), meta.get("versions", {})
    rows = [["date", meta.get("date", "?")],
            ["mode", "**quick** (tiny budgets: a smoke run, not figures to quote)" if meta.get("quick") else "full"],
            ["CPU", machine.get("cpu", "?")],
            ["cores", f"{machine.get('physical_cores', '?')} physical, {machine.get('logical_cores', '?')} logical"],
            ["memory", f"{fmt(machine.get('memory_gb'))} GB"],
            ["CPU flags", ", ".join(machine.get("flags", [])) or "none of interest"],
            ["threads per benchmark", str(meta.get("threads", "?"))],
            ["GPU", machine.get("gpu") or "none"],
            ["OS", machine.get("os", "?")]]
    rows += [[name, str(version)] for name, version in versions.items()]
    return table(["", ""], rows)


def figures_section(figures: list[Figure]) -> str:
    if not figures:
        return "_No paired figures in this run._"
    rows = [[f.section, f.what, f.nbseg, f.peer_name, f.peer, fmt_ratio(f.ratio),
             "higher" if f.higher_is_better else "lower", "**behind**" if f.behind else ""] for f in figures]
    return table(["area", "figure", "nbseg", "peer", "peer's figure", "nbseg / peer", "better is", ""], rows)


def behind_section(figures: list[Figure], benchmarks: dict) -> str:
    """The reading, written from the numbers: every figure where nbseg trails its peer, worst first,
    and every benchmark that did not produce figures. The lead edits the prose in the notes."""
    behind = sorted((f for f in figures if f.behind),
                    key=lambda f: f.ratio if f.higher_is_better else 1 / f.ratio)
    lines = []
    for f in behind:
        how = (f"{(1 - f.ratio) * 100:.0f} % lower" if f.higher_is_better else f"{(f.ratio - 1) * 100:.0f} % higher")
        lines.append(f"- **{f.what}**: nbseg {fmt(f.nbseg)} vs {f.peer_name} {fmt(f.peer)} ({how}; ratio {f.ratio:.2f}).")
    if not lines:
        lines.append("- Nowhere among the paired figures of this run (within 2 %).")
    ahead = [f for f in figures if f.ratio is not None and not f.behind]
    if ahead:
        lines.append(f"- Level or ahead on the other {len(ahead)} paired figure(s).")
    failed = [n for n, e in benchmarks.items() if e.get("status") == "error"]
    skipped = [n for n, e in benchmarks.items() if e.get("status") == "skipped"]
    if failed:
        lines.append(f"- Failed in this run, so no comparison: {', '.join(failed)} (see their sections).")
    if skipped:
        lines.append(f"- Not run: {', '.join(skipped)}.")
    return "\n".join(lines)


def render(results: dict, *, notes: str = DEFAULT_NOTES) -> str:
    """The whole of docs/benchmarks.md."""
    meta, benchmarks = results.get("meta", {}), results.get("benchmarks", {})
    bodies, figures = {}, []
    for name in list(ORDER) + [n for n in benchmarks if n not in ORDER]:
        if name not in benchmarks:
            continue
        body, found = render_benchmark(name, benchmarks[name])
        bodies[name] = body
        figures += found
    out = ["# Benchmarks", "",
           "Generated by `make bench` (`python bench/run_all.py`); do not edit by hand outside the notes section, "
           "which regeneration keeps. `make bench-quick` checks that every benchmark runs, with budgets too small "
           "for the figures to mean anything. See `bench/README.md` for what each script measures.",
           ""]
    if meta.get("quick"):
        out += ["> **Quick run**: tiny budgets and few images. These numbers only show that the benchmarks run.", ""]
    from summary import summary_section  # the one-screen summary first; it imports this module

    out += [summary_section(meta, figures), "## Machine and versions", "", machine_section(meta), "",
            "## nbseg next to its peers (same run)", "",
            "Ratio = nbseg / peer; the last column marks where nbseg is behind by more than 2 %.", "",
            figures_section(figures), "",
            "## Where nbseg is behind", "",
            behind_section(figures, benchmarks), ""]
    for name, body in bodies.items():
        out += [f"## {TITLES.get(name, name)}", "", body, ""]
    out += ["## Notes", "", NOTES_START, notes, NOTES_END, ""]
    if _finite(meta.get("seconds")):
        out += [f"<sub>Last invocation of run_all.py: {fmt(meta['seconds'])} s.</sub>", ""]
    return "\n".join(out)
