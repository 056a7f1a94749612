"""Tiny random models of each supported family, built from configs (for tests and examples)."""

from __future__ import annotations

from .._utils import check_option

__all__ = ["tiny_model", "tiny_tokenizer", "TINY_FAMILIES"]

TINY_FAMILIES = ("gpt2", "opt", "gpt_neox", "llama")
_VOCAB = 260  # 256 byte tokens + specials


def tiny_tokenizer():
    """A byte-level tokenizer (one token per UTF-8 byte) built offline.

    Token ids 0..255 are bytes; 256 is ``<|endoftext|>`` (bos, eos and pad).

    Returns
    -------
    transformers.PreTrainedTokenizerFast
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    alphabet = ByteLevel.alphabet()
    byte_to_char = {b: c for b, c in _bytes_to_unicode().items()}
    vocab = {byte_to_char[b]: b for b in range(256)}
    assert set(vocab) == set(alphabet)
    vocab["<|endoftext|>"] = 256
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", unk_token=None,
    )
    fast.padding_side = "left"
    return fast


def _bytes_to_unicode():
    # GPT-2's reversible byte -> printable unicode map.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _config(family, n_layers, d_model, n_heads, d_mlp):
    import transformers as tf

    common = dict(vocab_size=_VOCAB, bos_token_id=256, eos_token_id=256, pad_token_id=256)
    if family == "gpt2":
        return tf.GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=n_heads, n_inner=d_mlp,
                             n_positions=256, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                             **common)
    if family == "opt":
        return tf.OPTConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
                            ffn_dim=d_mlp, max_position_embeddings=256, word_embed_proj_dim=d_model,
                            dropout=0.0, attention_dropout=0.0, enable_bias=False, **common)
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(num_hidden_layers=n_layers, hidden_size=d_model,
                                num_attention_heads=n_heads, intermediate_size=d_mlp,
                                max_position_embeddings=256, rotary_pct=0.25, **common)
    return tf.LlamaConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
                          num_key_value_heads=max(1, n_heads // 2), intermediate_size=d_mlp,
                          max_position_embeddings=256, tie_word_embeddings=True, **common)


def tiny_model(family="llama", *, n_layers=2, d_model=32, n_heads=4, d_mlp=None, seed=0,
               dtype="float32"):
    """A tiny random causal LM of ``family`` with a byte-level tokenizer attached.

    Parameters
    ----------
    family : {"gpt2", "opt", "gpt_neox", "llama"}
    n_layers, d_model, n_heads, d_mlp : int
        Sizes; ``d_mlp`` defaults to ``3 * d_model`` so that MLP sites differ in width.
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    model : transformers.PreTrainedModel
        In eval mode, with ``model.tokenizer`` set to :func:`tiny_tokenizer`.

    Examples
    --------
    >>> from llmfmri.models import tiny_model
    >>> m = tiny_model("gpt2")
    >>> m.config.n_layer
    2
    """
    import torch
    from transformers import AutoModelForCausalLM

    check_option("family", family, TINY_FAMILIES)
    d_mlp = 3 * d_model if d_mlp is None else d_mlp
    config = _config(family, n_layers, d_model, n_heads, d_mlp)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.eval()
    model.tokenizer = tiny_tokenizer()
    model.llmfmri_info = {"model_id": f"tiny-{family}", "source": "config", "seed": seed,
                          "revision": None, "family": family}
    return model
