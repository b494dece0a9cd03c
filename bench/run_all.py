"""The one benchmark command: runs every benchmark as its own process with ``--json``, collects the
results with the machine and versions, and writes docs/benchmarks.md (bench/report.py).

    python bench/run_all.py                 # make bench: the full run (hours on a 2-core CPU)
    python bench/run_all.py --quick         # make bench-quick: every benchmark with tiny budgets
    python bench/run_all.py --only quality,lucchi3d
    python bench/run_all.py --report-only   # rewrite the report from bench/_work/results/all.json

A benchmark that fails (or times out) records its error in the report; the others still run. The
hand-written notes section of docs/benchmarks.md is kept. Every benchmark gets the same threads
(--threads, default 2) through OMP_NUM_THREADS / MKL_NUM_THREADS.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402

RESULTS = HERE / "_work" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
DF2_PYTHON = HERE / "_work" / "venv-df2" / "bin" / "python"

# name -> (script, extra args, timeout in s full / quick). Order = run order.
BENCHMARKS = {
    "import_time": ("import_time.py", [], (900, 600)),
    "gpu": ("gpu.py", [], (3600, 900)),
    "train_throughput": ("train_throughput.py", [], (1800, 900)),
    # speed with the full TTA on a crop (minutes), memory on the whole Lucchi++ volume (one pass: tens of minutes)
    "predict": ("predict.py", ["--crop", "--tta", "all"], (3 * 3600, 1200)),
    "predict_volume": ("predict.py", ["--tta", "none"], (3 * 3600, 1200)),
    "lucchi3d": ("lucchi3d.py", [], (4 * 3600, 1200)),
    "planned": ("planned.py", ["--cases", "lucchi,bbbc050,isbi,epfl"], (4 * 3600, 1200)),
    "quality": ("quality.py", [], (14 * 3600, 3600)),
    "labels": ("labels.py", [], (3600, 900)),
    "teaching_run": (None, [], (1800, 1200)),  # run by this file (--teaching-run) in its own process
}
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_ORDER = ["01_data", "02_correct", "03_label_qc", "04_lr_finder", "05_train", "06_predict", "07_threshold_export"]

THREAD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "fma")


# ------------------------------------------------------------------ machine and versions


def machine_info() -> dict:
    info = {"os": f"{platform.system()} {platform.release()}", "logical_cores": os.cpu_count()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                     platform.processor())
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
        info["cpu"] = model
        info["flags"] = [f for f in THREAD_FLAGS if f in flags]
    except OSError:
        info["cpu"], info["flags"] = platform.processor() or "?", []
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        info["gpu"] = None
    return info


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "nbseg", "monai", "numpy", "scikit-image"):
        out[name] = _version(name)
    if DF2_PYTHON.exists():
        code = ("from importlib import metadata as m; print(m.version('deepflash2'), m.version('torch'), "
                "m.version('fastai'))")
        try:
            df2, torch, fastai = subprocess.run([str(DF2_PYTHON), "-c", code], capture_output=True, text=True,
                                                timeout=120, check=True).stdout.split()
            out["deepflash2"] = f"{df2} (own venv: torch {torch}, fastai {fastai})"
        except Exception as err:  # noqa: BLE001
            out["deepflash2"] = f"venv unreadable ({type(err).__name__})"
    else:
        out["deepflash2"] = "venv not made yet (bench/peers/setup_deepflash2.sh)"
    return out


# ------------------------------------------------------------------ running one benchmark


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[key] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def supports_quick(script: Path) -> bool:
    return "--quick" in script.read_text(errors="replace")


def command_for(name: str, *, quick: bool, json_path: Path) -> list | None:
    """The command line of one benchmark, or None when it cannot run in this mode."""
    script, extra, _ = BENCHMARKS[name]
    if script is None:
        cmd = [sys.executable, str(Path(__file__)), "--teaching-run", str(json_path)]
        return cmd + (["--quick"] if quick else [])
    path = HERE / script
    if not path.exists():
        return None
    # e.g. NBSEG_BENCH_ARGS_QUALITY="--budgets 5" runs a subset of a long benchmark
    override = os.environ.get(f"NBSEG_BENCH_ARGS_{name.upper()}", "")
    cmd = [sys.executable, str(path), "--json", str(json_path), *extra, *shlex.split(override)]
    if quick:
        if not supports_quick(path):
            return []
        cmd.append("--quick")
    return cmd


def run_benchmark(name: str, *, quick: bool, threads: int, logs: Path) -> dict:
    """Run one benchmark; never raises. Returns the entry for report.render."""
    json_path = RESULTS / f"{name}.json"
    json_path.unlink(missing_ok=True)
    cmd = command_for(name, quick=quick, json_path=json_path)
    if cmd is None:
        return {"status": "error", "error": f"bench/{BENCHMARKS[name][0]} does not exist (yet)"}
    if cmd == []:
        return {"status": "skipped", "note": f"bench/{BENCHMARKS[name][0]} has no --quick mode; it runs in the full run"}
    shown = " ".join(str(c).replace(str(ROOT) + "/", "") for c in cmd)
    timeout = BENCHMARKS[name][2][1 if quick else 0]
    log = logs / f"{name}.log"
    started = time.perf_counter()
    print(f"[run_all] {name}: {shown}", flush=True)
    try:
        with open(log, "w") as handle:
            proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=thread_env(threads), cwd=ROOT,
                                  timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    seconds = round(time.perf_counter() - started, 1)
    entry = {"command": shown, "seconds": seconds, "log": str(log.relative_to(ROOT))}
    result = None
    if json_path.exists():
        try:
            result = json.loads(json_path.read_text())
        except json.JSONDecodeError as err:
            entry.update(status="error", error=f"unreadable JSON {json_path}: {err}")
            return entry
    if result is not None:
        entry.update(status="ok", result=result)
        if rc != 0:
            entry["note"] = f"(the script exited with {rc}: some parts failed; see their rows and {entry['log']})"
    else:
        reason = f"timed out after {timeout} s" if rc == "timeout" else f"exit code {rc}, no JSON written"
        entry.update(status="error", error=f"{reason}\n{_tail(log)}")
    print(f"[run_all] {name}: {entry['status']} in {seconds} s", flush=True)
    return entry


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------ the teaching run (its own process)


def teaching_run(json_path: Path, *, quick: bool) -> int:
    """Execute notebooks 01 -> 07 top to bottom with nbclient in quick mode, in one project folder,
    as tests/test_notebooks.py does; write the times. The notebooks always run in their quick mode
    (NBSEG_QUICK=1): that is the teaching run."""
    import tempfile

    missing = [n for n in NOTEBOOK_ORDER if not (NOTEBOOKS / f"{n}.ipynb").exists()]
    if missing:
        result = {"status": "skipped", "note": f"notebooks not written yet: {', '.join(missing)}"}
        json_path.write_text(json.dumps(result))
        return 0
    try:
        import nbclient
        import nbformat
    except ImportError as err:
        result = {"status": "skipped", "note": f"nbclient/nbformat not installed ({err.name}); pip install -e .[dev]"}
        json_path.write_text(json.dumps(result))
        return 0
    sample = "nuclei2d"
    times, errors = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(NBSEG_QUICK="1", NBSEG_SAMPLE=sample, NBSEG_PROJECT=str(Path(tmp) / "project"),
                          MPLBACKEND="Agg")
        for name in NOTEBOOK_ORDER:
            nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
            client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=False,
                                             resources={"metadata": {"path": tmp}})
            started = time.monotonic()
            try:
                client.execute()
            except Exception as err:  # noqa: BLE001 - record which notebook failed, and stop
                times[name] = round(time.monotonic() - started, 1)
                errors.append(f"{name}: {type(err).__name__}: {str(err)[-800:]}")
                break
            times[name] = round(time.monotonic() - started, 1)
            print(f"{name}: {times[name]} s", flush=True)
    result = {"status": "ok" if not errors else "error", "sample": sample, "times": times,
              "total_s": round(sum(times.values()), 1)}
    if errors:
        result["note"] = "Stopped at an error: " + "; ".join(errors)
    json_path.write_text(json.dumps(result, indent=1))
    return 0 if not errors else 1


# ------------------------------------------------------------------ main


def write_report(results: dict, path: Path = DOCS) -> Path:
    notes = report.extract_notes(path.read_text() if path.exists() else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.render(results, notes=notes))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks that everything runs")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--threads", type=int, default=2, help="threads for every benchmark (default 2)")
    parser.add_argument("--output", type=Path, default=DOCS, help="the report (default docs/benchmarks.md)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from bench/_work/results/all.json without running anything")
    parser.add_argument("--teaching-run", type=Path, metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.teaching_run:
        return teaching_run(args.teaching_run, quick=args.quick)

    RESULTS.mkdir(parents=True, exist_ok=True)
    collected = RESULTS / "all.json"
    if args.report_only:
        results = json.loads(collected.read_text())
        print(f"wrote {write_report(results, args.output)}")
        return 0
    names = [n.strip() for n in (args.only or ",".join(BENCHMARKS)).split(",") if n.strip()]
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = sorted((set(names) | skip) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    started = time.perf_counter()
    meta = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "quick": args.quick,
            "threads": args.threads, "machine": machine_info(), "versions": versions()}
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    benchmarks = {}
    if args.only and collected.exists():  # a partial run updates the last full set of the same mode
        previous = json.loads(collected.read_text())
        if previous.get("meta", {}).get("quick") == args.quick:
            benchmarks = {k: v for k, v in previous.get("benchmarks", {}).items() if k not in names}
    for name in names:
        if name in skip:
            benchmarks[name] = {"status": "skipped", "note": "left out with --skip"}
            continue
        try:
            benchmarks[name] = run_benchmark(name, quick=args.quick, threads=args.threads, logs=logs)
        except Exception as err:  # noqa: BLE001 - the run goes on whatever one benchmark does
            benchmarks[name] = {"status": "error", "error": f"run_all could not run it: {type(err).__name__}: {err}"}
        if name == "gpu" and benchmarks[name].get("status") == "ok" and not benchmarks[name]["result"].get("gpu"):
            meta["machine"]["gpu"] = None
        # keep what has been measured so far, and the report current, after every benchmark
        meta["seconds"] = round(time.perf_counter() - started, 1)
        results = {"meta": meta, "benchmarks": benchmarks}
        collected.write_text(json.dumps(results, indent=1, default=str))
        write_report(results, args.output)
    meta["versions"] = versions()  # the deepflash2 venv may have been made during the run
    results = {"meta": meta, "benchmarks": benchmarks}
    collected.write_text(json.dumps(results, indent=1, default=str))
    path = write_report(results, args.output)
    failed = [n for n, e in benchmarks.items() if e.get("status") == "error"]
    print(f"wrote {path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
