"""The headless pipeline (`nbseg demo`): train → predict → threshold → instances → scores → report."""
from __future__ import annotations

import pandas as pd
import pytest

from nbseg.cli.main import main
from nbseg.io.images import read_image


@pytest.mark.slow  # train, predict and score the sample end to end
# the 3D demo (18 s) runs in make test-release (CI too), which keeps make test under 10 minutes
@pytest.mark.parametrize("name", ["nuclei2d", pytest.param("nuclei3d", marks=pytest.mark.release)])
def test_demo_quick_writes_models_predictions_scores_and_report(tmp_path, name):
    project = tmp_path / "demo"
    assert main(["demo", "--project", str(project), "--sample", name, "--quick"]) == 0
    assert (project / "models" / "fold0.pt").exists()
    report = (project / "report.md").read_text()
    assert "Dice (pooled)" in report and "training.png" in report and (project / "training.png").exists()
    table = pd.read_csv(project / "evaluation.csv")
    assert len(table) >= 1 and table["dice"].between(0, 1).all()
    tests = sorted((project / "data" / "test" / "images").iterdir())
    for kind in ("prob", "mask", "labels", "uncertainty"):
        written = read_image(project / "predictions" / f"{tests[0].name.split('.')[0]}.{kind}.ome.tif")
        assert written.spatial_shape == read_image(tests[0]).spatial_shape
