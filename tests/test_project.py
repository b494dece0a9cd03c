"""ProjectLayout: the one place that knows where things live in a project folder."""
from __future__ import annotations

import dataclasses

import pytest

from nbseg.project import ProjectLayout, fold_number


def test_paths_and_fold_order(tmp_path):
    layout = ProjectLayout(tmp_path)
    assert layout.model(2) == tmp_path / "models" / "fold2.pt"
    assert layout.checkpoint(0) == tmp_path / "checkpoints" / "fold0.pt"
    assert layout.history_file(1) == tmp_path / "history" / "fold1.csv"
    assert (layout.config.name, layout.split.name, layout.lr_finder.name) == ("config.yaml", "split.json",
                                                                               "lr_finder.json")
    with pytest.raises(FileNotFoundError, match="nbseg train --project"):
        layout.model_files()
    for k in (10, 2, 0, 1):  # fold10 sorts after fold2 (by number, not by text)
        layout.model(k).parent.mkdir(exist_ok=True)
        layout.model(k).write_bytes(b"")
    assert [fold_number(p) for p in layout.model_files()] == [0, 1, 2, 10]
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.root = tmp_path / "other"


def test_status_and_log(tmp_path):
    layout = ProjectLayout(tmp_path)
    assert layout.status() == {"config": False, "lr_finder": False, "models": False, "predictions": False,
                               "export": False}
    path = layout.append_log("something broke\nTraceback ...")
    assert path == tmp_path / "logs" / "ui.log" and "something broke" in path.read_text()
    layout.append_log("again")
    assert path.read_text().count("-----") == 2
