"""One atomic writer (nbseg.project.atomic_write) and one way to change settings from a dict
(nbseg.config.update_config)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import nbseg
from nbseg.config import Config, ConfigError, update_config
from nbseg.project import atomic_write, write_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json(tmp_path / "plan.json", {"batch": 4})
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(path) as tmp:
            tmp.write_text('{"batch": ')  # half a file
            raise RuntimeError("killed mid-write")
    assert path.read_text() == '{\n "batch": 4\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_the_format_picking_suffix_is_kept_when_asked(tmp_path):
    with atomic_write(tmp_path / "cover.png", keep_suffix=True) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert (tmp_path / "cover.png").read_bytes() == b"png"


def test_no_other_atomic_writer_in_nbseg():
    """Files are replaced in one rename only by atomic_write (io/zarr.py swaps whole folders)."""
    root = Path(nbseg.__file__).parent
    renaming = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                      if re.search(r"os\.replace\(", p.read_text(encoding="utf-8")))
    assert renaming == ["io/zarr.py", "project.py"], renaming


@pytest.fixture()
def config(tmp_path):
    return Config(data={"images": str(tmp_path)}, model={"size": "S"}, train={"lr": 1e-3, "epochs": 5})


def test_update_config_changes_only_what_is_named(config):
    updated = update_config(config, {"train": {"lr": 3e-4}, "model": {"patch": [64, 64]}})
    assert (updated.train.lr, updated.train.epochs, updated.model.size, updated.model.patch) == (3e-4, 5, "S", [64, 64])
    assert config.train.lr == 1e-3  # a new Config; the old one is unchanged


def test_update_config_checks_what_it_is_given(config):
    with pytest.raises(ConfigError, match="epochs"):
        update_config(config, {"train": {"epochs": "many"}})
    with pytest.raises(ConfigError, match="lrr"):
        update_config(config, {"train": {"lrr": 1e-3}})
    with pytest.raises(ConfigError, match="No settings section 'training'"):
        update_config(config, {"training": {"lr": 1e-3}})


def test_project_paths_are_named_only_by_the_layout():
    """Nothing outside nbseg/project.py joins a project's folder or file names itself (ProjectLayout knows
    them); model/bundled.py's "models" is the package's own folder, not a project's."""
    root = Path(nbseg.__file__).parent
    names = r'/ "(models|predictions|export|labels|logs|checkpoints|history|results)"|' \
            r'"(config\.yaml|plan\.json|split\.json|lr_finder\.json|fingerprint\.json)"'
    found = sorted(f"{p.relative_to(root)}: {m.group(0)}" for p in root.rglob("*.py")
                   if p.name != "project.py" and str(p.relative_to(root)) != "model/bundled.py"
                   for m in re.finditer(names, p.read_text(encoding="utf-8")))
    assert found == [], found
