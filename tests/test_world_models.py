"""The embedded world's VAE and judge in tiny configurations: they build, train a few steps, save/load."""

import pytest
import torch

from tbcm.world.autoencoder import AutoencoderConfig, build_autoencoder, foreground_weights, psnr, train_autoencoder
from tbcm.world.judge import JudgeConfig, build_judge, clip_scores, train_judge, zero_shot_choice


def _images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(n, 32, 32, 3, dtype=torch.uint8)
    colors = torch.randint(0, 256, (n, 3), generator=g, dtype=torch.uint8)
    for i in range(n):
        img[i] = colors[i]
        img[i, 8:24, 8:24] = 255 - colors[i]
    return img


def test_autoencoder_trains_sets_scaling_and_round_trips(tmp_path):
    from diffusers import AutoencoderDC

    imgs = _images()
    cfg = AutoencoderConfig(channels=(8, 16, 32), steps=30, batch_size=16)
    before = psnr(build_autoencoder(cfg), imgs)
    vae, log = train_autoencoder(imgs, cfg, progress=False)
    assert log["steps"] > 0 and psnr(vae, imgs) > before
    lat = vae.encode((imgs.permute(0, 3, 1, 2).float() / 127.5 - 1)).latent
    assert lat.shape == (64, 8, 8, 8)
    assert abs(float((lat * vae.config.scaling_factor).std()) - 1) < 0.05  # unit variance after scaling
    vae.save_pretrained(tmp_path / "vae")
    again = AutoencoderDC.from_pretrained(tmp_path / "vae")
    assert again.config.scaling_factor == vae.config.scaling_factor


def test_foreground_weights_cover_the_shape_and_its_rim_only():
    imgs = _images(4)  # a 16 x 16 square at [8:24] on a plain background
    imgs[1, 0, 0] = 255 - imgs[1, 1, 1]  # an odd border pixel: the median still finds the background
    w = foreground_weights(imgs.permute(0, 3, 1, 2).float() / 127.5 - 1, alpha=10.0)
    expect = torch.ones(32, 32)
    expect[7:25, 7:25] = 11.0  # the square and a 1-px rim
    for i in (0, 2, 3):
        assert torch.equal(w[i, 0], expect), i
    expect[:2, :2] = 11.0  # the odd pixel is not background, and gets its rim too
    assert torch.equal(w[1, 0], expect)
    plain = torch.full((2, 3, 32, 32), 0.3)
    assert torch.equal(foreground_weights(plain, 10.0), torch.ones(2, 1, 32, 32))


def test_judge_trains_and_scores_matching_text_higher():
    imgs = _images(128)
    # two "captions": which of two colour families the background belongs to
    labels = (imgs[:, 0, 0].float().mean(1) > 127).long()
    vocab = {"<pad>": 0, "<eos>": 1, "dark": 2, "light": 3}
    ids = torch.stack([torch.tensor([2 + int(l), 1] + [0] * 6) for l in labels])
    cfg = JudgeConfig(width=32, layers=1, heads_width=16, embed_dim=16, context_length=8, hard_negatives=False,
                      group_size=0, image_size=32, steps=150, batch_size=64, lr=3e-3)
    model = build_judge(cfg, len(vocab), pad_id=0, eos_id=1)
    log = train_judge(model, imgs, ids, cfg, progress=False)
    assert log["steps"] > 0
    right = clip_scores(model, imgs, ids, 32).mean()
    wrong = clip_scores(model, imgs, ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))], 32).mean()
    assert right > wrong
    tok = lambda texts: torch.stack([torch.tensor([vocab[t], 1] + [0] * 6) for t in texts])
    pick = zero_shot_choice(model, imgs, [["dark", "light"]] * len(imgs), tok, 32)
    assert (pick == labels).float().mean() > 0.9


def test_teacher_flow_matching_loss_decreases():
    from diffusers import SanaTransformer2DModel

    from tbcm.models.sana import tiny_sana_config
    from tbcm.world.teacher import TeacherConfig, train_teacher

    torch.manual_seed(0)
    tr = SanaTransformer2DModel(**tiny_sana_config(hidden=32, layers=1, heads=2, caption_channels=16))
    g = torch.Generator().manual_seed(0)
    # two "captions", each with its own latent pattern: learnable in a few dozen steps
    pattern = torch.randn(2, 8, 8, 8, generator=g)
    cap = torch.randint(2, (256,), generator=g)
    latents = pattern[cap]
    embeds, mask = torch.randn(2, 4, 16, generator=g), torch.ones(2, 4, dtype=torch.long)
    cfg = TeacherConfig(steps=1, batch_size=32)
    first = train_teacher(tr, latents, cap, embeds, mask, torch.zeros(1, 4, 16), torch.ones(1, 4, dtype=torch.long), cfg, False)
    cfg.steps, cfg.warmup_steps = 120, 10
    log = train_teacher(tr, latents, cap, embeds, mask, torch.zeros(1, 4, 16), torch.ones(1, 4, dtype=torch.long), cfg, False)
    assert log["steps"] == 120 and log["loss_ema"] < 0.8 * first["loss_ema"]


def test_zero_shot_never_picks_an_invalid_candidate():
    """Invalid candidates (None) are masked, so a tie with the true text cannot steal the choice."""
    from tbcm.world.judge import zero_shot_choice

    cfg = JudgeConfig(width=32, layers=1, heads_width=16, embed_dim=16, context_length=8, image_size=32)
    model = build_judge(cfg, 4, pad_id=0, eos_id=1).eval()
    tok = lambda texts: torch.stack([torch.tensor([2 + (t == "b"), 1] + [0] * 6) for t in texts])
    pick = zero_shot_choice(model, _images(4), [[None, "a"], [None, "b"], ["a", None], ["b", None]], tok, 32)
    assert pick.tolist() == [1, 1, 0, 0]


def test_grouped_batches_hold_images_that_differ_only_in_shape():
    from tbcm.world import shapes
    from tbcm.world.build import attribute_groups
    from tbcm.world.judge import grouped_batch

    attrs = [a.as_dict() for a in shapes.sample_attributes(3000, seed=0)]
    groups = attribute_groups(attrs)
    assert groups and all(len(classes) >= 2 for classes in groups)
    rest = lambda i: {k: v for k, v in attrs[i].items() if k != "shape"}
    for classes in groups:
        assert len({attrs[c[0]]["shape"] for c in classes}) == len(classes)  # one class per shape
        assert all(rest(i) == rest(classes[0][0]) and attrs[i]["shape"] == attrs[c[0]]["shape"] for c in classes for i in c)
    wide = [c for c in groups if len(c) >= 4]  # every group gives a full block of 4
    batch = grouped_batch(wide, 32, 4, torch.Generator().manual_seed(1))
    assert torch.equal(batch, grouped_batch(wide, 32, 4, torch.Generator().manual_seed(1)))
    for block in batch.view(8, 4).tolist():
        assert all(rest(i) == rest(block[0]) for i in block) and len({attrs[i]["shape"] for i in block}) == 4


def test_decoder_phase_keeps_the_latent_space_and_makes_decoding_of_noisy_latents_better():
    from tbcm.world.autoencoder import to_model_space

    imgs = _images()
    kw = dict(channels=(8, 16, 32), steps=30, batch_size=16, decoder_steps=100, decoder_lr=2e-3)
    before, log0 = train_autoencoder(imgs, AutoencoderConfig(**dict(kw, decoder_steps=0)), progress=False)
    plain, _ = train_autoencoder(imgs, AutoencoderConfig(**kw, decoder_noise=0.0), progress=False)  # as many steps, clean
    robust, log = train_autoencoder(imgs, AutoencoderConfig(**kw, decoder_noise=1.0), progress=False)
    assert "decoder_phase" not in log0
    assert log["decoder_phase"]["steps"] == 100 and log["decoder_phase"]["noise"] == 1.0
    # the encoder (hence every latent) is the one the first phase left; the decoder is not
    for (k, a), b in zip(before.encoder.state_dict().items(), robust.encoder.state_dict().values()):
        assert torch.equal(a, b), k
    assert any(not torch.equal(a, b) for a, b in zip(before.decoder.state_dict().values(), robust.decoder.state_dict().values()))
    assert all(p.requires_grad for p in robust.encoder.parameters())
    x = to_model_space(imgs)
    with torch.no_grad():
        z = plain.encode(x).latent
        noisy = z + 0.5 / plain.config.scaling_factor * torch.randn(z.shape, generator=torch.Generator().manual_seed(5))
        err = {name: float((vae.decode(noisy).sample - x).pow(2).mean()) for name, vae in (("plain", plain), ("robust", robust))}
    assert err["robust"] < 0.9 * err["plain"], err  # measured 0.79x


def test_judge_attribute_loss_teaches_the_image_tower_what_captions_do_not_say():
    from dataclasses import replace

    from tbcm.world.judge import image_features

    imgs = _images(128)
    labels = (imgs[:, 0, 0].float().mean(1) > 127).long()  # dark or light background
    ids = torch.tensor([[2, 1] + [0] * 6] * len(imgs))  # one caption for every image: contrast teaches nothing
    cfg = JudgeConfig(width=32, layers=1, heads_width=16, embed_dim=16, context_length=8, hard_negatives=False,
                      group_size=0, image_size=32, steps=60, batch_size=64, lr=3e-3)

    def centroid_accuracy(weight):
        c = replace(cfg, attribute_loss=weight)
        model = build_judge(c, 4, pad_id=0, eos_id=1)
        train_judge(model, imgs, ids, c, progress=False, attribute_labels=labels[:, None], attribute_classes=[2])
        f = image_features(model, imgs, 32)
        mu = torch.stack([f[labels == k].mean(0) for k in (0, 1)])
        return float(((f @ mu.T).argmax(1) == labels).float().mean()), model

    with_heads, model = centroid_accuracy(1.0)
    without, _ = centroid_accuracy(0.0)
    assert with_heads > 0.9 and without < with_heads - 0.1, (without, with_heads)  # measured 0.977 / 0.664
    # the heads are not part of the judge that is saved
    assert model.state_dict().keys() == build_judge(cfg, 4, pad_id=0, eos_id=1).state_dict().keys()
    with pytest.raises(ValueError, match="attribute_loss"):
        train_judge(build_judge(cfg, 4, 0, 1), imgs, ids, replace(cfg, attribute_loss=1.0), progress=False)
