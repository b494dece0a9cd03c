"""The benchmark report writer (bench/report.py) and run_all's result handling, on small fake results:
formatting and parsing only, no benchmark is run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import report  # noqa: E402


def fake_results(**overrides) -> dict:
    benchmarks = {
        "train_throughput": {"status": "ok", "seconds": 30.0, "command": "python bench/train_throughput.py --json x",
                             "result": [{"spatial_dims": 2, "size": "S", "patch": [128, 128], "batch": 8, "rows": {
                                 "nbseg UNet": {"patches_per_s": 12.0, "gflops": 60.0, "params_m": 1.9,
                                                "gflop_per_step": 40.0},
                                 "MONAI BasicUNet": {"patches_per_s": 8.0, "gflops": 50.0, "params_m": 2.0,
                                                     "gflop_per_step": 50.0},
                                 "bare 3x3 conv": {"gflops": 100.0}}}]},
        "quality": {"status": "ok", "seconds": 100.0, "result": {
            "test_images": 92, "train_images": 368, "threads": 2, "rows": [
                {"method": "nbseg", "budget_min": 2.0, "status": "ok", "dice": 0.80, "f1@0.5": 0.70, "map": 0.50,
                 "train_s": 130.0, "predict_s": 40.0},
                {"method": "monai", "budget_min": 2.0, "status": "ok", "dice": 0.85, "f1@0.5": 0.60, "map": 0.45,
                 "train_s": 120.0, "predict_s": 50.0},
                {"method": "deepflash2", "budget_min": 2.0, "status": "error", "error": "Traceback: boom"},
                {"method": "otsu", "budget_min": None, "status": "ok", "dice": 0.7, "f1@0.5": 0.5, "map": 0.3,
                 "train_s": 0.0, "predict_s": 1.0}]}},
        "predict": {"status": "ok", "result": {"markdown": "| engine | Mpx/s |", "tta": "flips",
                                               "nbseg": {"mpx_per_s": 2.0, "peak_rss_mb": 500.0, "mpx_per_cpu_s": 1.0},
                                               "monai": {"mpx_per_s": 1.0, "peak_rss_mb": 1000.0,
                                                         "mpx_per_cpu_s": 0.5},
                                               "limit": {"limit_mpx_per_s": 4.0}}},
        "lucchi3d": {"status": "error", "error": "exit code 1, no JSON written\nMemoryError"},
        "import_time": {"status": "ok", "result": {"repeats": 3, "rows": [
            {"module": "nbseg", "median_s": 0.05, "min_s": 0.04, "max_s": 0.06},
            {"module": "nbseg.train", "median_s": 1.0, "min_s": 0.9, "max_s": 1.1},
            {"module": "monai", "median_s": 2.0, "min_s": 1.9, "max_s": 2.1},
            {"module": "deepflash2.learner", "error": "ImportError"}]}},
        "gpu": {"status": "ok", "result": {"gpu": None, "note": "no CUDA device visible"}},
        "teaching_run": {"status": "ok", "result": {"status": "skipped", "note": "notebooks not written yet"}},
        "labels": {"status": "skipped", "note": "no --quick mode"},
    }
    benchmarks.update(overrides)
    meta = {"date": "2025-01-01 12:00 UTC", "quick": True, "threads": 2, "seconds": 321.0,
            "machine": {"cpu": "Test CPU", "logical_cores": 2, "physical_cores": 1, "memory_gb": 24.0,
                        "flags": ["avx2", "avx512_bf16"], "gpu": None, "os": "Linux"},
            "versions": {"python": "3.11", "torch": "2.13.0", "nbseg": "0.1.0", "monai": "1.6.1",
                         "deepflash2": "0.3.0"}}
    return {"meta": meta, "benchmarks": benchmarks}


def test_render_has_machine_versions_and_every_section():
    text = report.render(fake_results())
    for expected in ("Test CPU", "avx512_bf16", "monai | 1.6.1", "deepflash2 | 0.3.0", "2025-01-01", "Quick run",
                     "## Training throughput", "## Time to quality", "## Inference", "## 3D", "## Import time",
                     "## GPU", "No GPU lent in this run", "notebooks not written yet", "no --quick mode"):
        assert expected in text, expected


def test_paired_figures_and_ratios():
    figures = report.render_benchmark("train_throughput", fake_results()["benchmarks"]["train_throughput"])[1]
    patches = next(f for f in figures if "patches/s" in f.what)
    assert patches.ratio == pytest.approx(1.5)
    assert not patches.behind
    text = report.render(fake_results())
    assert "1.50x" in text  # 12 / 8 patches/s
    assert "2.00x" in text  # inference 2 / 1 Mpx/s
    assert "`import nbseg.train` | 1.000 | import monai | 2.000 | 0.50x" in text  # lower is better: ahead


def test_behind_section_lists_only_figures_where_nbseg_trails():
    text = report.render(fake_results())
    behind = text.split("## Where nbseg is behind", 1)[1].split("\n## ", 1)[0]
    assert "pooled Dice after 2 min" in behind  # 0.80 vs MONAI 0.85
    assert "F1@0.5" not in behind  # 0.70 vs 0.60: ahead
    assert "physical limit" in behind  # 2 of 4 Mpx/s
    assert "peak RSS" not in behind  # lower is better: 500 < 1000 MB
    assert "lucchi3d" in behind  # failed benchmarks are named


def test_lower_is_better_figures():
    worse = report.Figure("x", "peak RSS", 1200.0, "peer", 1000.0, higher_is_better=False)
    better = report.Figure("x", "import s", 0.5, "peer", 1.0, higher_is_better=False)
    assert worse.behind and not better.behind
    assert report.Figure("x", "y", 1.0, "peer", 0.0).ratio is None
    assert report.Figure("x", "y", float("nan"), "peer", 1.0).ratio is None


def test_failed_benchmark_shows_its_error_and_others_still_render():
    text = report.render(fake_results())
    section = text.split("## 3D: Lucchi++ mitochondria", 1)[1].split("\n## ", 1)[0]
    assert "Failed" in section and "MemoryError" in section
    assert "error: Traceback: boom" in text  # a failed method inside a benchmark stays a row
    assert "## Import time" in text


def test_unreadable_result_falls_back_to_raw_json():
    entry = {"status": "ok", "result": {"unexpected": [1, 2, 3]}}
    body, figures = report.render_benchmark("lucchi3d", entry)
    assert "could not read" in body and '"unexpected"' in body
    assert figures == []
    body, _ = report.render_benchmark("something_new", {"status": "ok", "result": {"a": 1}})
    assert '"a": 1' in body


def test_notes_survive_regeneration(tmp_path):
    first = report.render(fake_results())
    assert report.DEFAULT_NOTES in first
    edited = first.replace(report.DEFAULT_NOTES, "The lead says: DSB test set is small.\n\n- second line")
    notes = report.extract_notes(edited)
    assert notes == "The lead says: DSB test set is small.\n\n- second line"
    again = report.render(fake_results(), notes=notes)
    assert "The lead says: DSB test set is small." in again and report.DEFAULT_NOTES not in again
    assert report.extract_notes(None) == report.DEFAULT_NOTES
    assert report.extract_notes("no markers here") == report.DEFAULT_NOTES


def test_run_all_write_report_keeps_notes(tmp_path):
    import run_all

    path = tmp_path / "benchmarks.md"
    run_all.write_report(fake_results(), path)
    path.write_text(path.read_text().replace(report.DEFAULT_NOTES, "kept note"))
    run_all.write_report(fake_results(), path)
    assert "kept note" in path.read_text()


def test_run_all_records_a_failing_script(tmp_path, monkeypatch):
    import run_all

    failing = tmp_path / "failing.py"
    failing.write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    writing = tmp_path / "writing.py"
    writing.write_text("import json, sys\njson.dump({'ok': 1}, open(sys.argv[sys.argv.index('--json') + 1], 'w'))\n")
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    monkeypatch.setattr(run_all, "BENCHMARKS", {"bad": ("failing.py", [], (60, 60)),
                                                "good": ("writing.py", [], (60, 60)),
                                                "absent": ("nope.py", [], (60, 60))})
    (tmp_path / "results").mkdir()
    bad = run_all.run_benchmark("bad", quick=False, threads=1, logs=tmp_path)
    good = run_all.run_benchmark("good", quick=False, threads=1, logs=tmp_path)
    absent = run_all.run_benchmark("absent", quick=False, threads=1, logs=tmp_path)
    assert bad["status"] == "error" and "exit code 3" in bad["error"] and "about to fail" in bad["error"]
    assert good["status"] == "ok" and good["result"] == {"ok": 1}
    assert absent["status"] == "error" and "does not exist" in absent["error"]
    skipped = run_all.run_benchmark("good", quick=True, threads=1, logs=tmp_path)  # no --quick in writing.py
    assert skipped["status"] == "skipped"
    text = report.render({"meta": {}, "benchmarks": {"bad": bad, "good": good}})
    assert "exit code 3" in text and '"ok": 1' in text
    json.dumps({"bad": bad, "good": good})  # the collected results stay JSON


def test_planned_section_names_each_score_and_the_plan():
    result = {"threads": 2, "tta": "none", "rows": [
        {"case": "lucchi", "variant": "plan", "budget_min": 10.0, "status": "ok", "iou": 0.776, "dice": 0.874,
         "val_dice": 0.927, "plan": "plan: 2D network over each slice, model S"},
        {"case": "isbi", "variant": "plan", "budget_min": 5.0, "status": "ok", "pixel_error": 0.077, "val_dice": 0.84,
         "challenge_pixel_error": 0.045, "plan": "plan: 2D network"},
        {"case": "epfl", "variant": "plan", "budget_min": 5.0, "status": "error", "error": "boom"}]}
    body, figures = report.section_planned(result)
    assert "| lucchi | plan | 10 | foreground IoU 0.776 | 0.927 | 2D network over each slice, model S |" in body
    assert "pixel error 0.077" in body and "error: boom" in body and figures == []
    assert "challenge pixel error 0.045" in body  # the ISBI challenge's own definition, beside the issue's


def test_challenge_pixel_error_scores_the_interior_at_its_best_threshold():
    import planned

    membrane = np.zeros((8, 8), np.uint8)
    membrane[:, 3] = 1  # one membrane column: 8 of 64 pixels
    assert planned.challenge_pixel_error([membrane * 255], [membrane]) == pytest.approx(0.0)
    thick = membrane.copy()
    thick[:, 4] = 1  # a membrane drawn twice as wide: 8 interior pixels lost of 56
    expected = 1 - 2 * 48 / (48 + 56)
    assert planned.challenge_pixel_error([thick.astype(np.float32)], [membrane]) == pytest.approx(expected)


def test_summary_opens_the_report_with_date_machine_and_best_peers():
    text = report.render(fake_results())
    summary_part = text.split("## Summary", 1)[1].split("## Machine and versions", 1)[0]
    assert text.index("## Summary") < text.index("## Machine and versions") < text.index("## nbseg next to its peers")
    assert "2025-01-01 12:00 UTC" in summary_part and "Test CPU" in summary_part
    assert "training patches/s" in summary_part and "GFLOP/s" not in summary_part  # derived figures: detail only
    assert len(summary_part.strip().splitlines()) <= 30  # one screen


def test_summary_takes_the_strongest_peer_and_the_longest_budget():
    import summary

    figures = [report.Figure("quality", "pooled Dice after 2 min", 0.90, "MONAI", 0.80),
               report.Figure("quality", "pooled Dice after 15 min", 0.95, "MONAI", 0.94),
               report.Figure("quality", "pooled Dice after 15 min", 0.95, "deepflash2", 0.99),
               report.Figure("startup", "import time (s)", 1.0, "import monai", 5.0, higher_is_better=False),
               report.Figure("startup", "import time (s)", 1.0, "import other", 2.0, higher_is_better=False)]
    rows = summary.headline(figures)
    assert [(f.what, f.peer_name) for f in rows] == [("pooled Dice after 15 min", "deepflash2"),
                                                     ("import time (s)", "import other")]
    assert rows[0].behind


def test_summary_written_from_the_report_itself_matches_its_table():
    import summary

    text = report.render(fake_results())
    parsed = summary.figures_from_markdown(text)
    assert {(f.what, f.peer_name) for f in parsed} >= {("training patches/s, 2D, size S, patch 128x128, batch 8",
                                                        "MONAI BasicUNet")}
    stale = text.replace("2025-01-01 12:00 UTC", "2024-01-01 00:00 UTC", 1)  # the summary's own line only
    redone = summary.with_summary(stale, summary.summary_section(summary.meta_from_markdown(text), parsed))
    assert redone.count("## Summary") == 1 and redone.split("## Machine", 1)[0].count("2025-01-01") == 1
    assert redone.split("## Machine", 1)[1] == stale.split("## Machine", 1)[1]  # the detail is left as it was


def test_labels_figure_is_majority_vote_the_default():
    gt = [{"experts": "all 10", "method": "majority vote (strict, ties -> background) (default)", "mean_dice": 0.95,
           "min_dice": 0.9, "max_dice": 1.0},
          {"experts": "all 10", "method": "STAPLE, pixels any expert marked, p > 0.5", "mean_dice": 0.97,
           "min_dice": 0.9, "max_dice": 1.0}]
    _text, figures = report.section_labels({"ground_truth": gt})
    assert [(f.what, f.nbseg, f.peer_name) for f in figures] == [
        ("majority vote (default) mean Dice, all 10", 0.95, "STAPLE, p > 0.5")]
