"""models.sana.PromptEncoder is SanaPipeline.encode_prompt: with Sana's complex human instruction (the
conditional branch) and without it (the negative branch used for classifier-free guidance); and
prompt_encoding picks the world's or Sana's convention by params' source."""

from __future__ import annotations

import pytest
import torch
from diffusers import SanaPipeline
from tokenizers import normalizers

from tbcm.models.sana import (PROMPT_EMBEDS, PROMPT_MASK, SANA_PROMPT_TOKENS, WORLD_PROMPT_TOKENS, PromptEncoder,
                              complex_human_instruction, prompt_encoding)
from tbcm.world.text import build_text_encoder, build_tokenizer

L = 10
PROMPTS = ["A Red circle on a blue background ", "dark city at night"]


@pytest.fixture(scope="module")
def parts():
    instruction = complex_human_instruction()
    tok = build_tokenizer(["a red circle on blue background dark city at night", *instruction])
    # Gemma's tokenizer is case-sensitive, the world's lower-cases: without its normaliser, capitalised
    # words of the instruction become unknown tokens, so lower-casing the instruction would show.
    tok.backend_tokenizer.normalizer = normalizers.Sequence([])
    encoder = build_text_encoder(len(tok), hidden=16, layers=1, heads=2).eval()
    return tok, encoder, instruction


def test_conditional_and_negative_branches_are_sana_pipelines(parts):
    tok, encoder, instruction = parts
    pipe = SanaPipeline(tokenizer=tok, text_encoder=encoder, vae=None, transformer=None, scheduler=None)
    embeds, mask, neg, neg_mask = pipe.encode_prompt(PROMPTS, do_classifier_free_guidance=True, negative_prompt="",
                                                     device=torch.device("cpu"), max_sequence_length=L,
                                                     complex_human_instruction=instruction)
    encode = PromptEncoder(tok, encoder, L, instruction)
    ours, uncond = encode(PROMPTS), encode.uncond(len(PROMPTS))
    assert ours[PROMPT_EMBEDS].shape == (2, L, 16)
    assert torch.equal(ours[PROMPT_EMBEDS], embeds) and torch.equal(ours[PROMPT_MASK], mask)
    assert torch.equal(uncond[PROMPT_EMBEDS], neg) and torch.equal(uncond[PROMPT_MASK], neg_mask)
    # the instruction is read (and with its case): the prompts' embeddings depend on it
    plain = PromptEncoder(tok, encoder, L)(PROMPTS)[PROMPT_EMBEDS]
    lowered = PromptEncoder(tok, encoder, L, [line.lower() for line in instruction])(PROMPTS)[PROMPT_EMBEDS]
    assert not torch.equal(plain, embeds) and not torch.equal(lowered, embeds)


def test_prompt_encoding_by_source():
    assert prompt_encoding("world") == (WORLD_PROMPT_TOKENS, None)
    tokens, instruction = prompt_encoding("sana")
    assert tokens == SANA_PROMPT_TOKENS == 300 and list(instruction) == complex_human_instruction()
    assert len(instruction) > 1
    with pytest.raises(ValueError, match="source"):
        prompt_encoding("hub")
