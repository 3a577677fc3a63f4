"""A text encoder that needs no download: a word-level tokenizer and a tiny random Gemma2.

Sana conditions on the last hidden states of Gemma-2 (method-notes §8). Here the same class,
`transformers.Gemma2Model`, is built from a tiny config with frozen random weights, and the
tokenizer is a `tokenizers` WordLevel vocabulary wrapped in `PreTrainedTokenizerFast`: both save
into and load from a diffusers Sana pipeline folder, so SanaPipeline / SanaSprintPipeline run on them
unchanged. Special tokens follow Gemma's ids (pad 0, eos 1, bos 2, unk 3) and, as Gemma's tokenizer
does, a <bos> starts every sequence, so even the empty prompt has one unmasked token.

Prompts are encoded by `tbcm.models.sana.encode_prompts`, the same function as at Sana scale.
"""

from __future__ import annotations

from typing import Iterable

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import Gemma2Config, Gemma2Model, PreTrainedTokenizerFast

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK)  # ids 0..3, Gemma's layout


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])


def build_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is the special tokens plus `words`.

    Each entry of `words` is lower-cased and split like the text will be (whitespace, then each
    punctuation mark on its own), so whole captions may be passed as well as single words. Vocabulary
    order is first appearance, so the same words give the same ids.
    """
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    splitter = _pre_tokenizer()
    for entry in words:
        for piece, _ in splitter.pre_tokenize_str(entry.lower()):
            vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = splitter
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        unk_token=UNK,
        padding_side="right",
    )


def build_text_encoder(
    vocab_size: int, hidden: int = 64, layers: int = 2, seed: int = 0, heads: int = 2, max_positions: int = 512
) -> Gemma2Model:
    """A tiny random Gemma2Model (Sana's text-encoder class), frozen and in eval mode.

    The weights are a deterministic function of (config, seed); the global RNG is left untouched.
    """
    if hidden % heads:
        raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
    config = Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=1,
        head_dim=hidden // heads,
        query_pre_attn_scalar=hidden // heads,
        max_position_embeddings=max_positions,
        sliding_window=max_positions,
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
        bos_token_id=SPECIAL_TOKENS.index(BOS),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = Gemma2Model(config)
    return encoder.eval().requires_grad_(False)
