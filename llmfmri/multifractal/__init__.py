"""NeuroMFA: multifractal analysis of neuron interaction networks across training.

Neurons are nodes, weights between consecutive layers of neurons are edges at
distance ``1/|w|`` (Xiao et al., ICLR 2025, arXiv 2402.09099; RESEARCH.md section 5).

* :func:`neuron_network` / :func:`neuron_networks` -- sample networks from a model's weights
  (GPT-2, OPT, GPT-NeoX and LLaMA families, or weight matrices given directly);
* :func:`multifractal_spectrum` -- tau(q), alpha, f(alpha), alpha0 and width of a network;
* :func:`degree_of_emergence` -- E(t) from alpha0 and width over checkpoints;
* :class:`NeuroMFA` -- all of it over a series of checkpoints, with plots;
* :func:`make_power_law_network` -- synthetic networks whose spectrum is known.

Importing this package imports neither torch nor matplotlib.
"""

from ._emergence import degree_of_emergence
from ._network import (EDGE_KINDS, NODE_GROUPS, MultifractalWarning, NeuronNetwork,
                       neuron_network, neuron_networks)
from ._plotting import plot_emergence, plot_spectra
from ._series import NeuroMFA, read_trajectory, resolve_checkpoints
from ._spectrum import (DEFAULT_Q, MultifractalError, MultifractalSpectrum, legendre_spectrum,
                        mass_profiles, multifractal_spectrum)
from ._synthetic import make_power_law_network

__all__ = [
    "NeuroMFA",
    "NeuronNetwork",
    "MultifractalSpectrum",
    "MultifractalError",
    "MultifractalWarning",
    "neuron_network",
    "neuron_networks",
    "multifractal_spectrum",
    "mass_profiles",
    "legendre_spectrum",
    "degree_of_emergence",
    "make_power_law_network",
    "plot_spectra",
    "plot_emergence",
    "read_trajectory",
    "resolve_checkpoints",
    "DEFAULT_Q",
    "EDGE_KINDS",
    "NODE_GROUPS",
]
