"""NeuroMFA core: spectra of networks whose answer is known, by hand and by construction.

All numpy; no model. Tolerances: float64 arithmetic on exact inputs is checked to
1e-9; the synthetic constructions carry discretisation error (integer radii, the
"1 +" in N_i(r) = 1 + #neighbours, rounding to integers), and their tolerances are
the measured error with a margin, stated at each test.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from llmfmri.multifractal import (DEFAULT_Q, MultifractalError, degree_of_emergence,
                                  legendre_spectrum, make_power_law_network, mass_profiles,
                                  multifractal_spectrum)
from llmfmri.multifractal._spectrum import _log_partition

LOG2 = np.log2


# ---------------------------------------------------------------- worked by hand
# Two nodes, radii {2, 4, 8} (D = 8):
#   node A: neighbours at distances 2, 4, 8  ->  N_A(r) = 2, 3, 4
#   node B: neighbours at distances 8, 8, 8  ->  N_B(r) = 1, 1, 4
# x = ln(r/D) = (-2 ln2, -ln2, 0) is equally spaced, so the OLS slope over the three
# points is (y(8) - y(2)) / (2 ln 2), with Z_q(8) = 2 and Z_q(2) = (1/2)^q + (1/4)^q:
#   tau(q) = (1 - log2(2^-q + 4^-q)) / 2
#   tau(-2) = (1 - log2 20)/2, tau(-1) = (1 - log2 6)/2, tau(0) = 0,
#   tau(1) = (3 - log2 3)/2,  tau(2) = (5 - log2 5)/2.
# Central differences on q = -2..2:
#   alpha(0) = (tau(1) - tau(-1))/2 = log2(8)/4 = 3/4, where f(0) = -tau(0) = 0 is the maximum;
#   width = alpha(-2) - alpha(2) = (tau(-1) - tau(-2)) - (tau(2) - tau(1)) = log2(25/18)/2.
HAND_Q = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
HAND_TAU = np.array([(1 - LOG2(20)) / 2, (1 - LOG2(6)) / 2, 0.0, (3 - LOG2(3)) / 2,
                     (5 - LOG2(5)) / 2])
HAND_NODES = [np.array([2.0, 4.0, 8.0]), np.array([8.0, 8.0, 8.0])]


def test_hand_worked_mass_profiles():
    counts, radii, kept, n_edges = mass_profiles(HAND_NODES, min_edges=1)
    np.testing.assert_array_equal(radii, [2, 4, 8])
    np.testing.assert_array_equal(counts, [[2, 3, 4], [1, 1, 4]])
    assert kept.tolist() == [0, 1] and n_edges == 6


def test_hand_worked_spectrum_central():
    spec = multifractal_spectrum(HAND_NODES, q=HAND_Q, min_edges=1)
    np.testing.assert_allclose(spec.tau, HAND_TAU, atol=1e-12)
    np.testing.assert_allclose(spec.tau[[1, 3]], [-0.79248125036, 0.70751874964], atol=1e-10)
    assert spec.alpha0 == pytest.approx(0.75, abs=1e-12)
    assert spec.width == pytest.approx(LOG2(25 / 18) / 2, abs=1e-12)  # 0.2369656...
    assert spec.width == pytest.approx(0.23696560, abs=1e-8)
    # f = q alpha - tau, symmetric here: f(+-1) = -0.0380008, f(+-2) = -0.0760016
    np.testing.assert_allclose(spec.f_alpha, [-0.07600155, -0.03800078, 0, -0.03800078,
                                              -0.07600155], atol=1e-8)


def test_hand_worked_r2_matches_direct_fit():
    spec = multifractal_spectrum(HAND_NODES, q=HAND_Q, min_edges=1)
    x = np.log(np.array([2.0, 4.0, 8.0]) / 8)
    for k, q in enumerate(HAND_Q):
        y = np.log([0.5 ** q + 0.25 ** q, 0.75 ** q + 0.25 ** q, 2.0])
        slope, intercept = np.polyfit(x, y, 1)
        assert spec.tau[k] == pytest.approx(slope, abs=1e-12)
        resid = y - (slope * x + intercept)
        ss_tot = ((y - y.mean()) ** 2).sum()
        expected = 1.0 if ss_tot < 1e-20 else 1 - (resid ** 2).sum() / ss_tot
        assert spec.r2[k] == pytest.approx(expected, abs=1e-9)


def test_hand_worked_spectrum_forward_reference_scheme():
    # alpha_k = tau_k - tau_{k-1}; f_k = q_{k-1} alpha_k - tau_{k-1}: f = 0 at both q = -1
    # and q = 0 (a tie the reference breaks by floating-point noise), width as above.
    spec = multifractal_spectrum(HAND_NODES, q=HAND_Q, min_edges=1, derivative="forward")
    alpha = np.diff(HAND_TAU)
    np.testing.assert_allclose(spec.alpha, alpha, atol=1e-12)
    np.testing.assert_allclose(spec.f_alpha, HAND_Q[:-1] * alpha - HAND_TAU[:-1], atol=1e-12)
    np.testing.assert_allclose(spec.f_alpha[1:3], 0, atol=1e-12)
    assert spec.alpha0 == pytest.approx(alpha[1], abs=1e-9) or \
        spec.alpha0 == pytest.approx(alpha[2], abs=1e-9)
    assert spec.width == pytest.approx(LOG2(25 / 18) / 2, abs=1e-12)


# ---------------------------------------------------------------- known answers
@pytest.mark.parametrize("a", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("jitter", [None, 0])
def test_power_law_exact(a, jitter):
    # N_i(r) = round(r**a) at every integer radius: tau(q) = q a up to the rounding
    # of r**1.5 to integers (measured |alpha - a| = 0.0015 for a = 1.5).
    spec = multifractal_spectrum(make_power_law_network([a] * 8, random_state=jitter))
    np.testing.assert_allclose(spec.tau, DEFAULT_Q * spec.alpha0, atol=1e-9)
    assert spec.alpha0 == pytest.approx(a, abs=0.002)
    assert spec.width < 1e-9
    np.testing.assert_allclose(spec.f_alpha, 0, atol=1e-9)


@pytest.mark.parametrize("a", [1.0, 1.5, 2.0])
def test_power_law_sampled(a):
    # 30 nodes, each 20000 distances drawn with P(d <= r) = (r/D)**a, rounded to integers.
    # Discretisation (the "1 +", rounding at small r) biases alpha by up to 0.06 and
    # leaves a width up to 0.09 (measured: 1.045/0.004, 1.490/0.032, 1.942/0.083).
    nodes = make_power_law_network([a] * 30, n_neighbours=20000, random_state=1)
    spec = multifractal_spectrum(nodes)
    assert spec.alpha0 == pytest.approx(a, abs=0.07)
    assert spec.width < 0.1
    assert spec.alpha.min() > a - 0.1 and spec.alpha.max() < a + 0.1


@pytest.mark.parametrize("a1, a2", [(1.0, 2.0), (1.0, 1.5)])
def test_two_populations_exact(a1, a2):
    # q -> +3 is dominated by the a1 nodes, q -> -3 by the a2 nodes: alpha spans [a1, a2]
    # (measured [0.974, 2.026] and [0.996, 1.503]); with equal populations alpha(0) is
    # the mean exponent.
    spec = multifractal_spectrum(make_power_law_network([a1] * 20 + [a2] * 20))
    assert spec.alpha.min() == pytest.approx(a1, abs=0.05)
    assert spec.alpha.max() == pytest.approx(a2, abs=0.05)
    assert spec.width == pytest.approx(a2 - a1, abs=0.06)
    assert spec.alpha0 == pytest.approx((a1 + a2) / 2, abs=0.005)
    # alpha falls from the a2 end (q = -3) to the a1 end (q = 3); at the very ends the OLS
    # fits overshoot [a1, a2] by up to 0.026 and are not strictly monotone
    assert spec.alpha[0] > spec.alpha0 > spec.alpha[-1]
    assert spec.f_alpha.max() == pytest.approx(0, abs=1e-12)


def test_two_populations_sampled():
    nodes = make_power_law_network([1.0] * 30 + [2.0] * 30, n_neighbours=20000, random_state=2)
    spec = multifractal_spectrum(nodes)
    assert spec.alpha.min() == pytest.approx(1.0, abs=0.06)
    assert spec.alpha.max() == pytest.approx(2.0, abs=0.06)


def test_two_populations_unequal_sizes_shift_alpha0():
    # more a1 nodes -> alpha0 (= the node-average exponent at q = 0) moves toward a1
    few = multifractal_spectrum(make_power_law_network([1.0] * 30 + [2.0] * 10))
    many = multifractal_spectrum(make_power_law_network([1.0] * 10 + [2.0] * 30))
    assert few.alpha0 == pytest.approx(1.25, abs=0.01)
    assert many.alpha0 == pytest.approx(1.75, abs=0.01)


@pytest.mark.parametrize("derivative", ["central", "forward"])
def test_legendre_of_linear_tau(derivative):
    alpha, f, qa = legendre_spectrum(DEFAULT_Q, 1.7 * DEFAULT_Q, derivative=derivative)
    np.testing.assert_allclose(alpha, 1.7)
    np.testing.assert_allclose(f, 0, atol=1e-12)
    assert len(alpha) == (61 if derivative == "central" else 60)


# ---------------------------------------------------------------- inputs and internals
def test_input_formats_agree():
    rng = np.random.default_rng(0)
    rows = [rng.uniform(1, 200, 40) for _ in range(12)]
    ref = multifractal_spectrum(rows)
    dense = np.full((12, 50), np.nan)
    for i, r in enumerate(rows):
        dense[i, :40] = r
    mat = sp.lil_array((12, 12 * 40 + 12))
    for i, r in enumerate(rows):
        mat[i, 12 + i * 40: 12 + (i + 1) * 40] = r
    mat = sp.csr_array(mat)
    mat.resize((mat.shape[1], mat.shape[1]))
    for other in (multifractal_spectrum(dense), multifractal_spectrum(mat)):
        np.testing.assert_allclose(other.tau, ref.tau, atol=1e-12)
        assert other.alpha0 == ref.alpha0 and other.width == ref.width


def test_thresholds_and_rounding_follow_the_reference():
    # kept: 1 < d <= 150 on the raw value, then rounded; 1.2 -> 1, 150.4 dropped
    node = np.array([1.0, 1.2, 2.6, 150.0, 150.4, np.inf, 0.5])
    counts, radii, _, n_edges = mass_profiles([node, node], min_edges=1)
    np.testing.assert_array_equal(radii, [1, 3, 150])
    assert n_edges == 6
    np.testing.assert_array_equal(counts[0], [2, 3, 4])
    counts, radii, _, _ = mass_profiles([node, node], min_edges=1, max_distance=200, decimals=1)
    np.testing.assert_array_equal(radii, [1.2, 2.6, 150.0, 150.4])


def test_min_edges_drops_sparse_nodes():
    rich = np.arange(2.0, 20.0)  # 18 edges
    poor = np.arange(2.0, 12.0)  # 10 edges: not "more than 10"
    _, _, kept, _ = mass_profiles([rich, poor, rich])
    assert kept.tolist() == [0, 2]


def test_log_partition_matches_direct_sum():
    rng = np.random.default_rng(3)
    counts = 1 + np.cumsum(rng.poisson(0.7, (300, 40)), axis=1).astype(float)
    L = np.log(counts) - np.log(counts[:, -1:])
    direct = np.array([np.log(np.exp(q * L).sum(axis=0)) for q in DEFAULT_Q])
    np.testing.assert_allclose(_log_partition(counts, DEFAULT_Q), direct, atol=1e-10)
    c2 = counts + 0.5  # non-integer masses take the general path
    L2 = np.log(c2) - np.log(c2[:, -1:])
    np.testing.assert_allclose(_log_partition(c2, DEFAULT_Q),
                               [np.log(np.exp(q * L2).sum(axis=0)) for q in DEFAULT_Q], atol=1e-10)


def test_path_neighbourhood_by_hand():
    # A->B 2, B->C 3, A->C 10: the shortest path A->C is 5; radii {2, 3, 5}
    m = sp.csr_array((np.array([2.0, 3.0, 10.0]), (np.array([0, 1, 0]), np.array([1, 2, 2]))),
                     shape=(3, 3))
    counts, radii, kept, _ = mass_profiles(m, min_edges=1, neighbourhood="path")
    np.testing.assert_array_equal(radii, [2, 3, 5])
    assert kept.tolist() == [0, 1]
    np.testing.assert_array_equal(counts, [[2, 2, 3], [1, 2, 2]])
    counts, radii, _, _ = mass_profiles(m, min_edges=1, neighbourhood="edge")
    np.testing.assert_array_equal(radii, [2, 3, 10])


def test_emergence_formula():
    e = degree_of_emergence([1.68, 1.55, 1.45], [0.2, 0.3, 0.4])
    assert e[0] == 0
    np.testing.assert_allclose(e[1:], [1.5 * np.log(1.68 / 1.55), 2 * np.log(1.68 / 1.45)])
    # smaller alpha0 and wider spectrum -> larger E
    assert e[2] > e[1] > 0


def test_spectrum_frame_and_repr():
    spec = multifractal_spectrum(HAND_NODES, q=HAND_Q, min_edges=1)
    df = spec.to_frame()
    assert list(df.columns) == ["q", "alpha", "f_alpha", "tau"] and len(df) == 5
    assert "alpha0=0.7500" in repr(spec) and spec.diameter == 8


def test_import_is_light():
    code = ("import sys, llmfmri.multifractal; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- errors
def test_error_all_zero_distances():
    with pytest.raises(MultifractalError, match=r"No edge has a distance in \(1.0, 150.0\].*"
                                                r"all weights zero"):
        multifractal_spectrum([np.full(20, np.inf), np.full(20, np.inf)])


def test_error_no_edge_in_range_reports_scale():
    with pytest.raises(MultifractalError, match=r"span \[500, 900\].*widen"):
        multifractal_spectrum([np.linspace(500, 900, 20)] * 3)


def test_error_too_few_nodes():
    with pytest.raises(MultifractalError, match=r"Too few nodes: 1 node\(s\) of 2.*min_edges=11"):
        multifractal_spectrum([np.arange(2.0, 30.0), np.arange(2.0, 5.0)])


def test_error_too_few_radii():
    with pytest.raises(MultifractalError, match="only 2 distinct rounded distance"):
        multifractal_spectrum([np.array([2.0, 3.0] * 10)] * 3)


def test_error_no_nodes():
    with pytest.raises(MultifractalError, match="no nodes"):
        multifractal_spectrum([])


@pytest.mark.parametrize("kwargs, match", [
    ({"derivative": "centrall"}, r"derivative.*Did you mean 'central'"),
    ({"neighbourhood": "paths"}, r"neighbourhood.*Did you mean 'path'"),
    ({"empty_layers": "warning"}, r"empty_layers.*Did you mean 'warn'"),
    ({"q": [0, 1]}, "at least 3"),
    ({"q": [1, 0, 2]}, "strictly increasing"),
    ({"max_distance": 1.0}, "larger than min_distance"),
    ({"min_edges": 0}, "min_edges must be at least 1"),
])
def test_error_bad_options(kwargs, match):
    with pytest.raises(MultifractalError, match=match):
        multifractal_spectrum(make_power_law_network([1.0] * 3, max_distance=20), **kwargs)


def test_error_bad_input_types():
    with pytest.raises(MultifractalError, match=r"shape \(n_nodes, n_neighbours\)"):
        multifractal_spectrum(np.ones(5))
    with pytest.raises(MultifractalError, match="must be square"):
        multifractal_spectrum(sp.csr_array(np.ones((2, 3))))
    with pytest.raises(MultifractalError, match="needs a graph"):
        multifractal_spectrum([np.arange(2.0, 20)] * 3, neighbourhood="path")


@pytest.mark.parametrize("alpha0, width, match", [
    ([1.5, 1.4], [0.0, 0.3], "width w\\(t0\\) must be positive"),
    ([1.5, -1.4], [0.2, 0.3], "alpha0 must be positive"),
    ([1.5, 1.4], [0.2], "same length"),
    ([], [], "empty"),
])
def test_error_emergence(alpha0, width, match):
    with pytest.raises(MultifractalError, match=match):
        degree_of_emergence(alpha0, width)


def test_error_synthetic_inputs():
    with pytest.raises(MultifractalError, match="positive numbers"):
        make_power_law_network([1.0, -1.0])
    with pytest.raises(MultifractalError, match="needs .* distances"):
        make_power_law_network([4.0] * 10)
