"""The embedded world's judge: a small CLIP built with open_clip's own classes and trained with its
`ClipLoss` on the world's image-caption pairs.

It plays, in this world, the roles that OpenAI ViT-L/14 and Inception-v3 play on MJHQ-30k: the CLIP
score (100 cos(image, text)), the feature space for FID (through clean-fid's custom feature
extractor), and zero-shot attribute accuracy read off the caption grammar.

Beside the contrastive loss, linear heads may read each image's attributes from its embedding
(`attribute_loss`): supervision the caption grammar gives for free and open_clip has no slot for. The
heads are dropped after training; every score still goes through the text tower, zero-shot.

Text goes in as ids of the world's word-level tokenizer (no BPE vocabulary to download); the text
tower pools at the <eos> token, since open_clip's default "argmax" pooling assumes eos has the
largest id, which a word-level vocabulary does not give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

from .budget import StepBudget

# CLIP's usual per-channel normalisation is for natural images; these are the world's own.
MEAN, STD = 0.5, 0.5


@dataclass
class JudgeConfig:
    # Image tower: "resnet" (open_clip's ModifiedResNet) learned shapes faster here than a ViT:
    # 60 s, batch 64 -> zero-shot shape accuracy on real held-out images 46% vs 35%.
    vision: str = "resnet"
    resnet_width: int = 16
    # The ResNet stem downsamples 4x at once, which leaves a small 32-px shape (~5 px) a pixel or two:
    # images are upsampled to 64 px first. With grouped batches, 750 steps: shape 74% at 64 px, 55% at
    # 32 px (docs/world-budget.md).
    image_size: int = 64
    patch_size: int = 4
    width: int = 64  # ViT and text tower width (the text tower's cost grows with every hard negative)
    layers: int = 3  # ViT layers; the text tower has max(1, layers - 1)
    heads_width: int = 32
    embed_dim: int = 64
    context_length: int = 24
    lr: float = 2e-3
    batch_size: int = 64
    # Hard negatives (NegCLIP, Yuksekgonul et al. 2023): each image is also contrasted with its own
    # caption with one attribute swapped. Plain CLIP on this grammar learns colour and background
    # (they dominate pixel statistics) long before shape; the swapped captions make every attribute pay.
    hard_negatives: bool = True
    negatives_per_image: int = 4  # drawn per step from every image's table of swapped captions
    # Hard-negative images: a batch is made of groups of `group_size` images that share every attribute
    # but their shape, so the text-to-image direction of the loss must tell shapes apart too (swapped
    # captions only teach the image-to-text direction). 0 or 1: uniformly drawn batches.
    group_size: int = 4
    # Weight of an auxiliary loss: linear heads read each image's five attributes from its embedding
    # (labels the caption grammar gives for free; heads dropped after training). Without them the judge's
    # reading of real held-out shapes depended on its seed (94.0-97.3% over three seeds; with them
    # 97.1-99.7%, docs/world-budget.md, session 8); 0: plain NegCLIP.
    attribute_loss: float = 0.0
    steps: int = 1500
    seed: int = 0


def build_judge(cfg: JudgeConfig, vocab_size: int, pad_id: int, eos_id: int) -> CLIP:
    torch.manual_seed(cfg.seed)
    if cfg.vision == "resnet":
        vision = CLIPVisionCfg(layers=(1, 1, 1, 1), width=cfg.resnet_width, head_width=cfg.heads_width,
                               image_size=cfg.image_size)
    elif cfg.vision == "vit":
        vision = CLIPVisionCfg(layers=cfg.layers, width=cfg.width, head_width=cfg.heads_width,
                               patch_size=cfg.patch_size, image_size=cfg.image_size, mlp_ratio=2.0)
    else:
        raise ValueError(f"judge vision tower must be 'resnet' or 'vit', got '{cfg.vision}'")
    text = CLIPTextCfg(context_length=cfg.context_length, vocab_size=vocab_size, width=cfg.width,
                       heads=max(1, cfg.width // cfg.heads_width), layers=max(1, cfg.layers - 1), mlp_ratio=2.0,
                       pad_id=pad_id, eos_id=eos_id, pool_type="eos")
    return CLIP(cfg.embed_dim, vision, text)


def preprocess(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 [N, H, W, 3] or float [N, 3, H, W] in [0, 255] -> normalised float [N, 3, s, s]."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float()
    x = images / 255.0
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return (x - MEAN) / STD


def negclip_loss(img: torch.Tensor, txt: torch.Tensor, neg: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE where each image is also contrasted with its own hard-negative
    captions `neg` [B, K, D] (NegCLIP). open_clip's ClipLoss has no slot for per-image negatives."""
    labels = torch.arange(len(img))
    logits_img = torch.cat([scale * img @ txt.T, scale * torch.einsum("bd,bkd->bk", img, neg)], dim=1)
    logits_txt = scale * txt @ img.T
    return (F.cross_entropy(logits_img, labels) + F.cross_entropy(logits_txt, labels)) / 2


def grouped_batch(groups: Sequence[Sequence[Sequence[int]]], batch_size: int, group_size: int,
                  g: torch.Generator) -> torch.Tensor:
    """Image indices of one batch: random groups, and from each, one image of each of `group_size`
    random classes. `groups[i][c]` lists the images of class c of group i (e.g. group: every attribute
    but shape; class: the shape)."""
    idx: list[int] = []
    while len(idx) < batch_size:
        classes = groups[int(torch.randint(len(groups), (1,), generator=g))]
        for c in torch.randperm(len(classes), generator=g)[:group_size].tolist():
            idx.append(classes[c][int(torch.randint(len(classes[c]), (1,), generator=g))])
    return torch.tensor(idx[:batch_size])


def train_judge(
    model: CLIP,
    images_uint8: torch.Tensor,
    token_ids: torch.Tensor,
    cfg: JudgeConfig,
    progress: bool = True,
    negative_ids: torch.Tensor | None = None,
    groups: Sequence[Sequence[Sequence[int]]] | None = None,
    attribute_labels: torch.Tensor | None = None,
    attribute_classes: Sequence[int] = (),
) -> dict:
    """Contrastive training on (image, caption-ids) pairs for cfg.steps steps.

    `negative_ids` [N, K, L]: K hard-negative captions per image (cfg.negatives_per_image of them
    drawn per step), used when cfg.hard_negatives. `groups`: the image groups of `grouped_batch`,
    used when cfg.group_size > 1. `attribute_labels` [N, A]: class indices of each image's attributes
    (`attribute_classes[a]` classes each), used when cfg.attribute_loss > 0."""
    if len(images_uint8) != len(token_ids) or len(images_uint8) == 0:
        raise ValueError(f"judge needs as many captions as images (> 0), got {len(images_uint8)} and {len(token_ids)}")
    if cfg.hard_negatives and (negative_ids is None or len(negative_ids) != len(token_ids)):
        raise ValueError("judge.hard_negatives needs one row of negative captions per image")
    grouped = cfg.group_size > 1
    if grouped and not groups:
        raise ValueError(f"judge.group_size {cfg.group_size} needs groups of images with at least 2 classes, got none")
    heads = None
    if cfg.attribute_loss > 0:
        if attribute_labels is None or len(attribute_labels) != len(token_ids) or not attribute_classes:
            raise ValueError("judge.attribute_loss needs one row of attribute labels per image")
        heads = torch.nn.ModuleList(torch.nn.Linear(model.visual.output_dim, n) for n in attribute_classes)
    params = list(model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.05)
    loss_fn = ClipLoss()
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    budget = StepBudget("judge", cfg.steps, progress)
    while budget.running():
        budget.set_lr(opt, cfg.lr, warmup_steps=50)
        if grouped:
            idx = grouped_batch(groups, cfg.batch_size, cfg.group_size, g)
        else:
            idx = torch.randint(len(images_uint8), (cfg.batch_size,), generator=g)
        # CLIP.forward's three outputs, computed here because the heads read the un-normalised embedding
        img = model.encode_image(preprocess(images_uint8[idx], cfg.image_size))
        img_f, scale = F.normalize(img, dim=-1), model.logit_scale.exp()
        txt_f = model.encode_text(token_ids[idx], normalize=True)
        if cfg.hard_negatives:
            k = min(cfg.negatives_per_image, negative_ids.shape[1])
            pick = torch.rand(len(idx), negative_ids.shape[1], generator=g).argsort(1)[:, :k]
            neg = negative_ids[idx[:, None], pick]  # [B, k, L]
            neg_f = model.encode_text(neg.flatten(0, 1), normalize=True).unflatten(0, (len(idx), k))
            loss = negclip_loss(img_f, txt_f, neg_f, scale)
        else:
            loss = loss_fn(img_f, txt_f, scale)
        if heads is not None:
            labels = attribute_labels[idx]
            loss = loss + cfg.attribute_loss * sum(F.cross_entropy(h(img), labels[:, k]) for k, h in enumerate(heads))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        budget.tick(loss.item())
    model.eval()
    return {"steps": budget.step, "seconds": budget.elapsed, "final_loss": budget.last_loss}


@torch.no_grad()
def image_features(model: CLIP, images: torch.Tensor, image_size: int, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised image embeddings [N, D]."""
    out = [model.encode_image(preprocess(images[i : i + batch_size], image_size), normalize=True)
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def text_features(model: CLIP, token_ids: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    out = [model.encode_text(token_ids[i : i + batch_size], normalize=True) for i in range(0, len(token_ids), batch_size)]
    return torch.cat(out)


def clip_scores(model: CLIP, images: torch.Tensor, token_ids: torch.Tensor, image_size: int) -> torch.Tensor:
    """100 * cos(image, text) per pair, [N] (negative cosines are kept, not clipped at 0)."""
    return 100 * (image_features(model, images, image_size) * text_features(model, token_ids)).sum(-1)


@torch.no_grad()
def zero_shot_choice(
    model: CLIP,
    images: torch.Tensor,
    candidates: Sequence[Sequence[str | None]],
    tokenize: Callable[[list[str]], torch.Tensor],
    image_size: int,
) -> torch.Tensor:
    """For image i, the index of the best-matching text among candidates[i] (all of equal length;
    a None candidate is not a valid choice and is never picked)."""
    k = len(candidates[0])
    valid = torch.tensor([[c is not None for c in cands] for cands in candidates])
    flat = [c if c is not None else "" for cands in candidates for c in cands]
    txt = text_features(model, tokenize(flat)).reshape(len(candidates), k, -1)
    img = image_features(model, images, image_size)
    sim = torch.einsum("nd,nkd->nk", img, txt).masked_fill(~valid, float("-inf"))
    return sim.argmax(1)
