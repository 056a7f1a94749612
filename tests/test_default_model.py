"""Integration: the real default model (SmolLM2-135M-Instruct) from the data home."""

import numpy as np
import pytest
import torch

from llmfmri.models import get_adapter

pytestmark = pytest.mark.integration

PARAGRAPH = (
    "The sun rose slowly over the quiet village. Children walked to school along the river, "
    "and the baker opened his shop early, filling the street with the smell of fresh bread. "
    "By noon the market was crowded with people buying vegetables, fish and flowers."
)
# Measured on 2026-11-23 (CPU, float32): perplexity 27.3 on PARAGRAPH, 1989 on its shuffled
# tokens (seed 0). The bounds leave room for BLAS differences, not for a broken model.
PPL_BOUND = 40.0


def perplexity(model, ids):
    with torch.no_grad():
        return float(model(ids, labels=ids).loss.exp())


def test_default_model_is_smollm2(default_model):
    cfg = default_model.config
    assert cfg.model_type == "llama" and cfg.num_hidden_layers == 30 and cfg.hidden_size == 576
    adapter = get_adapter(default_model)
    assert adapter.d_mlp == 1536
    assert default_model.llmfmri_info["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "quantised" in default_model.llmfmri_info["weights"]


def test_perplexity_is_low_on_english_and_high_on_shuffled_tokens(default_model):
    tok = default_model.tokenizer
    ids = tok(PARAGRAPH, return_tensors="pt").input_ids
    ppl = perplexity(default_model, ids)
    g = torch.Generator().manual_seed(0)
    shuffled = torch.cat([ids[:, :1], ids[:, 1:][:, torch.randperm(ids.shape[1] - 1, generator=g)]], 1)
    ppl_shuffled = perplexity(default_model, shuffled)
    assert ppl < PPL_BOUND
    assert ppl_shuffled > 20 * ppl


def test_recording_default_model_matches_hidden_states(default_model, tmp_path):
    from llmfmri.paradigm import load_paradigm
    from llmfmri.recording import record

    par = load_paradigm({
        "schema_version": 1, "name": "check",
        "conditions": {"control": {"role": "control", "prompts": ["Tell me about the sea.",
                                                                  "What is a good breakfast?"]},
                       "science": {"role": "task", "prompts": ["Explain photosynthesis briefly."]}},
        "design": {"type": "block", "sequence": ["control", "science", "control"],
                   "prompts_per_block": 1},
        "runs": {"n": 1},
        "generation": {"max_new_tokens": 6, "chat_template": True},
    })
    rec = record(default_model, par, sites="resid_post", out=tmp_path / "rec", batch_size=3,
                 progress=False)
    tok = default_model.tokenizer
    data, events = rec.data(1), rec.events(1)
    sched = par.schedule()
    for _, row in sched.iterrows():
        text = tok.apply_chat_template([{"role": "user", "content": row["prompt"]}],
                                       add_generation_prompt=True, tokenize=False)
        p_ids = tok(text, add_special_tokens=False)["input_ids"]
        ev = events[events["prompt_id"] == row["prompt_id"]]
        gen_ids = ev["token_id"].tolist()
        out = default_model.generate(torch.tensor([p_ids]), max_new_tokens=6, do_sample=False)
        assert out[0, len(p_ids):].tolist() == gen_ids  # recording does not change the tokens
        with torch.no_grad():
            hs = default_model(torch.tensor([p_ids + gen_ids]), output_hidden_states=True).hidden_states
        L, n = len(p_ids), len(gen_ids)
        rows = data[ev["onset"].to_numpy()]
        for layer in (0, 14, 28):
            cols = rec.select(layers=layer)
            np.testing.assert_allclose(rows[:, cols], hs[layer + 1][0, L - 1:L - 1 + n].numpy(),
                                       rtol=0, atol=1e-5 * max(1.0, float(np.abs(rows[:, cols]).max())))
