"""Generating evaluation images from a saved diffusers folder: a SanaPipeline teacher (N-step ODE
sampling with CFG along the Reference Route) or a SanaSprintPipeline student (consistency sampling).

Sampling goes through the project's own samplers on the same denoisers as training (they agree with
diffusers' pipelines to float precision, tests/test_sana_adapter.py).

Seeding: every random number a prompt's image uses comes from that prompt's own generator,
torch.Generator().manual_seed(seed * 1_000_003 + i), where i is the prompt's index among all sorted
ids of its set (`mjhq.global_index`): the initial latent first, then the student's re-noising between
steps. An image is thus a function of (model, seed, prompt id) alone, whatever the batch size, the
subset evaluated or the images already on disk, which is what makes generation resumable. Sana's
toolkit uses seed 0 too, but draws from one generator batch after batch, so its noise depends on the
batch size; its images cannot be matched bit for bit anyway (its noise is drawn on the GPU).

`generate_folder` writes the images in MJHQ-30k's layout (`imgs/<category>/<id>.png`, lossless) and
resumes: an image is written to a temporary name and renamed into place once complete, so a killed
run never leaves a truncated image under a final name; a rerun regenerates exactly the missing or
unreadable ones, identical to an uninterrupted run. The folder's `generation.json` records what its
images are a function of (model fingerprint, steps, guidance, seed, precision, and, down to the last
bit, batch size and device type); a rerun with anything different stops instead of mixing sets.
Several processes share a folder batch by batch (`fill_folder`'s group, eval/processes.py).

Precision (`sample.precision`): fp32 (the networks as loaded: diffusers' transformer and VAE in fp32,
the text encoder in its folder's dtype, as `distill.precision: fp32` runs them), or bf16, where the
transformer, text encoder and VAE are held in bf16 as Sana's and Sana-Sprint's pipelines are run
(`torch_dtype=torch.bfloat16`). The sampler's state (latents, ODE and consistency steps) stays fp32
either way, and the decoded pixels are scaled to 0-255 in fp32 (bf16 carries 8 significant bits: its
rounding alone would move a pixel by up to one level).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..atomic import atomic_path, write_json
from ..models.sana import GUIDANCE, PromptEncoder, SanaTrigFlowStudent, load_pipeline_parts, sana_denoiser
from ..sampler import consistency_sample, consistency_times, teacher_sample
from ..trigflow import SIGMA_DATA, add_noise
from .mjhq import image_path
from .processes import Group, dealt_batches

SEED_STRIDE = 1_000_003
PNG_WRITERS = 2  # the CPUs the workflow gives an evaluation process at Sana scale
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class Generator:
    kind: str  # "teacher" | "student"
    denoiser: object
    tokenizer: object
    encoder: object
    vae: object
    latent_shape: tuple
    text_max_length: int = 24
    fingerprint: str = ""
    device: str = "cpu"
    shift: float | None = None  # teacher only: its scheduler's time shift, the route it samples along
    instruction: tuple[str, ...] | None = None  # Sana's complex human instruction (models.sana.prompt_encoding)
    precision: str = "fp32"  # the networks' dtype (PRECISIONS); load_generator casts them

    def __post_init__(self):
        self.prompt_encoder = PromptEncoder(self.tokenizer, self.encoder, self.text_max_length, self.instruction)

    def encode(self, prompts):
        return self.prompt_encoder(list(prompts))

    def encode_uncond(self):
        """The empty prompt for classifier-free guidance, without the instruction (SanaPipeline's negative branch)."""
        return self.prompt_encoder.uncond()


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over every file of a saved pipeline (relative path and content): a retrained model in the
    same folder gets a new fingerprint, so stale images of the old one are never resumed."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def scheduler_shift(folder: Path) -> float:
    """The static time shift of a teacher folder's flow-matching scheduler (`shift` of
    FlowMatchEulerDiscreteScheduler, `flow_shift` of the DPM-Solver Sana ships), which is the Reference
    Route the teacher is sampled along, as SanaPipeline would."""
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        raise ValueError(f"{folder}: no scheduler/scheduler_config.json, so the teacher's sampling shift is unknown")
    c = json.loads(path.read_text())
    if c.get("use_dynamic_shifting"):
        raise ValueError(f"{path}: dynamic (resolution-dependent) shifting is not supported; use a static shift")
    for key in ("shift", "flow_shift"):
        if c.get(key) is not None:
            return float(c[key])
    raise ValueError(f"{path} has neither 'shift' nor 'flow_shift'")


def load_generator(folder: str | Path, text_max_length: int = 24, device: str | None = None,
                   instruction: tuple[str, ...] | None = None, precision: str = "fp32") -> Generator:
    from diffusers import AutoencoderDC

    if precision not in PRECISIONS:
        raise ValueError(f"sample.precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    folder = Path(folder)
    index = folder / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{folder} is not a diffusers pipeline folder (no model_index.json)")
    cls = json.loads(index.read_text())["_class_name"]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tr, encoder, tokenizer = load_pipeline_parts(folder)
    shift = None
    if cls == "SanaPipeline":
        kind, den, shift = "teacher", sana_denoiser(tr), scheduler_shift(folder)
    elif cls == "SanaSprintPipeline":
        kind, den = "student", SanaTrigFlowStudent(tr)
    else:
        raise ValueError(f"{folder}: unsupported pipeline class {cls} (expected SanaPipeline or SanaSprintPipeline)")
    c = tr.config
    vae = AutoencoderDC.from_pretrained(folder / "vae").eval()
    for m in (tr, encoder, vae):
        m.to(device=device, dtype=PRECISIONS[precision] if precision != "fp32" else None)  # fp32: as loaded
    return Generator(kind, den, tokenizer, encoder, vae, (c.in_channels, c.sample_size, c.sample_size),
                     text_max_length, folder_fingerprint(folder), device, shift, instruction, precision)


def prompt_generators(seed: int, indices) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * SEED_STRIDE + int(i)) for i in indices]


def _draw(gens: list[torch.Generator], shape) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


def prompt_noise(seed: int, indices, shape) -> torch.Tensor:
    """The initial latents (unit variance) of the prompts with these global indices."""
    return _draw(prompt_generators(seed, indices), shape)


@torch.no_grad()
def generate(gen: Generator, prompts: list[str], indices: list[int], steps: int, guidance: float = 4.5,
             seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """uint8 [N, H, W, 3] images for `prompts` (with their global indices, which fix all their noise)."""
    if len(prompts) != len(indices):
        raise ValueError(f"{len(prompts)} prompts but {len(indices)} indices")
    out = []
    dev = torch.device(gen.device)
    uncond = gen.encode_uncond() if gen.kind == "teacher" else None
    for i in range(0, len(prompts), batch_size):
        p, idx = prompts[i : i + batch_size], indices[i : i + batch_size]
        cond = gen.encode(p)
        gens = prompt_generators(seed, idx)
        noise = _draw(gens, gen.latent_shape).to(dev) * SIGMA_DATA
        if gen.kind == "teacher":
            x0 = teacher_sample(gen.denoiser, cond, uncond, noise, guidance, steps, shift=gen.shift)
        else:
            cond[GUIDANCE] = torch.full((len(p),), float(guidance), device=dev)
            x0 = _consistency_per_prompt(gen.denoiser, cond, noise, consistency_times(steps), gens)
        lat = x0 / SIGMA_DATA / gen.vae.config.scaling_factor
        img = gen.vae.decode(lat.to(next(gen.vae.parameters()).dtype)).sample.float().clamp(-1, 1)
        out.append(((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
    return torch.cat(out)


def _consistency_per_prompt(student, cond, noise, times, gens) -> torch.Tensor:
    """The multistep consistency sampler (sampler.consistency_sample) with each prompt's re-noising
    drawn from its own generator: one `consistency_sample` call per step (times [s, 0]: denoise only),
    then x_t = cos t x0 + sin t z with z from the prompt's generator."""
    x = noise
    x0 = x
    for s, t in zip(times[:-1].tolist(), times[1:].tolist()):
        x0 = consistency_sample(student, cond, x, torch.tensor([s, 0.0], dtype=torch.float64))
        if t > 0:
            z = _draw(gens, x.shape[1:]).to(x) * SIGMA_DATA
            x = add_noise(x0, z, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    return x0


# --------------------------------------------------------------------------- resumable folders

GENERATION_FILE = "generation.json"


def _is_complete_png(path: Path) -> bool:
    """A PNG that decodes to the end (a truncated or corrupt file does not)."""
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def _save_png(array: np.ndarray, path: Path) -> None:
    # zlib level 1, not Pillow's 6: the same pixels (PNG is lossless at every level), 1.3-5x faster to write
    # and 6-19% larger on 1024 px test images (benchmarks/image_io.py), at 30,000 images a step count.
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def _settings(gen: Generator, steps: int, guidance: float, seed: int, batch_size: int) -> dict:
    """What a folder's images are a function of (its generation.json)."""
    return {"model": gen.fingerprint, "kind": gen.kind, "steps": int(steps), "guidance": float(guidance),
            "seed": int(seed), "seed_rule": f"seed * {SEED_STRIDE} + index among sorted ids",
            "text_max_length": gen.text_max_length, "batch_size": int(batch_size),
            "text_instruction": (hashlib.sha256("\n".join(gen.instruction).encode()).hexdigest()[:16]
                                 if gen.instruction else None),
            "device": torch.device(gen.device).type, "precision": gen.precision}


def open_folder(gen: Generator, out: str | Path, steps: int, guidance: float, seed: int, batch_size: int = 64,
                replace_stale: bool = False) -> None:
    """Make `out` ready to hold this generator's images: record its settings (generation.json) or check
    them against the recorded ones, and remove the temporaries of a run killed mid-write (never trusted).

    A folder made with other settings stops here, or, with `replace_stale` (a pipeline stage whose
    parameters changed), has its images deleted first, saying so. With several processes only one calls
    this, before any of them writes an image (eval/processes.py)."""
    out = Path(out)
    settings = _settings(gen, steps, guidance, seed, batch_size)
    record = out / GENERATION_FILE
    if record.is_file():
        old = {"precision": "fp32", **json.loads(record.read_text())}  # folders from before sample.precision: fp32
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff and not replace_stale:
            raise ValueError(f"{out} holds images generated with other settings {diff} (stored, now); "
                             "delete the folder or choose another one")
        if diff:
            print(f"{out}: settings changed {diff} (stored, now); deleting its images to generate them anew")
            shutil.rmtree(out / "imgs", ignore_errors=True)
            (out / "meta_data.json").unlink(missing_ok=True)
            write_json(record, settings)
    else:
        write_json(record, settings)
    for tmp in out.glob("imgs/*/.*.tmp.png"):
        tmp.unlink()


def fill_folder(gen: Generator, meta: dict, ids: list[str], index: dict[str, int], out: str | Path, steps: int,
                guidance: float, seed: int, batch_size: int = 64, progress: bool = True,
                group: Group = Group()) -> dict:
    """Generate the images of `ids` missing from the opened folder `out` (MJHQ layout), those of this
    process's batches in `group` (eval/processes.py; no collective is called). Returns {"generated": k,
    "paths": [...]} (the paths of all `ids`, in their order)."""
    out = Path(out)
    paths = [image_path(out, meta, i, "png") for i in ids]
    # Batches are fixed slices of `ids`, and a batch with a missing image is recomputed whole: the
    # same shapes on the same device give the same floats, so a resumed set equals an uninterrupted
    # one bit for bit (recomputing only the missing images in other batches flips a rare pixel by 1).
    # The same fixed batches dealt out round-robin make the shards: each process checks and fills its
    # own, so no process needs to know what the others find on disk.
    chunks = dealt_batches(len(ids), batch_size, group.rank, group.size)
    todo = {k for c in chunks for k in c if not (paths[k].is_file() and _is_complete_png(paths[k]))}
    chunks = [c for c in chunks if todo.intersection(c)]
    desc = f"{gen.kind} {steps} step(s)" + (f", process {group.rank + 1}/{group.size}" if group.size > 1 else "")
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress or not todo)
    # A batch's PNGs are written by PNG_WRITERS threads while the next batch is generated: zlib, which
    # releases the GIL, spends 0.15-0.2 s of a core on a 1024 px test image, about as long as a GPU samples it.
    # At most one batch waits to be written. Every write is whole or absent (_save_png), as in one thread.
    with ThreadPoolExecutor(PNG_WRITERS) as pool:
        writing = []
        for chunk in chunks:
            imgs = generate(gen, [meta[ids[k]]["prompt"] for k in chunk], [index[ids[k]] for k in chunk], steps,
                            guidance, seed, batch_size)
            _wait(writing, bar)
            # an intact image is never rewritten
            writing = [pool.submit(_save_png, img, paths[k]) for k, img in zip(chunk, imgs.numpy()) if k in todo]
        _wait(writing, bar)
    bar.close()
    return {"generated": len(todo), "paths": paths}


def _wait(writes, bar) -> None:
    for w in writes:
        w.result()  # a failed write raises here
        bar.update(1)


def list_folder(out: str | Path, meta: dict, ids: list[str]) -> None:
    """Add `ids` to the folder's meta_data.json: the folder is itself an MJHQ-layout set of everything
    generated in it so far."""
    listed = Path(out) / "meta_data.json"
    known = json.loads(listed.read_text()) if listed.is_file() else {}
    write_json(listed, {**known, **{i: meta[i] for i in ids}})


def generate_folder(gen: Generator, meta: dict, ids: list[str], index: dict[str, int], out: str | Path, steps: int,
                    guidance: float, seed: int, batch_size: int = 64, progress: bool = True,
                    replace_stale: bool = False) -> dict:
    """Write the images of `ids` under `out` in MJHQ layout, generating only those not already there
    (open_folder, fill_folder, list_folder in one process).
    Returns {"generated": k, "kept": n - k, "paths": [...]} (paths in the order of `ids`).
    """
    open_folder(gen, out, steps, guidance, seed, batch_size, replace_stale)
    made = fill_folder(gen, meta, ids, index, out, steps, guidance, seed, batch_size, progress)
    list_folder(out, meta, ids)
    return {**made, "kept": len(ids) - made["generated"]}
