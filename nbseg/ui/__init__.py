"""The notebooks' panels (ipywidgets). The only part of nbseg that imports ipywidgets, IPython or
ipyvolume; each panel keeps its state, its actions (service, no widgets) and its view apart.

    from nbseg.ui import DataPanel
    DataPanel("projects/nuclei2d", sample_name="nuclei2d")
"""
from __future__ import annotations

import importlib

_PANELS = {
    "DenoisePanel": "denoise_panel",
    "DataPanel": "data_panel",
    "CorrectPanel": "correct_panel",
    "LabelQCPanel": "label_qc_panel",
    "LRPanel": "lr_panel",
    "TrainPanel": "train_panel",
    "PredictPanel": "predict_panel",
    "ExportPanel": "export_panel",
    "Viewer2D": "viewers",
    "VolumeView": "viewers",
}

__all__ = list(_PANELS)


def __getattr__(name):  # imported on first use, so `import nbseg.ui.glossary` stays light
    if name in _PANELS:
        return getattr(importlib.import_module(f".{_PANELS[name]}", __name__), name)
    raise AttributeError(name)
