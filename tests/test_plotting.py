"""llmfmri.plotting: Display objects on synthetic unit spaces (Agg backend, figures closed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import llmfmri.plotting as lp
from llmfmri.decoding import DecodingResult
from llmfmri.exceptions import DataError, DesignMatrixError
from llmfmri.glm import UnitMap
from llmfmri.networks import Network, TaskMap, overlap_test_matrix
from llmfmri.units import UnitSpace

from _testing import SyntheticRecording

N_LAYERS, SIZE = 4, 36  # 36 units fold into 6 x 6


@pytest.fixture
def space():
    return UnitSpace({f"layers.{k}.resid_post": SIZE for k in range(N_LAYERS)})


@pytest.fixture
def zmap(space):
    values = np.linspace(-5.0, 5.0, space.n_units)
    return UnitMap(values, space, stat_type="t", output_type="z_score", contrast="a - b",
                   inference="prompt")


def _net(space, cols, label, z=None):
    mask = np.zeros(space.n_units, dtype=bool)
    mask[cols] = True
    return Network(mask, space, label=label, contrast=f"{label} - control", inference="prompt",
                   alpha=0.05, correction="fdr", stat_map=z)


def test_import_is_light():
    code = ("import sys, llmfmri.plotting, llmfmri.reports; "
            "print('matplotlib' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- unit map
def test_unit_map_display_threshold_colorbar_and_layer_ticks(zmap):
    disp = lp.UnitMapDisplay.from_map(zmap, threshold=2.0)
    assert repr(disp).endswith("(not drawn)>")
    assert disp.plot() is disp
    assert disp.rows.shape == (N_LAYERS, SIZE)
    data = disp.image_.get_array()
    expected_blank = int((np.abs(zmap.values) < 2.0).sum())
    assert int(data.mask.sum()) == expected_blank
    assert np.all(np.abs(data.compressed()) >= 2.0)
    vmin, vmax = disp.image_.get_clim()
    assert vmin == -vmax == -5.0  # symmetric about 0
    assert disp.colorbar_.ax.get_ylabel() == "z"
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["0", "1", "2", "3"]
    assert disp.ax_.get_ylabel() == "layer"
    assert disp.ax_.get_title().startswith("a - b\n|z| \u2265 2: ")
    assert disp.note_ is None and disp.figure_ is disp.ax_.figure
    assert disp.background_.get_array().shape == (N_LAYERS, SIZE)


def test_unit_map_threshold_above_every_value_is_empty_with_a_note(zmap):
    disp = lp.plot_unit_map(zmap, threshold=9.0, title="nothing")
    assert disp.image_.get_array().mask.all()
    assert "no unit reaches |z| \u2265 9 (largest |z| = 5)" in disp.note_.get_text()
    assert disp.ax_.get_title().startswith("nothing\n|z| \u2265 9: 0 of 144 units")
    assert disp.colorbar_ is not None
    assert disp.image_.get_clim() == (-9.0, 9.0)


def test_unit_map_of_taskmap_t_map_and_network(space, zmap):
    tm = TaskMap(z=zmap, effect=None, inference="prompt", contrast="a - b", dof=30, n_samples=32)
    assert lp.plot_unit_map(tm).colorbar_.ax.get_ylabel() == "z"
    t = UnitMap(zmap.values, space, stat_type="t", output_type="stat", dof=30)
    assert lp.plot_unit_map(t, colorbar=True).colorbar_.ax.get_ylabel() == "t"
    net = _net(space, [0, 1, 40, 143], "net", z=zmap)
    disp = lp.plot_unit_map(net)
    shown = disp.image_.get_array()
    assert int((~shown.mask).sum()) == 4  # only the network's units, even where z = 0 outside
    assert disp.ax_.get_title().startswith("net")
    assert lp.plot_unit_map(zmap, colorbar=False).colorbar_ is None


def test_unit_map_rejects_wrong_inputs(space, zmap):
    other = UnitSpace({f"layers.{k}.resid_post": SIZE for k in range(N_LAYERS + 1)})
    with pytest.raises(DataError, match=r"over different units .*another model or other sites"):
        lp.UnitMapDisplay.from_map(zmap, units=other)
    with pytest.raises(DataError, match="has no units .*pass units=UnitSpace"):
        lp.UnitMapDisplay.from_map(UnitMap(np.ones(5)))
    with pytest.raises(DataError, match=r"one value per unit, but this UnitMap has shape "
                                        r"\(2, 144\)"):
        lp.UnitMapDisplay.from_map(UnitMap(np.ones((2, space.n_units)), space))
    with pytest.raises(DataError, match="network 'empty' is empty .*0 of 144 units.*top_k"):
        lp.UnitMapDisplay.from_map(_net(space, [], "empty"))
    with pytest.raises(TypeError, match="must be a UnitMap, a TaskMap, a Network or an array"):
        lp.UnitMapDisplay.from_map("z.nii.gz")
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        lp.UnitMapDisplay.from_map(zmap, threshold=-1)
    with pytest.raises(DataError, match=r"must have shape \(144,\) to match units"):
        lp.UnitMapDisplay.from_map(np.ones(3), units=space)


def test_unit_map_of_an_array_with_units_and_several_components():
    space = UnitSpace({"layers.0.resid_post": 8, "layers.0.mlp_out": 8, "layers.1.mlp_out": 8})
    disp = lp.plot_unit_map(np.arange(24.0) - 12, units=space, threshold=1)
    labels = [t.get_text() for t in disp.ax_.get_yticklabels()]
    assert labels == ["0 resid_post", "0 mlp_out", "1 mlp_out"]
    assert disp.colorbar_.ax.get_ylabel() == "value"


# ------------------------------------------------------------------ mosaic
def test_mosaic_one_panel_per_layer_shared_scale(zmap):
    disp = lp.plot_mosaic(zmap, threshold=1.0)
    assert len(disp.images_) == N_LAYERS
    assert {im.get_clim() for im in disp.images_} == {(-5.0, 5.0)}
    assert [a.get_title() for a in disp.axes_.ravel()[:N_LAYERS]] == \
        [f"layer {k}" for k in range(N_LAYERS)]
    first = disp.images_[0].get_array()
    assert first.shape == (6, 6)
    # unit index 7 of layer 0 sits at row 7 // 6, column 7 % 6 (read left to right, top down)
    assert first[1, 1] == pytest.approx(zmap.values[7])
    assert disp.colorbar_.ax.get_ylabel() == "z" and disp.bounding_ax_ is None


def test_mosaic_in_a_bounding_axes_and_given_axes(zmap):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    disp = lp.MosaicDisplay.from_map(zmap).plot(ax=ax, ncols=2)
    assert disp.bounding_ax_ is ax and disp.axes_.shape == (2, 2)
    fig, axes = plt.subplots(1, 4)
    disp = lp.MosaicDisplay.from_map(zmap).plot(ax=axes, colorbar=False)
    assert list(disp.axes_.ravel()) == list(axes) and disp.colorbar_ is None
    with pytest.raises(ValueError, match="ax holds 2 Axes but 4 panels are drawn"):
        lp.MosaicDisplay.from_map(zmap).plot(ax=axes[:2])


def test_mosaic_and_glass_empty_after_threshold_have_a_note(zmap):
    for disp in (lp.plot_mosaic(zmap, threshold=50), lp.plot_glass_network(zmap, threshold=50)):
        assert "no unit reaches |z| \u2265 50" in disp.note_.get_text()
        assert all(im.get_array().mask.all() for im in disp.images_)


# ------------------------------------------------------------------- glass
def test_glass_network_projects_the_strongest_unit_with_its_sign(space):
    values = np.zeros(space.n_units)
    values[SIZE * 2 + 7] = -6.0  # layer 2, unit 7 -> grid (1, 1)
    values[SIZE * 1 + 7] = 4.0   # layer 1, same grid cell, weaker
    disp = lp.plot_glass_network(UnitMap(values, space), threshold=1.0)
    over_layers, over_rows, over_cols = (im.get_array() for im in disp.images_)
    assert over_layers.shape == (6, 6) and over_layers[1, 1] == -6.0
    assert over_layers.count() == 1
    assert over_rows.shape == (N_LAYERS, 6) and over_rows[2, 1] == -6.0 and over_rows[1, 1] == 4
    assert over_cols.shape == (N_LAYERS, 6) and over_cols[2, 1] == -6.0
    assert [a.get_title() for a in disp.axes_.ravel()] == \
        ["max over layers", "max over grid rows", "max over grid columns"]
    assert [t.get_text() for t in disp.axes_.ravel()[1].get_yticklabels()] == ["0", "1", "2", "3"]
    absolute = lp.plot_glass_network(UnitMap(values, space), threshold=1.0, plot_abs=True)
    assert absolute.images_[0].get_array()[1, 1] == 6.0
    assert absolute.colorbar_.ax.get_ylabel() == "|z|"


# ---------------------------------------------------------------- networks
def test_network_overlay_colours_each_network_and_the_overlap(space):
    a = _net(space, [0, 1, 2, 40], "a")
    b = _net(space, [2, 3, 41], "b")
    disp = lp.plot_network_overlay({"a": a, "b": b})
    rgba = disp.image_.get_array()
    assert rgba.shape == (N_LAYERS, SIZE, 4)
    np.testing.assert_allclose(rgba[0, 2], [0, 0, 0, 1])            # in both: black
    np.testing.assert_allclose(rgba[0, 0], disp.colors_[0])         # only in a
    np.testing.assert_allclose(rgba[1, 5], disp.colors_[1])         # unit 41 = layer 1, index 5
    texts = [t.get_text() for t in disp.legend_.get_texts()]
    assert texts == ["a: 4 (3 only here)", "b: 3 (2 only here)", "in 2 or more: 1"]
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["0", "1", "2", "3"]
    row = disp.counts.set_index("label").loc["overlap (2 or more)"]
    assert row["n_units"] == 1
    one = lp.plot_network_overlay(a, legend=False)
    assert one.legend_ is None and one.ax_.get_title() == "a"


def test_network_plots_reject_wrong_inputs(space):
    other = UnitSpace({f"layers.{k}.resid_post": SIZE for k in range(N_LAYERS + 1)})
    a = _net(space, [0, 1], "a")
    b = _net(other, [0, 1], "b")
    with pytest.raises(DataError, match="'a' and 'b' are over different units.*another model"):
        lp.plot_network_overlay([a, b])
    with pytest.raises(DataError, match="Every network is empty .*'x', 'y': 0 units"):
        lp.plot_layer_profile({"x": _net(space, [], "x"), "y": _net(space, [], "y")})
    with pytest.raises(DataError, match=r"The network is empty \('x': 0 units\)"):
        lp.plot_network_overlay(_net(space, [], "x"))
    with pytest.raises(DataError, match="networks is empty"):
        lp.plot_network_overlay([])
    with pytest.raises(TypeError, match="Every network must be a Network, but 'x' is ndarray"):
        lp.plot_layer_profile({"x": np.ones(3)})
    with pytest.raises(DataError, match="has no UnitSpace"):
        lp.plot_layer_profile(Network([1, 0, 1]))
    with pytest.raises(ValueError, match="colors has 1 colours for 2 networks"):
        lp.plot_network_overlay([a, _net(space, [3], "c")], colors=["red"])


def test_layer_profile_counts_per_layer_and_overlap(space):
    a = _net(space, [0, 1, 2, SIZE + 1, 3 * SIZE], "a")
    b = _net(space, [2, 3 * SIZE, 3 * SIZE + 1], "b")
    disp = lp.plot_layer_profile([a, b])
    assert list(disp.lines_) == ["a", "b", "in 2 or more"]
    np.testing.assert_array_equal(disp.lines_["a"].get_ydata(), [3, 1, 0, 1])
    np.testing.assert_array_equal(disp.lines_["b"].get_ydata(), [1, 0, 0, 2])
    np.testing.assert_array_equal(disp.lines_["in 2 or more"].get_ydata(), [1, 0, 0, 1])
    assert disp.ax_.get_ylabel() == f"units in the network (of {SIZE})"
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == ["0", "1", "2", "3"]
    frac = lp.plot_layer_profile(a, normalize=True)
    np.testing.assert_allclose(frac.lines_["a"].get_ydata(), np.array([3, 1, 0, 1]) / SIZE)
    assert frac.ax_.get_ylabel() == "fraction of the layer's units"


def test_overlap_display_from_matrix_table_and_frames(space):
    rng = np.random.default_rng(0)
    base = rng.random(space.n_units) < 0.3
    nets = [Network(base, space, label="a"), Network(base | (rng.random(space.n_units) < 0.05),
                                                     space, label="b"),
            Network(rng.random(space.n_units) < 0.3, space, label="c")]
    om = overlap_test_matrix(nets, n_permutations=2000, random_state=0)
    disp = lp.plot_overlap(om)
    assert disp.image_.get_array().mask[0, 0] and not disp.image_.get_array().mask[0, 1]
    assert "***" in disp.texts_[0, 1].get_text()          # a and b overlap far beyond chance
    assert disp.texts_[0, 0] is None
    assert disp.colorbar_.ax.get_ylabel() == "Dice" and disp.ax_.get_title() == "overlap (Dice)"
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == ["a", "b", "c"]
    assert "layer-matched random networks" in disp.ax_.get_xlabel()
    from_table = lp.plot_overlap(om.to_frame())
    np.testing.assert_allclose(from_table.image_.get_array().filled(0),
                               disp.image_.get_array().filled(0))
    plain = lp.plot_overlap(om.observed)                   # no p values: no marks, no note
    assert "*" not in plain.texts_[0, 1].get_text() and plain.ax_.get_xlabel() == ""


def test_overlap_display_rejects_wrong_inputs():
    with pytest.raises(DataError, match=r"square table .*shape \(2, 3\)"):
        lp.OverlapDisplay.from_frames(pd.DataFrame(np.ones((2, 3))))
    obs = pd.DataFrame(np.eye(2), index=["a", "b"], columns=["a", "b"])
    with pytest.raises(DataError, match="p_value has labels"):
        lp.OverlapDisplay.from_frames(obs, pd.DataFrame(np.eye(2), index=["a", "c"],
                                                        columns=["a", "c"]))
    with pytest.raises(TypeError, match="must be an OverlapMatrix"):
        lp.OverlapDisplay.from_overlap(obs)
    with pytest.raises(DataError, match="lacks the column 'p_value'"):
        lp.OverlapDisplay.from_table(pd.DataFrame({"a": ["x"], "b": ["y"], "observed": [1]}))


def test_repeatability_display_within_against_across():
    rows = []
    for sa, sb in [("run-1", "run-2"), ("run-1", "run-3"), ("run-2", "run-3")]:
        for ta in "xy":
            for tb in "xy":
                rows.append({"split_a": sa, "split_b": sb, "task_a": ta, "task_b": tb,
                             "same_task": ta == tb, "pearson": 0.8 if ta == tb else 0.1,
                             "dice": 0.5 if ta == tb else 0.05, "icc": 0.7})
    disp = lp.plot_repeatability(pd.DataFrame(rows))
    np.testing.assert_allclose(disp.within_.get_ydata(), [0.8, 0.8])
    np.testing.assert_allclose(disp.across_.get_ydata(), [0.1, 0.1])
    assert disp.ax_.get_ylabel() == "Pearson r of the z maps"
    with pytest.raises(ValueError, match="metric.*Did you mean 'dice'"):
        lp.plot_repeatability(pd.DataFrame(rows), metric="dise")
    with pytest.raises(DataError, match="no rows"):
        lp.plot_repeatability(pd.DataFrame(rows).iloc[:0])


# ------------------------------------------------------- design, decoding
def test_design_matrix_display():
    from llmfmri.design import make_design_matrix

    ev = pd.DataFrame({"onset": [0, 10, 20], "duration": 10, "trial_type": ["a", "b", "a"]})
    dm = make_design_matrix(ev, n_frames=30)
    disp = lp.plot_design_matrix(dm, title="run 1")
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == list(dm.columns)
    assert disp.image_.get_array().shape == (30, dm.shape[1])
    assert np.abs(disp.image_.get_array()).max() <= 1.0
    assert disp.ax_.get_ylabel() == "frame (token)" and disp.ax_.get_title() == "run 1"
    with pytest.raises(DesignMatrixError, match="must be a pandas DataFrame"):
        lp.plot_design_matrix(dm.to_numpy())
    with pytest.raises(DesignMatrixError, match="NaN or infinite"):
        lp.plot_design_matrix(dm.assign(a=np.nan))
    with pytest.raises(DesignMatrixError, match="is empty"):
        lp.plot_design_matrix(dm.iloc[:0])


def _result():
    conf = pd.DataFrame([[5, 1], [0, 6]], index=pd.Index(["x", "y"], name="true"),
                        columns=pd.Index(["x", "y"], name="predicted"))
    return DecodingResult(method="identification", scoring="accuracy", score=11 / 12,
                          accuracy=11 / 12, chance=0.5, null=np.full(99, 0.5), p_value=0.01,
                          cv_scores=pd.Series([1.0, 0.8]), predictions=pd.DataFrame(),
                          confusion=conf, classes=["x", "y"])


def test_confusion_matrix_display():
    disp = lp.plot_confusion_matrix(_result())
    assert disp.ax_.get_title() == ("identification of held-out blocks\naccuracy 0.92, chance "
                                    "0.50, permutation p = 0.01")
    assert [[t.get_text() for t in row] for row in disp.texts_] == [["5", "1"], ["0", "6"]]
    assert disp.ax_.get_ylabel() == "presented" and disp.ax_.get_xlabel() == "predicted"
    assert disp.colorbar_.ax.get_ylabel() == "count"
    norm = lp.plot_confusion_matrix(_result().confusion, normalize=True)
    assert norm.texts_[0][0].get_text() == "0.83" and "accuracy 0.92" in norm.ax_.get_title()
    with pytest.raises(DataError, match="confusion is empty"):
        lp.ConfusionMatrixDisplay.from_frame(pd.DataFrame())
    with pytest.raises(TypeError, match="must be a DecodingResult"):
        lp.ConfusionMatrixDisplay.from_result(_result().confusion)


# ------------------------------------------------------------- time course
class _CountingRecording(SyntheticRecording):
    """Records which frames and columns were read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []

    def n_frames(self, run):
        return self._frames[run].shape[0]

    def frames(self, run):
        outer = self

        class _Lazy:
            def get_orthogonal_selection(self, selection):
                rows, cols = selection
                outer.reads.append((rows, np.asarray(cols).tolist()))
                return outer._frames[run][rows][:, cols]

        return _Lazy()


def test_time_course_reads_only_its_columns_and_shades_blocks():
    rec = _CountingRecording(0, n_runs=2, tasks=("a",), effects={"a": [3, 4]}, amplitude=3.0)
    net = Network(np.isin(np.arange(rec.units.n_units), [3, 4]), rec.units, label="net-a")
    disp = lp.plot_time_course(rec, {"unit 5": 5, "network a": net}, run=2, frames=60)
    assert rec.reads == [(slice(0, 60), [3, 4, 5])]
    assert list(disp.lines_) == ["unit 5", "network a"]
    assert len(disp.axes_.ravel()) == 2
    assert disp.traces.shape == (60, 2)
    np.testing.assert_allclose(disp.traces.mean(), 0, atol=1e-12)     # standardised
    ev = rec.events(2).iloc[:60]
    n_blocks = int((ev["trial_type"] != ev["trial_type"].shift()).sum())
    assert len(disp.blocks) == n_blocks and len(disp.spans_) == 2 * n_blocks
    assert list(disp.blocks["condition"]) == ["control", "a", "control"]
    assert [t.get_text() for t in disp.legend_.get_texts()] == list(dict.fromkeys(
        disp.blocks["condition"]))
    assert disp.axes_.ravel()[-1].get_xlabel() == "frame (token)"
    # the network's trace follows its block: higher in "a" blocks than elsewhere
    in_a = ev["trial_type"].to_numpy() == "a"
    trace = disp.traces["network a"].to_numpy()
    assert trace[in_a].mean() > trace[~in_a].mean() + 1


def test_time_course_default_label_and_from_array():
    rec = SyntheticRecording(1, n_runs=1, tasks=("a",))
    disp = lp.plot_time_course(rec, 33, standardize=False)
    assert list(disp.lines_) == ["layer 1 resid_post, unit 1"]
    assert disp.axes_.ravel()[0].get_ylabel() == "activation"
    arr = lp.TimeCourseDisplay.from_array(np.arange(10.0), pd.DataFrame(
        {"onset": [0, 5], "duration": [5, 5], "trial_type": ["control", "a"]})).plot()
    assert arr.blocks[["start", "stop"]].to_numpy().tolist() == [[0, 5], [5, 10]]
    assert arr.blocks["role"].tolist() == ["control", "task"]


def test_time_course_rejects_wrong_inputs():
    rec = SyntheticRecording(2, n_runs=1, tasks=("a",))
    other = UnitSpace({"layers.0.resid_post": 8})
    with pytest.raises(DataError, match="network 'x' and the recording's units are over "
                                        "different units"):
        lp.plot_time_course(rec, Network(np.ones(8, bool), other, label="x"))
    with pytest.raises(DataError, match="network 'e' is empty"):
        lp.plot_time_course(rec, Network(np.zeros(rec.units.n_units, bool), rec.units,
                                         label="e"))
    with pytest.raises(DataError, match=r"columns in \[0, 128\), but got \[500\]"):
        lp.plot_time_course(rec, 500)
    with pytest.raises(ValueError, match=r"run 7 is not in the recording; runs: \[1\]"):
        lp.plot_time_course(rec, 1, run=7)

    class _NoFrames:  # e.g. llmfmri.reports.RecordingFolder: events and units, no frames
        units, runs, events = rec.units, [1], rec.events

    with pytest.raises(TypeError, match="_NoFrames has neither; open it with "
                                        "llmfmri.load_recording"):
        lp.plot_time_course(_NoFrames(), 1)
    with pytest.raises(DataError, match="events lacks the column 'trial_type'"):
        lp.TimeCourseDisplay.from_array(np.ones(4), pd.DataFrame({"onset": [0]}))
    with pytest.raises(DataError, match="NaN or infinite"):
        lp.TimeCourseDisplay.from_array([1.0, np.nan], pd.DataFrame(
            {"onset": [0], "trial_type": ["a"]}))


# -------------------------------------------------------- null calibration
def _null_table():
    rows = []
    for split in range(20):
        rows.append({"split": split, "inference": "prompt", "correction": "fdr",
                     "n_units": 15 if split == 3 else 0, "declared": split == 3})
        rows.append({"split": split, "inference": "token", "correction": "fdr",
                     "n_units": 100, "declared": True})
    return pd.DataFrame(rows)


def test_null_calibration_display(tmp_path):
    disp = lp.plot_null_calibration(_null_table())
    assert [b.get_height() for b in disp.bars_] == [pytest.approx(0.05), 1.0]
    assert [t.get_text() for t in disp.texts_] == ["1 / 20", "20 / 20"]
    assert disp.nominal_line_.get_ydata()[0] == 0.05
    labels = [t.get_text() for t in disp.ax_.get_xticklabels()]
    assert labels == ["prompt\n(fdr)", "token\n(fdr)"]
    low, high = lp._null.wilson_interval(1, 20)
    assert (round(low, 4), round(high, 4)) == (0.0089, 0.2361)
    path = tmp_path / "null.tsv"
    _null_table().to_csv(path, sep="\t", index=False)
    again = lp.NullCalibrationDisplay.from_table(path)
    pd.testing.assert_frame_equal(again.table, disp.table)
    with pytest.raises(DataError, match="lacks the column 'declared'"):
        lp.plot_null_calibration(_null_table().drop(columns="declared"))
    with pytest.raises(DataError, match="no rows"):
        lp.plot_null_calibration(_null_table().iloc[:0])
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\]"):
        lp.plot_null_calibration(_null_table(), alpha=0)


# ------------------------------------------------------------- multifractal
def test_multifractal_displays_and_the_old_functions():
    import llmfmri.multifractal as mf

    spectra = [mf.multifractal_spectrum(mf.make_power_law_network([1.5] * 20)),
               mf.multifractal_spectrum(mf.make_power_law_network([1.0] * 20 + [2.0] * 20))]
    disp = lp.plot_spectra(spectra, labels=["mono", "two"])
    assert isinstance(disp, lp.SpectrumDisplay) and len(disp.lines_) == 2
    assert [t.get_text() for t in disp.legend_.get_texts()] == ["mono", "two"]
    ax = mf.plot_spectra(spectra)                      # the old function returns the Axes
    assert len(ax.lines) == 4 and ax.get_xlabel() == r"$\alpha$"
    assert spectra[0].plot().get_ylabel() == r"$f(\alpha)$"
    table = pd.DataFrame({"step": [0, 1, 10, 100], "alpha0": [2.0, 1.9, 1.7, 1.6],
                          "width": [1.0, 1.1, 1.3, 1.2], "emergence": [0, 0.1, 0.2, 0.3],
                          "val_loss": [5.0, 4.0, 3.5, 3.2]})
    em = lp.plot_emergence(table, title="E(t)")
    assert isinstance(em, lp.EmergenceDisplay) and em.loss_ax_ is not None
    assert [a.get_ylabel() for a in em.axes_] == [r"$\alpha_0$", "width $w$", "emergence $E(t)$"]
    fig = mf.plot_emergence(table)                     # the old function returns the Figure
    assert len(fig.axes) == 4


# ------------------------------------------------------------------ nilearn
def test_nifti_maps_show_in_nilearn_without_a_brain(space, zmap, tmp_path):
    """Our NIfTI maps open in nilearn's plot_stat_map and plot_img with no background."""
    pytest.importorskip("nilearn")
    from nilearn import plotting as nplt

    img = zmap.to_nifti(tmp_path / "z.nii.gz")
    shown = []
    for display in (
        nplt.plot_stat_map(img, bg_img=None, display_mode="z", cut_coords=[0, 1, 2, 3],
                           threshold=1.0, colorbar=True, title="a - b"),
        nplt.plot_img(img, display_mode="z", cut_coords=[1, 2], cmap="gray"),
        nplt.plot_stat_map(str(tmp_path / "z.nii.gz"), bg_img=None, display_mode="ortho",
                           cut_coords=(2, 2, 2)),
    ):
        assert display.frame_axes.figure is not None
        for axes in display.axes.values():
            for im in axes.ax.get_images():
                data = np.ma.masked_invalid(np.ma.asarray(im.get_array()))
                shown.append(data.count() > 0 and np.abs(data.compressed()).max() > 0)
        display.close()
    assert shown and any(shown)


def _behaviour(n_random=5):
    rows = [("intact", 0, "perplexity", "english", 20.0, 18.0, 23.0),
            ("lesion", 0, "perplexity", "english", 950.0, 700.0, 1300.0),
            ("intact", 0, "perplexity", "code", 3.0, 2.5, 3.5),
            ("lesion", 0, "perplexity", "code", 4.0, 3.0, 5.0),
            ("intact", 0, "accuracy", "capitals", 0.8, 0.6, 0.9),
            ("lesion", 0, "accuracy", "capitals", 0.1, 0.02, 0.3),
            ("bottom", 0, "perplexity", "english", 20.5, 18.0, 23.0)]
    for k in range(n_random):
        rows += [("random", k, "perplexity", "english", 21.0 + k, 19.0, 25.0),
                 ("random", k, "perplexity", "code", 3.1, 2.6, 3.6),
                 ("random", k, "accuracy", "capitals", 0.7 + 0.01 * k, 0.5, 0.9)]
    return pd.DataFrame(rows, columns=["condition", "draw", "measure", "set", "value",
                                       "ci_low", "ci_high"]).assign(subset="all")


def test_lesion_effect_display(tmp_path):
    table = _behaviour()
    disp = lp.plot_lesion_effect(table, label="language top 1 %")
    assert disp.controls == ["bottom", "random"]
    assert [ax.get_ylabel() for ax in disp.axes_] == ["accuracy", "perplexity"]
    assert disp.axes_[1].get_yscale() == "log" and disp.axes_[0].get_yscale() == "linear"
    # every draw is a point, at its value
    pts = disp.artists_[("perplexity", "random")].get_offsets()
    assert len(pts) == 10 and sorted(pts[:, 1]) == sorted(
        table.query("condition == 'random' and measure == 'perplexity'")["value"])
    lesioned = disp.artists_[("perplexity", "lesion")].get_offsets()[:, 1]
    assert sorted(lesioned) == [4.0, 950.0]
    labels = [t.get_text() for t in disp.axes_[0].get_legend().get_texts()]
    assert labels == ["intact", "language top 1 %", "bottom (1 draw)", "random (5 draws)"]
    assert disp.axes_[0].get_title().startswith("behaviour under the lesion")
    # from a TSV, one measure and set chosen; subsets other than "all" are left out
    path = tmp_path / "x-behaviour.tsv"
    pd.concat([table, table.assign(subset="first", value=1e9)]).to_csv(path, sep="\t",
                                                                       index=False)
    one = lp.LesionEffectDisplay.from_table(path, measures="perplexity", sets=["english"])
    assert set(one.table["set"]) == {"english"} and one.table["value"].max() < 1e9
    one.plot()
    assert len(one.axes_) == 1
    # and from a study object (anything with a behaviour table)
    study = type("Study", (), {"behaviour": table, "lesion": type("L", (), {"label": "core"})()})
    assert lp.LesionEffectDisplay.from_study(study).label == "core"


def test_lesion_effect_display_rejects_wrong_inputs():
    with pytest.raises(DataError, match="value"):
        lp.plot_lesion_effect(pd.DataFrame({"condition": ["lesion"], "set": ["a"],
                                            "measure": ["perplexity"]}))
    with pytest.raises(DataError, match="no rows"):
        lp.plot_lesion_effect(_behaviour().iloc[:0])
    with pytest.raises(DataError, match="no 'lesion' condition"):
        lp.plot_lesion_effect(_behaviour().query("condition != 'lesion'"))
    with pytest.raises(DataError, match=r"sets \['french'\] are not in the table"):
        lp.plot_lesion_effect(_behaviour(), sets=["french"])
    with pytest.raises(ValueError, match="expected 2 axes"):
        lp.LesionEffectDisplay.from_table(_behaviour()).plot(axes=[None])
