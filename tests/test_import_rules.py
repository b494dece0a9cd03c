"""The core never imports ipywidgets, IPython or matplotlib at module level: only nbseg.ui may.
The pipeline is visible as subpackages, and no two modules import each other (lazy imports included)."""
from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import nbseg

PACKAGE = Path(nbseg.__file__).parent
SUBPACKAGES = {"io", "data", "labels", "model", "train", "predict", "metrics", "cli", "ui"}

FORBIDDEN = ("ipywidgets", "IPython", "matplotlib", "ipyvolume")


def core_modules() -> list[str]:
    names = ["nbseg"]
    for info in pkgutil.walk_packages(nbseg.__path__, "nbseg."):
        if info.name == "nbseg.ui" or info.name.startswith("nbseg.ui.") or info.name == "nbseg.__main__":
            continue  # __main__ runs the command line when imported
        names.append(info.name)
    return names


def test_core_modules_found():
    names = core_modules()
    assert "nbseg.train.trainer" in names and "nbseg.predict.files" in names and "nbseg.project" in names
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


# One interpreter imports the heavy libraries nbseg builds on (none of them loads a UI library: checked),
# then forks a child per module, which imports that module alone: each child starts from the same clean
# state as a fresh interpreter, without importing torch again (~100 fresh interpreters took minutes).
ALONE = """
import importlib, json, os, sys
import numpy, pandas, pydantic, scipy.ndimage, torch, yaml  # what nbseg modules import at module level
preloaded = [m for m in FORBIDDEN if m in sys.modules]
assert not preloaded, f"the preloaded libraries import {preloaded}"
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            result = [m for m in FORBIDDEN if m in sys.modules]
        except BaseException as err:
            result = f"import failed: {type(err).__name__}: {err}"
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        print(json.dumps([name, json.loads(pipe.read() or '"the child died"')]))
    os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (not on Windows)")
def test_each_core_module_alone():
    """Each module imported alone (in a child forked before any nbseg module was loaded), so one
    module cannot hide another's import, and none fails to import when it is the first."""
    code = f"FORBIDDEN = {FORBIDDEN!r}\n" + ALONE
    out = subprocess.run([sys.executable, "-c", code, *core_modules()], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = dict(json.loads(line) for line in out.stdout.splitlines() if line.startswith("["))
    assert set(results) == set(core_modules()), out.stderr[-3000:]
    failed = {name: r for name, r in results.items() if isinstance(r, str)}
    assert failed == {}, f"core modules that fail to import on their own: {failed}"
    bad = {name: r for name, r in results.items() if r}
    assert bad == {}, f"core modules import UI libraries at module level: {bad}"


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """nbseg modules that ``name`` imports anywhere in its file (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found |= subs or ({target} & known)
    found.discard(name)
    return found


def test_pipeline_is_visible_as_subpackages():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert SUBPACKAGES <= packages, f"missing subpackages: {SUBPACKAGES - packages}"
    assert len(top) <= 8, f"{len(top)} plain modules at nbseg/'s top (at most 8): {top}"


def test_no_import_circle():
    files = module_files()
    graph = {name: imported_modules(name, path, set(files)) for name, path in files.items()}
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


# The parts (subpackages; the top-level modules are "base") and the parts each may import, lazy imports
# included. Train and predict are siblings: what both need sits below them. Nothing below cli/ and ui/
# imports them.
BELOW_TRAIN = {"base", "io", "labels", "data", "model", "metrics"}
ALLOWED = {
    "base": set(),
    "io": {"base"},
    "labels": {"base", "io"},
    "data": {"base", "io", "labels"},
    "model": {"base", "io"},
    "metrics": {"base", "io"},
    "train": BELOW_TRAIN,
    "predict": BELOW_TRAIN,
    # above train and predict: it trains with train's loop, and lists inputs and runs on a cluster with predict's
    "denoise": BELOW_TRAIN | {"train", "predict"},
    "cli": BELOW_TRAIN | {"train", "predict", "denoise"},
    "ui": BELOW_TRAIN | {"train", "predict", "denoise"},
}
FACES = {"nbseg", "nbseg.__main__"}  # the lazy public face and the entry point may import any part


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "base"


def test_parts_import_only_downward():
    files = module_files()
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED) - {"base"}, f"parts without a row in ALLOWED: {packages ^ (set(ALLOWED) - {'base'})}"
    wrong = []
    for name, path in sorted(files.items()):
        if name in FACES:
            continue
        source = part_of(name)
        for target in sorted(imported_modules(name, path, set(files))):
            dest = part_of(target) if target not in FACES else "base"
            if dest != source and dest not in ALLOWED[source]:
                wrong.append(f"{name} ({source}) imports {target} ({dest})")
    assert not wrong, "imports against the part order:\n" + "\n".join(wrong)
