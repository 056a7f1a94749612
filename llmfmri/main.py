"""The main job (``llmfmri run``): record a paradigm on a model and analyse it."""
