"""The core never imports ipywidgets, IPython or matplotlib at module level: only nbseg.ui may."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import nbseg

FORBIDDEN = ("ipywidgets", "IPython", "matplotlib", "ipyvolume")


def core_modules() -> list[str]:
    names = ["nbseg"]
    for info in pkgutil.walk_packages(nbseg.__path__, "nbseg."):
        if info.name == "nbseg.ui" or info.name.startswith("nbseg.ui."):
            continue
        names.append(info.name)
    return names


def test_core_modules_found():
    names = core_modules()
    assert "nbseg.train" in names and "nbseg.overlay" in names and "nbseg.project" in names
    assert not any(n.startswith("nbseg.ui") for n in names)


def test_core_imports_no_ui_libraries():
    code = (
        "import importlib, json, sys\n"
        f"names = {core_modules()!r}\n"
        "bad = {}\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        f"    found = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "    if found and name not in bad:\n"
        "        bad[name] = found\n"
        "        break\n"
        "print(json.dumps(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    bad = json.loads(out.stdout.strip().splitlines()[-1])
    assert bad == {}, f"core modules pulled in UI libraries at import time (first offender): {bad}"


def test_each_core_module_alone():
    """Each module in its own fresh interpreter, so one module cannot hide another's import."""
    code = (
        "import importlib, json, sys\n"
        "importlib.import_module(sys.argv[1])\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    names, bad = core_modules(), {}
    for start in range(0, len(names), 4):  # 4 at a time: CI has 2 cores
        procs = {name: subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True) for name in names[start:start + 4]}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"import {name} failed: {err[-2000:]}"
            found = json.loads(out.strip().splitlines()[-1])
            if found:
                bad[name] = found
    assert bad == {}, f"core modules import UI libraries at module level: {bad}"
