"""Layer 3: JupyterLab in headless Chromium, driven by Playwright. Each notebook is opened, all its
cells are run, then every visible primary button is pressed top to bottom; no error output, widgets
rendered, a loss plot after training, the ipyvolume canvas for the 3D sample. Screenshots go to
artifacts/screenshots/. Skips (with the reason) where chromium or playwright is missing; CI installs both."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("NBSEG_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "artifacts" / "screenshots"
ORDER = ["00_denoise", "01_data", "02_correct", "03_label_qc", "04_lr_finder", "05_train", "06_predict", "07_threshold_export"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--enable-unsafe-swiftshader"]


def _need_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (CI installs it: apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("jupyter lab is not installed in this environment")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def lab_server(root: Path, env: dict):
    port = _free_port()
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
           "--ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=", "--allow-root",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    settings = root / ".lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)  # render every cell (no windowing), so all panels are in the DOM
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = {**env, "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces")}  # no tabs restored from earlier runs
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start: " + (root / "jupyter.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started, by our own PID
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"
NO_PENDING_CELLS = """() => ![...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputArea-prompt')]
  .some(p => p.textContent.includes('*'))"""


# Scoped to the notebook in front (JupyterLab can restore the previous one beside it).
PROMPTS = "window.jupyterapp.shell.currentWidget.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')"
STARTED = f"""() => [...{PROMPTS}].some(p => /\\[(\\d+|\\*)\\]/.test(p.textContent))"""
ALL_RAN = f"""() => {{ const ps = [...{PROMPTS}]; return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }}"""
IS_OPEN = """(name) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!w && !!w.context && w.context.path.endsWith(name) && !!w.sessionContext; }"""


def _wait_idle(page, timeout_s: float = 420) -> None:
    deadline = time.monotonic() + timeout_s
    calm = 0
    while time.monotonic() < deadline:
        if page.evaluate(KERNEL_IDLE) and page.evaluate(NO_PENDING_CELLS):
            calm += 1
            if calm >= 3:  # idle on three checks in a row
                return
        else:
            calm = 0
        page.wait_for_timeout(500)
    raise TimeoutError("the kernel stayed busy")


def _problems(page) -> list[str]:
    return page.evaluate("""() => {
      const out = [];
      for (const el of document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')) {
        if (/Traceback|Error/.test(el.textContent)) out.push(el.textContent.slice(0, 400));
      }
      for (const el of document.querySelectorAll('.jp-OutputArea-output')) {
        if (/Error displaying widget|Failed to load model class/.test(el.textContent)) out.push(el.textContent.slice(0, 300));
      }
      for (const el of document.querySelectorAll('.jupyter-widgets b')) {
        if (el.textContent.startsWith('Fix:') && el.offsetParent !== null) out.push(el.parentElement.textContent.slice(0, 400));
      }
      return out;
    }""")


def _run_notebook(page, url: str, name: str, press: bool = True, fill: dict | None = None) -> dict:
    """Open ``name``, Run All, type ``fill``'s values into the text boxes so labelled, then press every primary
    button in order."""
    page.goto(f"{url}/lab/tree/{name}.ipynb?reset")  # ?reset: no restored workspace, this notebook alone
    page.wait_for_function(IS_OPEN, arg=f"{name}.ipynb", timeout=120_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    page.evaluate("() => { window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight(); }")
    for _attempt in range(3):  # a run-all sent while the notebook is still settling can be dropped
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(STARTED, timeout=20_000)
            break
        except Exception:  # noqa: BLE001 - try again
            continue
    else:
        raise AssertionError(f"{name}: Run All did not start any cell")
    page.wait_for_function(ALL_RAN, timeout=420_000)
    _wait_idle(page)
    page.wait_for_selector(".jp-OutputArea .jupyter-widgets", state="attached", timeout=60_000)
    for label, value in (fill or {}).items():  # as a person would: type, then leave the box
        box = page.locator(f"{NB} .jupyter-widgets.widget-text").filter(has_text=label).first.locator("input")
        box.fill(value)
        box.press("Tab")
        page.wait_for_timeout(500)
    pressed = []
    if press:
        done = 0
        while True:
            buttons = page.locator(f"{NB} .jp-OutputArea .jupyter-widgets.mod-primary:visible")
            if buttons.count() <= done:
                break
            button = buttons.nth(done)
            button.scroll_into_view_if_needed()
            if button.is_enabled():
                pressed.append(button.inner_text().strip())
                button.click()
                page.wait_for_timeout(1000)
                _wait_idle(page)
                page.wait_for_timeout(500)
            done += 1
    return {"pressed": pressed, "problems": _problems(page),
            "widgets": page.locator(".jupyter-widgets").count()}


def _shoot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    panel = page.locator(f"{NB} .jp-Cell").nth(4)  # the cell that shows the panel
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(path))
    return path


def _close(page) -> None:
    """Shut the notebook's kernel down and close it without saving (one notebook open at a time)."""
    page.evaluate("""async () => {
      const w = window.jupyterapp.shell.currentWidget;
      await w.sessionContext.shutdown();
      w.context.model.dirty = false;
      w.dispose();
    }""")
    page.wait_for_timeout(500)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _workdir(tmp_path: Path) -> Path:
    for name in ORDER:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", tmp_path / f"{name}.ipynb")
    return tmp_path


def _sequence(browser, tmp_path, sample: str) -> tuple[Path, dict]:
    """Notebooks 01 -> 07 in one project folder, each opened alone, Run All, every primary button pressed."""
    root = _workdir(tmp_path)
    env = {"NBSEG_QUICK": "1", "NBSEG_QUICK_MINUTES": "0.3", "NBSEG_AUTORUN": "0", "NBSEG_SAMPLE": sample,
           "NBSEG_PROJECT": str(root / "project"), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2"}
    tag = "3d" if sample.endswith("3d") else "2d"
    results = {}
    with lab_server(root, env) as url:
        page = browser.new_page(viewport={"width": 1300, "height": 2600})
        for name in ORDER:
            # the denoiser gets half a minute, the teaching run's budget for it: quick mode's share of these
            # runs' 0.3 minutes (5 s) leaves its screenshot an untrained, flat image
            fill = {"Minutes": "0.5"} if name == "00_denoise" else None
            results[name] = _run_notebook(page, url, name, press=name != "02_correct", fill=fill)
            if name == "02_correct":
                results[name].update(_correct_by_mouse(page, root / "project"))
            if name == "01_data" and tag == "3d":
                page.wait_for_selector(".jp-OutputArea canvas", timeout=60_000)
                results[name]["canvases"] = page.locator(".jp-OutputArea canvas").count()
            if name == "03_label_qc":
                results[name]["drawn"] = _draw_by_clicks(page)
            if name == "05_train":
                results[name]["loss_plot"] = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea .widget-image')]
                    .some(img => img.naturalWidth > 300 && img.offsetParent !== null)""")
                results[name]["progress_bars"] = page.locator("progress").count()
            _shoot(page, f"{tag}_{name}")
            assert results[name]["problems"] == [], f"{name}: {results[name]['problems']}"
            assert results[name]["widgets"] > 5, f"{name}: widgets did not render"
            _close(page)
        page.close()
    return root, results


def _press(page, text: str) -> None:
    page.locator(f"{NB} .jupyter-widgets.mod-primary").filter(has_text=text).first.click()
    page.wait_for_timeout(1000)
    _wait_idle(page)


def _correct_by_mouse(page, project: Path) -> dict:
    """02_correct as a person uses it: rank the images, drag a new object on the proposal with the 'add'
    brush (mouse down, move, up through ipyevents), save it, retrain, and see the new model rank again."""
    import json

    _press(page, "Rank images")
    info = page.locator(f"{NB} .widget-html").filter(has_text="proposed by").first
    first = info.inner_text()
    page.locator(f"{NB} .widget-toggle-button").filter(has_text="add").first.click()
    image = page.locator(f"{NB} .jupyter-widgets img.widget-image:visible").first
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    x, y = box["x"] + 0.08 * box["width"], box["y"] + 0.5 * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 0.1 * box["width"], y, steps=8)
    page.mouse.up()
    page.wait_for_timeout(1500)
    _wait_idle(page)
    edited = info.inner_text()
    _press(page, "Save & next")
    decisions = [json.loads(line) for line in (project / "corrections" / "decisions.jsonl").read_text().splitlines()]
    _press(page, "Retrain")  # it trains in the background: the rounds table says when it is done
    page.wait_for_function("""() => [...document.querySelectorAll('.widget-html')]
        .some(e => e.innerText.includes('Rounds') && e.innerText.includes('round'))""", timeout=600_000)
    _wait_idle(page)
    return {"first": first, "edited": edited, "decisions": decisions, "after": info.inner_text(),
            "problems": _problems(page)}


def _draw_by_clicks(page) -> str:
    """Open the 'Draw masks' tab, click four corners on the image and double-click the last: the
    corner list fills from the clicks and the polygon is added (ipyevents in a real browser)."""
    page.locator(f"{NB} .jupyter-widgets .lm-TabBar-tab, {NB} .jupyter-widgets .p-TabBar-tab").filter(
        has_text="Draw masks").first.click()
    page.wait_for_timeout(500)
    image = page.locator(f"{NB} .jupyter-widgets img.widget-image:visible").last
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    corners = [(0.2, 0.2), (0.2, 0.6), (0.6, 0.6), (0.6, 0.2)]
    for fx, fy in corners[:-1]:
        page.mouse.click(box["x"] + fx * box["width"] * 0.9, box["y"] + fy * box["height"] * 0.9)
        page.wait_for_timeout(400)
    fx, fy = corners[-1]
    page.mouse.dblclick(box["x"] + fx * box["width"] * 0.9, box["y"] + fy * box["height"] * 0.9)
    page.wait_for_timeout(1500)
    _wait_idle(page)
    return page.locator(f"{NB} .jupyter-widgets").filter(has_text="polygon on").last.inner_text()


def test_lab_2d_sequence(browser, tmp_path):
    root, results = _sequence(browser, tmp_path, "nuclei2d")
    assert results["01_data"]["pressed"] == ["Check data & save project"]
    correct = results["02_correct"]
    assert "0 edit(s)" in correct["first"] and "1 edit(s)" in correct["edited"], correct
    assert correct["decisions"][0]["decision"] == "corrected" and correct["decisions"][0]["edits"] == {"added": 1}
    assert correct["after"] != correct["first"], "the new model's ranking opened another image"
    assert (root / "project" / "rounds" / "round1" / "models" / "fold0.pt").exists()
    assert "excluding polygon on" in results["03_label_qc"]["drawn"] and "4 corners" in results["03_label_qc"]["drawn"]
    assert "Train" in results["05_train"]["pressed"]
    assert results["05_train"]["loss_plot"], "no loss plot image after training"
    assert results["05_train"]["progress_bars"] >= 1, "no fastprogress bar"
    assert (root / "project" / "models" / "fold0.pt").exists()
    assert list((root / "project" / "export").glob("*.mask.ome.tif"))


def test_lab_3d_sequence(browser, tmp_path):
    root, results = _sequence(browser, tmp_path, "nuclei3d")
    assert results["01_data"]["canvases"] >= 1, "no ipyvolume canvas"
    assert "(z=" in results["03_label_qc"]["drawn"], "a 3D polygon belongs to a slice"
    assert results["05_train"]["loss_plot"], "no loss plot image after training"
    assert (root / "project" / "models" / "fold0.pt").exists()
    assert list((root / "project" / "export").glob("*.labels.ome.tif"))


def _kernel_pid(url: str) -> int:
    """PID of the notebook's kernel: the one kernel the server lists, found among this test's own
    descendants by the kernel id in its connection file's name."""
    import json

    import psutil

    kernels = json.load(urllib.request.urlopen(f"{url}/api/kernels", timeout=5))
    assert len(kernels) == 1, kernels
    pids = [p.pid for p in psutil.Process().children(recursive=True)
            if any(kernels[0]["id"] in part for part in p.cmdline())]
    assert len(pids) == 1, pids
    return pids[0]


def _epochs(history: Path) -> list[dict]:
    from nbseg.model.history import read_history

    return read_history(history) if history.exists() else []


def test_lab_kernel_killed_then_resume(browser, tmp_path):
    """Issue 16: the kernel dies (SIGKILL) while notebook 05 trains; reopen 05, 'Resume from disk'
    continues from the last finished epoch: every epoch once, the earlier rows unchanged."""
    from nbseg.config import Config, DataConfig
    from nbseg.data.sample import sample
    from nbseg.project import ProjectLayout

    project, epochs = tmp_path / "project", 10
    cfg = Config(data=DataConfig(**sample("nuclei2d")))  # what notebook 01 saves for the sample
    cfg.model.size, cfg.model.patch = "S", [64, 64]
    cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.batch_size = 4, 3, 2  # ~1-2 s an epoch
    cfg.save(project)
    history = ProjectLayout(project).history / "fold0.csv"
    shutil.copy(ROOT / "notebooks" / "05_train.ipynb", tmp_path / "05_train.ipynb")
    env = {"NBSEG_QUICK": "1", "NBSEG_AUTORUN": "0", "NBSEG_PROJECT": str(project), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "2"}
    with lab_server(tmp_path, env) as url:
        page = browser.new_page(viewport={"width": 1300, "height": 2600})
        assert _run_notebook(page, url, "05_train", press=False)["problems"] == []
        field = page.locator(f"{NB} .widget-inline-hbox").filter(has_text="Epochs").locator("input")
        field.fill(str(epochs))
        field.press("Enter")  # the typed value reaches the kernel on Enter
        page.locator(f"{NB} button.mod-primary").filter(has_text="Train").click()
        deadline = time.monotonic() + 180
        while len(_epochs(history)) < 2:
            assert time.monotonic() < deadline, "training did not write 2 epochs in 180 s"
            time.sleep(0.2)
        pid = _kernel_pid(url)
        os.kill(pid, signal.SIGKILL)  # a kernel death, not a restart command
        before = _epochs(history)  # read once the writer is dead
        assert 2 <= len(before) < epochs, f"{len(before)} epochs before the kill: make the run longer"
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=60_000)
        died = dialog.inner_text()
        dialog.locator(".jp-mod-accept").click()  # 'OK': the server restarts the kernel
        _close(page)
        # reopen notebook 05 and run it again in the new kernel, then resume
        assert _run_notebook(page, url, "05_train", press=False)["problems"] == []
        assert _kernel_pid(url) != pid
        page.locator(f"{NB} button").filter(has_text="Resume from disk").click()
        page.locator(f"{NB} .jupyter-widgets").filter(has_text="Trained 1 model").last.wait_for(timeout=300_000)
        _wait_idle(page)
        table = page.locator(f"{NB} .jupyter-widgets table").last.inner_text()
        log = page.locator(f"{NB} .widget-html").filter(has_text="Resumed from the checkpoint").last.inner_text()
        problems = _problems(page)
        _shoot(page, "2d_05_train_resumed")
        page.close()
    after = _epochs(history)
    assert "died" in died, died
    assert [h["epoch"] for h in after] == list(range(epochs)), [h["epoch"] for h in after]
    assert after[:len(before)] == before, "the epochs before the kill changed"
    assert Config.load(project).train.epochs == epochs
    # the resumed run's table (1-based epochs) starts after the last checkpoint: the last row read before
    # the kill, or one later when the kill fell between the checkpoint's write and the history's
    rows = [int(line.split("\t")[1]) for line in table.strip().splitlines()[1:]]
    assert rows[0] in (len(before) + 1, len(before) + 2) and rows == list(range(rows[0], epochs + 1)), table
    assert f"at epoch {rows[0]}." in log, log
    assert problems == [], problems
