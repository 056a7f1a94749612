"""What several commands share: the model options and the lesion summary they print.

Not a command (not in :data:`llmfmri.commands.COMMANDS`); imports argparse-level
things only, like the command modules.
"""

__all__ = ["MATRIX_KINDS", "add_model_arguments", "print_lesion_summary"]

#: llmfmri.lesions.MATRIX_KINDS, listed here so that parsers need not import the library
#: (tests/test_weight_lesions_more.py checks that they agree)
MATRIX_KINDS = ("q", "k", "v", "o", "mlp_gate", "mlp_in", "mlp_out")


def add_model_arguments(parser):
    """``--model``, ``--revision`` and ``--device`` (see :func:`llmfmri.load_model`)."""
    parser.add_argument("--model", default=None,
                        help="Hugging Face id or local directory (default: the default model)")
    parser.add_argument("--revision", default=None,
                        help="a Hub revision (branch, tag or commit) of --model")
    parser.add_argument("--device", default="auto",
                        help="auto (default: CUDA when present, else CPU), cpu, cuda:0...")


def print_lesion_summary(study):
    """Print a lesion study's whole-set comparisons with the controls, and what they mean."""
    cols = ["measure", "set", "subset", "control", "intact", "lesion", "effect",
            "control_mean", "control_sd", "p_empirical"]
    table = study.summary[study.summary["subset"] == "all"][cols]
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("(intact, lesion: the measure; effect = lesion - intact; control_mean, control_sd: "
          "the same effect under the control draws; p_empirical = (1 + controls at least as "
          "extreme) / (1 + n_controls))")
