"""A text encoder that needs no download: a word-level tokenizer and a tiny random Gemma2.

Sana conditions on the last hidden states of Gemma-2 (method-notes §8). Here the same class,
`transformers.Gemma2Model`, is built from a tiny config with frozen random weights, and the
tokenizer is a `tokenizers` WordLevel vocabulary wrapped in `PreTrainedTokenizerFast`: both save
into and load from a diffusers Sana pipeline folder, so SanaPipeline / SanaSprintPipeline run on them
unchanged. Special tokens follow Gemma's ids (pad 0, eos 1, bos 2, unk 3) and, as Gemma's tokenizer
does, a <bos> starts every sequence, so even the empty prompt has one unmasked token.

`encode_prompts` reproduces SanaPipeline.encode_prompt with complex_human_instruction=None and
clean_caption=False: lower-case and strip, pad right to max_length, truncate, encode with the mask.
"""

from __future__ import annotations

from typing import Iterable, Sequence

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


@torch.no_grad()
def encode_prompts(
    tokenizer: PreTrainedTokenizerFast, encoder: Gemma2Model, prompts: Sequence[str], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt_embeds [B, L, C], prompt_attention_mask [B, L]) exactly as SanaPipeline.encode_prompt gives them.

    With complex_human_instruction=None the pipeline's token selection [0] + range(1 - L, 0) is the
    identity on an L-token sequence, so it is not repeated here.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    texts = [p.lower().strip() for p in prompts]  # SanaPipeline._text_preprocessing, clean_caption=False
    tokenizer.padding_side = "right"
    tokens = tokenizer(
        texts,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    device = next(encoder.parameters()).device
    mask = tokens.attention_mask.to(device)
    embeds = encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
    return embeds, mask
