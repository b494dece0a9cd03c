"""Pairing files by stem is one function, and every user of it refuses two files with the same stem."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nbseg.config import Config
from nbseg.data.pairs import PairingError, find_pairs
from nbseg.io.images import files_by_stem
from nbseg.labels.qc import qc_dataset
from nbseg.metrics.evaluation import evaluate_folders
from nbseg.ui.label_qc_panel import QCService, QCState


@pytest.fixture()
def folders(tmp_path):
    """``images/`` holds ``cell.tif`` and ``cell.png`` (the same stem); ``masks/`` holds ``cell.tif``."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    pixels = np.zeros((8, 8), np.uint8)
    tifffile.imwrite(images / "cell.tif", pixels)
    tifffile.imwrite(images / "cell.png", pixels)  # the content does not matter: refused by name before reading
    tifffile.imwrite(masks / "cell.tif", pixels)
    return images, masks


def _names_both(error):
    message = str(error.value)
    assert "cell.png" in message and "cell.tif" in message and "Keep one" in message, message


def test_training_pairs_refuse_duplicate_stems(folders):
    with pytest.raises(PairingError, match="share the name 'cell'") as error:
        find_pairs(*folders)
    _names_both(error)


def test_qc_refuses_duplicate_stems(folders):
    with pytest.raises(PairingError, match="share the name 'cell'") as error:
        qc_dataset(*folders)
    _names_both(error)


def test_label_qc_panel_refuses_duplicate_stems(folders, tmp_path):
    config = Config(data={"images": str(folders[0]), "masks": str(folders[1])})
    service = QCService(QCState(project=tmp_path, config=config))
    with pytest.raises(PairingError, match="share the name 'cell'"):
        service.names()


def test_evaluation_refuses_duplicate_ground_truth(folders):
    with pytest.raises(PairingError, match="ground-truth files in .* share the name 'cell'"):
        evaluate_folders(folders[1], folders[0])


def test_distinct_stems_pair_in_name_order(tmp_path):
    for name in ("b.ome.tif", "a.png", "c.tiff"):
        (tmp_path / name).write_bytes(b"x")
    assert [(stem, path.name) for stem, path in files_by_stem(tmp_path).items()] == [
        ("a", "a.png"), ("b", "b.ome.tif"), ("c", "c.tiff")]
