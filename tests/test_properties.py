"""Property tests (hypothesis): whatever a user's files and settings look like, nbseg gives the right
result or its own clear error, never another exception (issue 16, part 6).

- the reader: random axes strings, dtypes, shapes and channel choices;
- the settings: random dictionaries, and random text as a settings file;
- output names: results stay inside the output folder whatever the image names are.
"""
from __future__ import annotations

import string
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nbseg.config import Config, ConfigError
from nbseg.io.images import ImageReadError, file_stem, read_image
from nbseg.predict.outputs import result_paths

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = [np.uint8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64]


# ---------------------------------------------------------------- the reader


@st.composite
def arrays_with_axes(draw):
    """An array in a random axis order, the axes string that says so, and the same array as ``C[Z]YX``."""
    extra = draw(st.lists(st.sampled_from("TCZ"), unique=True, max_size=3))
    order = draw(st.permutations(extra))
    rgb = "C" not in order and draw(st.booleans())  # samples last, as RGB files have them
    axes = "".join(order) + "YX" + ("C" if rgb else "")
    sizes = {"T": draw(st.integers(1, 2)), "C": draw(st.integers(1, 3)), "Z": draw(st.integers(1, 3)),
             "Y": draw(st.integers(1, 5)), "X": draw(st.integers(1, 5))}
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(sizes[a] for a in axes)
    data = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)  # every pixel distinct: order shows
    if draw(st.booleans()):
        axes = axes.lower()
    return data, axes


def expected_czyx(data: np.ndarray, axes: str) -> np.ndarray | None:
    """What reading ``data`` with ``axes`` must give, by numpy alone; None where nbseg must refuse it."""
    axes = axes.upper()
    if "T" in axes:
        if data.shape[axes.index("T")] != 1:
            return None
        data, axes = np.take(data, 0, axis=axes.index("T")), axes.replace("T", "")
    if "C" not in axes:
        data, axes = data[None], "C" + axes
    if "Z" in axes and data.shape[axes.index("Z")] == 1:
        data, axes = np.take(data, 0, axis=axes.index("Z")), axes.replace("Z", "")
    return np.transpose(data, [axes.index(a) for a in ("CZYX" if "Z" in axes else "CYX")])


def write_tiff(folder: Path, data: np.ndarray) -> Path:
    path = folder / "image.tif"
    with warnings.catch_warnings():  # tifffile's notes on how it stores 3-sample data
        warnings.simplefilter("ignore", DeprecationWarning)
        tifffile.imwrite(path, data, photometric="minisblack")
    return path


def readable_by_tifffile(path) -> bool:
    try:
        tifffile.imread(path)
    except Exception:  # noqa: BLE001 - any failure of the library itself
        return False
    return True


@SETTINGS
@given(arrays_with_axes())
def test_reading_with_the_axes_given_gives_the_right_array(case):
    data, axes = case
    with tempfile.TemporaryDirectory() as folder:
        path = write_tiff(Path(folder), data)
        expected = expected_czyx(data, axes)
        if not readable_by_tifffile(path):  # e.g. tifffile cannot read back a 1x1x1x1x1 array it wrote
            with pytest.raises(ImageReadError, match=r"Could not read .*image\.tif"):
                read_image(path, axes=axes)
            return
        if expected is None:  # a time series of several points
            with pytest.raises(ImageReadError, match=r"image\.tif has a time axis"):
                read_image(path, axes=axes)
            return
        image = read_image(path, axes=axes)
    assert image.data.dtype == data.dtype
    np.testing.assert_array_equal(image.data, expected)
    assert image.axes == ("CZYX" if expected.ndim == 4 else "CYX")


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=6), dtype=st.sampled_from(DTYPES),
       axes=st.one_of(st.none(), st.text(alphabet="TCZYXQSyx?", max_size=7)))
def test_any_axes_string_gives_an_image_or_a_clear_error(shape, dtype, axes):
    data = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
    with tempfile.TemporaryDirectory() as folder:
        path = write_tiff(Path(folder), data)
        try:
            image = read_image(path, axes=axes)
        except ImageReadError as err:
            assert "image.tif" in str(err)  # names the file (and, in the message, the fix)
            return
    assert image.axes in ("CYX", "CZYX") and image.data.dtype == data.dtype
    # nothing lost or made up: the same pixels, in some order
    np.testing.assert_array_equal(np.sort(image.data, axis=None), np.sort(data, axis=None))


@SETTINGS
@given(n_channels=st.integers(1, 4), channels=st.lists(st.integers(-6, 6), min_size=1, max_size=4))
def test_choosing_channels_gives_them_in_order_or_names_the_missing_ones(n_channels, channels):
    data = np.arange(n_channels * 4 * 5, dtype=np.uint16).reshape(n_channels, 4, 5)
    with tempfile.TemporaryDirectory() as folder:
        path = write_tiff(Path(folder), data)
        if all(-n_channels <= c < n_channels for c in channels):
            image = read_image(path, axes="CYX", channels=channels)
            np.testing.assert_array_equal(image.data, data[channels])
        else:
            with pytest.raises(ImageReadError, match=rf"image\.tif has {n_channels} channel.*do not exist"):
                read_image(path, axes="CYX", channels=channels)


# ---------------------------------------------------------------- settings

SECTIONS = {"data": ["images", "masks", "axes", "channels", "dims", "labels", "n_classes", "val_fraction",
                     "percentiles", "pixel_sizes", "seg2", "merging_masks", "imagse"],
            "model": ["size", "patch", "dims", "scale", "sise"],
            "train": ["epochs", "minutes", "batch_size", "lr", "folds", "seed", "foreground_fraction", "device",
                      "precision", "schedule", "epoch", "augment"],
            "cluster": ["queue", "cores", "memory", "gpus", "jobs", "walltime"]}
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["raw/", "S", "M", "binary", "instances", "cpu", "fp32", "onecycle", "ZYX", "2", ""]),
    st.text(max_size=6), st.lists(st.integers(-2, 300), max_size=4), st.lists(st.floats(0, 100), max_size=3),
)


@st.composite
def config_dicts(draw):
    chosen = draw(st.lists(st.sampled_from(list(SECTIONS) + ["trian", "notes"]), unique=True, max_size=4))
    config = {}
    for section in chosen:
        keys = SECTIONS.get(section, ["x"])
        if draw(st.integers(0, 9)) == 0:
            config[section] = draw(VALUES)  # a section that is not a mapping
        else:
            config[section] = draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=2))
    if draw(st.booleans()):  # half of them start from valid settings, so that some pass
        section = config.setdefault("data", {})
        if isinstance(section, dict):
            section["images"] = "raw/"
        config = {k: v for k, v in config.items() if k in SECTIONS}
    return config


@SETTINGS
@given(config_dicts())
def test_random_settings_are_validated_or_refused_clearly(config):
    try:
        validated = Config.model_validate(config)
    except ConfigError as err:
        assert str(err).startswith("The settings are not valid: ") and len(str(err)) > 40
        return
    # what was accepted survives a round trip unchanged (saved settings load as they were)
    assert Config.model_validate(validated.model_dump()) == validated
    assert Config.model_validate(validated.model_dump(mode="json")) == validated


@SETTINGS
@given(text=st.one_of(st.text(alphabet=string.printable, max_size=80),
                      st.builds(lambda k, v: f"data:\n  images: raw\n{k}:\n  {v}\n",
                                st.sampled_from(["train", "model", "data", "x"]),
                                st.text(alphabet=string.printable, max_size=30))))
def test_any_settings_file_loads_or_is_refused_naming_the_file(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settings.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            Config.load(path)
        except ConfigError as err:
            assert str(path) in str(err)


def test_a_valid_settings_file_round_trips(tmp_path):
    config = Config.model_validate({"data": {"images": "raw", "masks": "labels"}, "train": {"epochs": 3}})
    assert Config.load(config.save(tmp_path / "s.yaml")) == config


# ---------------------------------------------------------------- output names


NAMES = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + " ._-/\\äé", min_size=1, max_size=20),
    st.builds(lambda a, b: f"{a}../{b}", st.sampled_from(["", "../", "a/", "/"]), st.text(max_size=8)),
)


@SETTINGS
@given(stem=NAMES, instances=st.booleans(), interior=st.booleans())
def test_result_names_never_leave_the_output_folder(stem, instances, interior):
    out = Path("/data/results")
    try:
        paths = result_paths(out, stem, instances=instances, interior=interior)
    except ValueError as err:
        assert "plain file name" in str(err) and ("/" in stem or "\\" in stem or not stem or "\0" in stem)
        return
    assert all(p.parent == out and p.name.startswith(stem) for p in paths.values())


@SETTINGS
@given(name=st.text(alphabet=string.ascii_letters + " .-_äé", min_size=1, max_size=15),
       suffix=st.sampled_from([".tif", ".ome.tif", ".TIFF", ".png", ".ome.tiff"]))
def test_names_from_files_stay_inside(name, suffix):
    assume(name not in (".", ".."))
    stem = file_stem(Path("/images") / (name + suffix))
    paths = result_paths(Path("/out"), stem, instances=True) if stem else {}
    assert all(p.parent == Path("/out") for p in paths.values())
