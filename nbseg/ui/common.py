"""Shared pieces of the panels: controls with glossary tooltips, the primary buttons, the error box
(what went wrong + the fix; traceback collapsed and appended to ``project/logs/ui.log``) and a
runner that calls a service action from a button."""
from __future__ import annotations

import html
import traceback
from pathlib import Path

import ipywidgets as w

from ..project import ProjectLayout
from .compat import collapse, descr_style, set_titles, set_tooltip
from .glossary import tip

WIDE = w.Layout(width="560px")


def control(cls, key: str, description: str = "", *, width: str = "150px", layout=None, **kwargs):
    """A widget of class ``cls`` whose tooltip explains glossary term (or help line) ``key``."""
    if "description" in cls.class_trait_names():
        kwargs["description"] = description
        if "style" in cls.class_trait_names() and cls is not w.Button:
            kwargs.setdefault("style", descr_style(width))
    widget = cls(layout=layout or w.Layout(width="auto" if cls is w.Button else "560px"), **kwargs)
    set_tooltip(widget, tip(key))
    widget._nbseg_term = key
    return widget


def primary_button(description: str, key: str, icon: str = "") -> w.Button:
    button = w.Button(description=description, button_style="primary", icon=icon,
                      layout=w.Layout(width="auto", min_width="200px", align_self="flex-start"))
    set_tooltip(button, tip(key))
    button._nbseg_term = key
    button.add_class("nbseg-primary")
    return button


def secondary_button(description: str, key: str, icon: str = "") -> w.Button:
    button = w.Button(description=description, icon=icon,
                      layout=w.Layout(width="auto", min_width="140px", align_self="flex-start"))
    set_tooltip(button, tip(key))
    button._nbseg_term = key
    return button


def heading(text: str, level: int = 3) -> w.HTML:
    return w.HTML(f"<h{level} style='margin:4px 0'>{html.escape(text)}</h{level}>")


def note(text: str) -> w.HTML:
    return w.HTML(f"<div style='color:#555;font-size:90%;max-width:700px'>{text}</div>")


TABLE_CSS = ("<style>.nbseg-table{border-collapse:collapse;font-size:85%}"
             ".nbseg-table th,.nbseg-table td{border:1px solid #ddd;padding:2px 8px;text-align:right}"
             ".nbseg-table thead th{background:#f3f5f7}.nbseg-table tbody tr:nth-child(even){background:#fafafa}"
             "</style>")


def warning_html(text: str | None) -> str:
    """``text`` as a warning box (orange, bold start), or "" for None: what a panel must not let pass unseen."""
    if not text:
        return ""
    return ("<div style='color:#e65100;border-left:4px solid #e65100;padding:4px 8px;max-width:760px'>"
            f"<b>Warning:</b> {html.escape(text)}</div>")


def table_html(frame, *, index: bool = True, max_height: str = "300px") -> str:
    """A compact, scrollable HTML table of a pandas DataFrame (floats with 3 decimals)."""
    body = frame.to_html(index=index, border=0, classes="nbseg-table", escape=True, na_rep="",
                         float_format=lambda v: f"{v:.3f}")
    return f"{TABLE_CSS}<div style='max-height:{max_height};overflow:auto;max-width:900px'>{body}</div>"


def walk(widget):
    """Every widget under ``widget`` (depth first, itself included)."""
    yield widget
    for child in getattr(widget, "children", ()) or ():
        yield from walk(child)


FIXES = [
    ("MissingStep", "Open the notebook named above with the same project folder and press its button; "
                    "it writes what this step needs."),
    ("PatchSizeError", "Pick one of the nearest valid sizes named above, or change the model size."),
    ("FileNotFoundError", "Check the path: it is read relative to the folder the notebook runs in ({cwd})."),
    ("FileExistsError", "Choose another name, or delete the old file if you do not need it."),
    ("ImageReadError", "Open the file in Fiji to check it, or give its axes in 01_data."),
    ("PairingError", "Give masks the same file names as their images (e.g. cell1.tif and cell1.tif)."),
    ("ValidationError", "Correct the setting named above and press the button again."),
    ("ModuleNotFoundError", "Install the missing package (pip install it in this environment) and restart the kernel."),
    ("ImportError", "Install the missing package (pip install it in this environment) and restart the kernel."),
    ("OutOfMemoryError", "Lower the batch size or the patch size, and press the button again."),
    ("MemoryError", "Lower the batch size or the patch size, or use fewer/smaller images."),
]


def fix_for(err: BaseException) -> str:
    """What to do about ``err``: nbseg's own messages say it; common kinds get a standard fix."""
    names = [c.__name__ for c in type(err).__mro__]
    text = str(err)
    if "cannot import name" in text:
        return "nbseg's files look half-updated: restart the kernel; if it stays, reinstall nbseg."
    if "out of memory" in text.lower():
        return "Lower the batch size or the patch size, and press the button again."
    for name, fix in FIXES:
        if name in names:
            return fix.format(cwd=Path.cwd())
    return "The message says what to change; the full details are in the collapsed section below."


def describe(err: BaseException) -> str:
    """A person-readable message for ``err`` (pydantic errors shortened to their messages)."""
    if type(err).__name__ == "ValidationError" and hasattr(err, "errors"):
        parts = []
        for item in err.errors():
            where = ".".join(str(p) for p in item.get("loc", ()))
            msg = str(item.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts)
    return str(err) or type(err).__name__


class PanelError(RuntimeError):
    """An unattended run (autorun) stopped at a panel's error."""


class ErrorBox:
    """Shows what went wrong and the fix; the traceback sits in a collapsed Accordion and goes to the log."""

    def __init__(self):
        self.message = w.HTML("")
        self.trace = w.HTML("")
        self.details = w.Accordion(children=[self.trace])
        set_titles(self.details, ["Details for a bug report (traceback)"])
        collapse(self.details)
        self.widget = w.VBox([self.message, self.details], layout=w.Layout(display="none"))
        self.error: BaseException | None = None
        self.log_path: Path | None = None

    def show(self, err: BaseException, *, project=None, action: str = "") -> None:
        self.error = err
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        if project is not None:
            try:
                self.log_path = ProjectLayout(project).append_log(f"{action}: {type(err).__name__}: {err}\n{tb}")
            except OSError:
                self.log_path = None
        where = f" Logged to {html.escape(str(self.log_path))}." if self.log_path else ""
        self.message.value = (
            "<div style='border-left:4px solid #c62828;padding:4px 8px;background:#fdecea;max-width:760px'>"
            f"<b>{html.escape(action or 'That did not work')}: {html.escape(describe(err))}</b><br>"
            f"<b>Fix:</b> {html.escape(fix_for(err))}{where}</div>")
        self.trace.value = f"<pre style='font-size:80%;white-space:pre-wrap'>{html.escape(tb)}</pre>"
        collapse(self.details)
        self.widget.layout.display = ""

    def clear(self) -> None:
        self.error = None
        self.message.value = self.trace.value = ""
        self.widget.layout.display = "none"


class Status:
    """One line saying what the panel is doing or did."""

    def __init__(self):
        self.widget = w.HTML("")
        self.text = ""

    def set(self, text: str, kind: str = "info") -> None:
        self.text = text
        color = {"info": "#333", "ok": "#1b5e20", "busy": "#0d47a1", "warn": "#e65100"}[kind]
        self.widget.value = f"<div style='color:{color};max-width:760px'>{html.escape(text)}</div>"


FEEDBACK = object()  # marks where :meth:`PanelBase.assemble` puts the status line and the error box


class PanelBase:
    """A panel's view: ``widget`` (the root), ``buttons`` (primary, in pressing order), the status line,
    the error box, and ``run()`` that calls a service action safely.

    A panel declares ``State`` (a dataclass made from the project folder) and ``Service`` (its actions,
    made from the state), creates its widgets in :meth:`build` and may have an ``_open`` action.

    Parameters
    ----------
    project : str or Path
        The project folder every notebook reads and writes.
    """

    title = ""
    State = None
    Service = None
    _open = None  # the panel's "Open project" action; errors land in the error box, not the notebook

    def __init__(self, project):
        self.status = Status()
        self.errors = ErrorBox()
        self.buttons: list[w.Button] = []
        self.state = self.State(Path(project))
        self.service = self.Service(self.state)
        self.build()
        if self._open is not None:
            self.run("Open project", self._open)

    def build(self) -> None:
        """Create the widgets and ``self.widget`` (see :meth:`primary` and :meth:`assemble`)."""
        raise NotImplementedError

    def primary(self, description: str, key: str, fn, *, icon: str = "", action: str = "") -> w.Button:
        """A primary button, added to ``buttons`` (so create them in pressing order), that runs ``fn``.

        Parameters
        ----------
        description, key, icon
            As for :func:`primary_button` (``key``: the glossary term of its tooltip).
        fn : callable
            The action, called through :meth:`run`.
        action : str
            Its name in the status line and errors (default ``description``).
        """
        button = primary_button(description, key, icon=icon)
        self.buttons.append(button)
        self.on(button, action or description, fn)
        return button

    def secondary(self, description: str, key: str, fn, *, icon: str = "", action: str = "") -> w.Button:
        """A secondary button (not pressed by :meth:`press_all`) that runs ``fn``; as :meth:`primary`."""
        button = secondary_button(description, key, icon=icon)
        self.on(button, action or description, fn)
        return button

    def assemble(self, title: str, *parts, intro: str = "") -> w.VBox:
        """Set ``widget``: the heading, the ``intro`` note, then ``parts`` with the status line and the
        error box where :data:`FEEDBACK` stands among them (else after them)."""
        if not any(part is FEEDBACK for part in parts):
            parts = (*parts, FEEDBACK)
        children = [heading(title)] + ([note(intro)] if intro else [])
        for part in parts:
            children += [self.status.widget, self.errors.widget] if part is FEEDBACK else [part]
        self.widget = w.VBox(children)
        return self.widget

    @property
    def error(self):
        return self.errors.error

    def project_for_log(self):
        return getattr(getattr(self, "state", None), "project", None)

    def run(self, action: str, fn, *args, button=None, **kwargs):
        """Call ``fn``; show errors without a traceback; return its result (None on error)."""
        self.errors.clear()
        if button is not None:
            button.disabled = True
        self.status.set(f"{action} ...", "busy")
        try:
            result = fn(*args, **kwargs)
        except KeyboardInterrupt:
            self.status.set(f"{action}: stopped.", "warn")
            return None
        except Exception as err:  # noqa: BLE001 - every failure is shown to the user, never a traceback
            self.errors.show(err, project=self.project_for_log(), action=action)
            self.status.set(f"{action}: failed (see below).", "warn")
            return None
        finally:
            if button is not None:
                button.disabled = False
        if self.status.text.endswith("..."):
            self.status.set(f"{action}: done.", "ok")
        return result

    def on(self, button, action: str, fn):
        """Wire ``button`` to ``fn`` through :meth:`run`."""
        button.on_click(lambda _b: self.run(action, fn, button=button))

    def press_all(self, strict: bool = False) -> None:
        """Press the visible primary buttons in order, stopping at the first error (the notebooks' autorun).

        With ``strict``, an error is raised as :class:`PanelError` (its message, not the traceback), so
        an unattended run stops there."""
        for button in self.buttons:
            if button.layout.display == "none" or button.disabled:
                continue
            button.click()
            if self.error is not None:
                if strict:
                    raise PanelError(f"{button.description}: {describe(self.error)} Fix: {fix_for(self.error)}")
                break

    def _ipython_display_(self):  # ``panel`` as a cell's last line shows it
        from IPython.display import display

        display(self.widget)
