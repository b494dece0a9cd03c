"""Small differences between ipywidgets 7.7 (Google Colab) and 8 (JupyterLab 4), in one place."""
from __future__ import annotations

import ipywidgets as w

VERSION = tuple(int(p) for p in w.__version__.split(".")[:2] if p.isdigit())
IPYW7 = VERSION[0] < 8


def set_tooltip(widget, text: str):
    """Hover text: ``tooltip`` in 8 (and on 7's Button/ToggleButton), ``description_tooltip`` elsewhere in 7."""
    traits = widget.trait_names()
    if "tooltip" in traits and (not IPYW7 or "description_tooltip" not in traits):
        widget.tooltip = text
    elif "description_tooltip" in traits:
        widget.description_tooltip = text
    elif "tooltip" in traits:
        widget.tooltip = text
    return widget


def get_tooltip(widget) -> str:
    for name in ("tooltip", "description_tooltip"):
        if name in widget.trait_names() and getattr(widget, name):
            return getattr(widget, name)
    return ""


def set_titles(container, titles) -> None:
    """Titles of a Tab or Accordion: ``titles`` in 8, ``set_title`` in 7."""
    titles = list(titles)
    if not IPYW7 and "titles" in container.trait_names():
        container.titles = tuple(titles)
    else:
        for i, title in enumerate(titles):
            container.set_title(i, title)


def get_titles(container) -> list:
    if not IPYW7 and "titles" in container.trait_names():
        return list(container.titles)
    return [container.get_title(i) for i in range(len(container.children))]


def collapse(accordion) -> None:
    """Close every section of an Accordion (``selected_index=None`` works in both)."""
    accordion.selected_index = None


def clear(output) -> None:
    """Empty an Output widget whether or not a kernel is attached."""
    output.clear_output()
    output.outputs = ()


def descr_style(width: str = "150px") -> dict:
    return {"description_width": width}
