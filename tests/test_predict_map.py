"""predict/ reads as a map: its face names every module's job, and the cluster wing is a subpackage whose
face names each of its modules."""
from __future__ import annotations

from pathlib import Path

import nbseg.predict
import nbseg.predict.cluster


def _modules(package) -> set[str]:
    folder = Path(package.__file__).parent
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} | \
        {p.parent.name for p in folder.glob("*/__init__.py")}


def test_the_predict_face_names_every_module():
    for package in (nbseg.predict, nbseg.predict.cluster):
        missing = sorted(m for m in _modules(package) if f":mod:`.{m}`" not in package.__doc__)
        assert missing == [], f"{package.__name__}'s docstring does not say what {missing} do"


def test_the_cluster_wing_is_grouped():
    assert {"connect", "distributed", "blocks", "workers"} <= _modules(nbseg.predict.cluster)
    assert not {"cluster", "distributed", "blocks", "workers"} & (_modules(nbseg.predict) - {"cluster"}), \
        "the dask modules belong in nbseg/predict/cluster/"
