import numpy as np
import pytest

from llmfmri.units import SiteError, UnitSpace, format_site, parse_site
from llmfmri.units._space import fold_size


@pytest.mark.parametrize("n, grid", [(768, (32, 24)), (576, (24, 24)), (1536, (48, 32)),
                                     (7, (3, 3)), (1, (1, 1))])
def test_fold_size(n, grid):
    assert fold_size(n) == grid
    assert grid[0] * grid[1] >= n


def test_parse_and_format_sites():
    assert parse_site("layers.12.attn_out") == (12, "attn_out")
    assert format_site(*parse_site("embed")) == "embed"
    with pytest.raises(SiteError, match="Did you mean 'layers.0.resid_post'"):
        parse_site("layer.0.resid_post")
    with pytest.raises(SiteError, match="Unknown component 'resid_pst'.*Did you mean 'resid_post'"):
        parse_site("layers.0.resid_pst")


def test_unit_space_layout_and_roundtrip(tmp_path):
    space = UnitSpace({"layers.1.resid_post": 6, "layers.0.resid_post": 6, "layers.0.mlp_act": 12},
                      indices={"layers.0.mlp_act": [0, 5, 11]})
    # sites ordered by component, then layer
    assert space.sites == ["layers.0.resid_post", "layers.1.resid_post", "layers.0.mlp_act"]
    assert space.n_units == 15
    assert space.shape == (4, 3, 3)
    values = np.arange(15, dtype=float)
    vol = space.to_volume(values, fill=np.nan)
    np.testing.assert_array_equal(space.from_volume(vol), values)
    assert np.isnan(vol).sum() == 4 * 3 * 3 - 15
    frames = np.random.default_rng(0).normal(size=(5, 15))
    np.testing.assert_array_equal(space.from_volume(space.to_volume(frames)), frames)
    space.to_tsv(tmp_path / "units.tsv")
    assert UnitSpace.from_tsv(tmp_path / "units.tsv") == space
    assert space.select(components="mlp_act").tolist() == [12, 13, 14]
    sub = space.subset([0, 13])
    assert sub.n_units == 2 and sub.table["index"].tolist() == [0, 5]


def test_unit_space_nifti():
    space = UnitSpace({"layers.0.resid_post": 8})
    img = space.to_nifti(np.arange(8.0), intent="z score", description="z map")
    assert img.shape == (4, 2, 1)
    assert img.header.get_intent()[0] == "z score"
    np.testing.assert_array_equal(space.from_volume(np.asanyarray(img.dataobj)), np.arange(8.0))
    img4 = space.to_nifti(np.ones((3, 8), dtype=np.float32))
    assert img4.shape == (4, 2, 1, 3) and img4.header.get_zooms()[3] == 1.0


def test_unit_space_errors():
    with pytest.raises(ValueError, match="non-empty mapping"):
        UnitSpace({})
    space = UnitSpace({"layers.0.resid_post": 4})
    with pytest.raises(ValueError, match=r"shape \(n_units,\).*got shape \(3,\)"):
        space.to_volume(np.zeros(3))
    with pytest.raises(SiteError, match="Did you mean 'layers.0.resid_post'"):
        space.select(sites="layers.0.resid_pst")
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        UnitSpace({"layers.0.resid_post": 4}, indices={"layers.0.resid_post": [4]})
    with pytest.raises(SiteError, match="not among the recorded sites"):
        UnitSpace({"layers.0.resid_post": 4}, indices={"layers.1.resid_post": [0]})
