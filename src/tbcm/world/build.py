"""Building the embedded world, stage by stage: data -> VAE -> judge -> teacher pipeline folder.

Each stage reads the previous stages' folders, writes its own folder atomically (a temp folder next
to it, renamed into place at the end) with a `metrics.json` and, where a person would look, a PNG.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..atomic import atomic_dir, write_json
from ..eval.mjhq import load_images, load_meta
from . import shapes
from .autoencoder import AutoencoderConfig, from_model_space, psnr, reconstruct, to_model_space, train_autoencoder
from .judge import JudgeConfig, build_judge, train_judge, zero_shot_choice
from .teacher import TeacherConfig, train_teacher
from ..models.sana import encode_prompts
from .text import build_text_encoder, build_tokenizer
from .text_pretrain import TextPretrainConfig, caption_attribute_accuracy, pretrain_text_encoder

TEXT_MAX_LENGTH = 24  # the longest grammar caption is ~16 words plus <bos>


def load_split(root: Path, resolution: int | None = None):
    """(images uint8 [N,H,W,3], prompts, ids, attributes dicts) of one MJHQ-layout split."""
    meta = load_meta(root)
    ids = sorted(meta)
    attrs = json.loads((root / "attributes.json").read_text())
    return load_images(root, meta, ids, resolution), [meta[i]["prompt"] for i in ids], ids, [attrs[i] for i in ids]


def world_tokenizer():
    return build_tokenizer(shapes.vocabulary())


def judge_token_ids(tokenizer, prompts: list[str], context_length: int) -> torch.Tensor:
    """Word ids + <eos> (the judge pools there), padded with <pad> to the context length."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = []
    for ids in tokenizer([p.lower() for p in prompts], add_special_tokens=False)["input_ids"]:
        ids = ids[: context_length - 1] + [eos]
        rows.append(ids + [pad] * (context_length - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


# --------------------------------------------------------------------------- data

def build_data(out: Path, n_train: int, n_eval: int, seed: int, resolution: int) -> dict:
    t0 = time.time()
    with atomic_dir(out) as tmp:
        shapes.write_world_data(tmp, n_train, n_eval, seed, resolution)
        info = {"n_train": n_train, "n_eval": n_eval, "resolution": resolution, "seed": seed,
                "train_prompts": len(shapes.train_prompts()), "seconds": time.time() - t0}
        write_json(tmp / "metrics.json", info)
    return info


# --------------------------------------------------------------------------- VAE

def build_vae(data: Path, out: Path, cfg: AutoencoderConfig, n_psnr: int = 1000) -> dict:
    train, *_ = load_split(data / "train")
    held, *_ = load_split(data / "eval")
    vae, log = train_autoencoder(train, cfg)
    metrics = {**log, "psnr_eval_db": psnr(vae, held[:n_psnr]), "scaling_factor": vae.config.scaling_factor,
               "config": asdict(cfg)}
    with atomic_dir(out) as tmp:
        vae.save_pretrained(tmp)
        from ..eval.grids import image_grid

        rec_u8 = from_model_space(reconstruct(vae, held[:16]))
        image_grid(torch.cat([held[:16], rec_u8]), tmp / "reconstructions.png", ncol=16,
                   captions=["real"] * 16 + ["reconstructed"] * 16)
        write_json(tmp / "metrics.json", metrics)
    return metrics


# --------------------------------------------------------------------------- judge

def swapped_captions(attrs: list[dict], prompts: list[str]) -> list[list[str]]:
    """For each image, its caption (same paraphrase template) with one attribute swapped for another
    valid value: every other shape, every other colour, and each other background, size and position
    (the judge's hard negatives). Rows are padded to equal length by repeating shape swaps."""
    out = []
    for a, prompt in zip(attrs, prompts):
        attr = shapes.Attributes(**a)
        template = next(t for t in range(shapes.N_TEMPLATES) if shapes.caption(attr, t) == prompt)
        row = []
        for key, values in shapes.ATTRIBUTE_VALUES.items():
            for v in values:
                b = dict(a, **{key: v})
                if v != a[key] and b["color"] != b["background"]:
                    row.append(shapes.caption(shapes.Attributes(**b), template))
        out.append(row)
    width = max(len(r) for r in out)
    return [r + r[: width - len(r)] for r in out]


def attribute_groups(attrs: list[dict], vary: str = "shape") -> list[list[list[int]]]:
    """Image indices grouped by every attribute but `vary`, and within a group by the value of `vary`;
    only groups with at least two values (the judge's grouped batches: judge.grouped_batch)."""
    by: dict[tuple, dict[str, list[int]]] = {}
    for i, a in enumerate(attrs):
        key = tuple(a[k] for k in shapes.ATTRIBUTE_VALUES if k != vary)
        by.setdefault(key, {}).setdefault(a[vary], []).append(i)
    return [[members for _, members in sorted(classes.items())] for _, classes in sorted(by.items()) if len(classes) > 1]


def attribute_labels(attrs: list[dict]) -> torch.Tensor:
    """[N, 5] class index of each image's attributes, in shapes.ATTRIBUTE_VALUES order (the judge's heads)."""
    return torch.tensor([[values.index(a[k]) for k, values in shapes.ATTRIBUTE_VALUES.items()] for a in attrs])


def build_judge_stage(data: Path, out: Path, cfg: JudgeConfig, n_eval: int = 1000) -> dict:
    tok = world_tokenizer()
    train, prompts, _, train_attrs = load_split(data / "train")
    held, _, _, held_attrs = load_split(data / "eval")
    model = build_judge(cfg, len(tok), tok.pad_token_id, tok.eos_token_id)
    negatives = None
    if cfg.hard_negatives:
        rows = swapped_captions(train_attrs, prompts)
        flat = judge_token_ids(tok, [c for r in rows for c in r], cfg.context_length)
        negatives = flat.reshape(len(rows), len(rows[0]), -1)
    groups = attribute_groups(train_attrs) if cfg.group_size > 1 else None
    log = train_judge(model, train, judge_token_ids(tok, prompts, cfg.context_length), cfg, negative_ids=negatives,
                      groups=groups, attribute_labels=attribute_labels(train_attrs),
                      attribute_classes=[len(v) for v in shapes.ATTRIBUTE_VALUES.values()])
    acc = attribute_accuracy(model, tok, held[:n_eval], held_attrs[:n_eval], cfg)
    metrics = {**log, **{f"zero_shot_{k}_accuracy": v for k, v in acc.items()}, "config": asdict(cfg)}
    with atomic_dir(out) as tmp:
        torch.save(model.state_dict(), tmp / "judge.pt")
        write_json(tmp / "judge_config.json", {**asdict(cfg), "vocab_size": len(tok), "pad_id": tok.pad_token_id,
                                               "eos_id": tok.eos_token_id})
        tok.save_pretrained(tmp / "tokenizer")
        write_json(tmp / "metrics.json", metrics)
    return metrics


def attribute_picks(model, tok, images, attrs: list[dict], cfg: JudgeConfig, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(the judge's zero-shot pick, the truth) [N] each, as indices into ATTRIBUTE_VALUES[key]: the true
    caption against the same caption with `key` swapped for every other value the grammar allows
    (a shape coloured like its background is not in the grammar: not a candidate)."""
    values = shapes.ATTRIBUTE_VALUES[key]
    cands, truth = [], []
    for a in attrs:
        row = []
        for v in values:
            b = dict(a, **{key: v})
            row.append(None if b["color"] == b["background"] else shapes.caption(shapes.Attributes(**b), 0))
        cands.append(row)
        truth.append(values.index(a[key]))
    tokenize = lambda texts: judge_token_ids(tok, texts, cfg.context_length)
    return zero_shot_choice(model, images, cands, tokenize, cfg.image_size), torch.tensor(truth)


def attribute_correct(model, tok, images, attrs: list[dict], cfg: JudgeConfig, keys=("shape", "color")) -> dict:
    """Per attribute, whether the judge's zero-shot pick is right for each image ([N] bool; attribute_picks)."""
    out = {}
    for key in keys:
        pick, truth = attribute_picks(model, tok, images, attrs, cfg, key)
        out[key] = pick == truth
    return out


def attribute_accuracy(model, tok, images, attrs: list[dict], cfg: JudgeConfig, keys=("shape", "color")) -> dict:
    """Zero-shot accuracy per attribute (attribute_picks)."""
    return {key: float(c.float().mean()) for key, c in attribute_correct(model, tok, images, attrs, cfg, keys).items()}


def load_judge(folder: Path):
    from .judge import JudgeConfig as _JC

    c = json.loads((folder / "judge_config.json").read_text())
    cfg = _JC(**{k: v for k, v in c.items() if k in _JC.__dataclass_fields__})
    model = build_judge(cfg, c["vocab_size"], c["pad_id"], c["eos_id"])
    model.load_state_dict(torch.load(folder / "judge.pt", map_location="cpu"))
    from transformers import PreTrainedTokenizerFast

    return model.eval(), PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer"), cfg


# --------------------------------------------------------------------------- teacher

def build_teacher_stage(data: Path, vae_dir: Path, out: Path, cfg: TeacherConfig, model_kw: dict, text_kw: dict,
                        shift: float = 2.5, after_step=None, text_pretrain: TextPretrainConfig | None = None) -> dict:
    """Teach the text encoder the grammar (`text_pretrain`; None: it stays random), encode the train
    split once with the VAE and the captions once with the text encoder, train the transformer, and
    save the whole diffusers SanaPipeline folder. `after_step(step, transformer, text_encoder)` is
    called after every teacher step (train_teacher's hook, given the encoder too to score samples)."""
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel

    from ..models.sana import tiny_sana_config

    tok = world_tokenizer()
    encoder = build_text_encoder(len(tok), **text_kw)
    vae = AutoencoderDC.from_pretrained(vae_dir).eval()
    images, prompts, _, _ = load_split(data / "train")
    uniq = sorted(set(prompts))
    text_log = None
    if text_pretrain is not None and text_pretrain.steps > 0:
        heads, text_log = pretrain_text_encoder(encoder, tok, uniq, text_pretrain, TEXT_MAX_LENGTH)
        held = sorted({m["prompt"] for m in load_meta(data / "eval").values()})
        text_log["heldout_caption_accuracy"] = caption_attribute_accuracy(encoder, tok, heads, held, TEXT_MAX_LENGTH)
        text_log["config"] = {**asdict(text_pretrain), "encoder": text_kw}
    with torch.no_grad():
        lat = torch.cat([vae.encode(to_model_space(images[i : i + 512])).latent for i in range(0, len(images), 512)])
    lat = lat * vae.config.scaling_factor
    index = {p: i for i, p in enumerate(uniq)}
    embeds, mask = encode_prompts(tok, encoder, uniq, TEXT_MAX_LENGTH)
    null_e, null_m = encode_prompts(tok, encoder, [""], TEXT_MAX_LENGTH)
    torch.manual_seed(cfg.seed)
    kw = tiny_sana_config(in_channels=lat.shape[1], sample_size=lat.shape[-1], caption_channels=embeds.shape[-1], **model_kw)
    transformer = SanaTransformer2DModel(**kw)
    hook = None if after_step is None else (lambda step, tr: after_step(step, tr, encoder))
    log = train_teacher(transformer, lat, torch.tensor([index[p] for p in prompts]), embeds, mask, null_e, null_m, cfg,
                        after_step=hook)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    pipe = SanaPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    metrics = {**log, "latent_std": float(lat.std()), "latent_shape": list(lat.shape[1:]),
               "params": sum(p.numel() for p in transformer.parameters()), "config": asdict(cfg), "model": kw,
               "text_pretrain": text_log}
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(tmp)
        write_json(tmp / "metrics.json", metrics)
    return metrics
