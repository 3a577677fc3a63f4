"""Host memory of the workflow's GPU processes at the Sana-Sprint 0.6B scale, measured on the CPU.

The Slurm rules ask for 24 GB of host memory per distillation process and 16 GB per evaluating process
(workflow/rules/distill.smk, evaluate.smk), figures written down as estimates. This builds a SanaPipeline
folder of the real shapes with random weights (`models.reference_shapes`; memory does not depend on the
values) and runs, each in a fresh process, the library code those stages run, recording the process's
peak resident set (VmHWM, what a cgroup's memory limit counts first):

    python benchmarks/host_memory.py --folder /tmp/tbcm-host --out docs/host-memory/cpu    # ~10 GB of disk
    python benchmarks/host_memory.py --tiny --folder /tmp/tiny                              # seconds, for the tests

- `evaluate, fp32` / `evaluate, bf16`: what an evaluating process loads before it generates: the teacher
  folder through `eval.generate.load_generator` (transformer, text encoder, VAE; with `sample.precision`)
  and a CLIP ViT-L/14 (open_clip, random weights; Inception-v3's 0.1 GB is left out). On a GPU machine the
  networks pass through host memory while they load and move to the GPU one after the other, so this peak is
  the host's, while the images are generated the host holds less.
- `distill`: `tbcm.distill.run_distill` itself, one step of one prompt on a route of 2 (one pair), bf16,
  gradient checkpointing, AdamW, a checkpoint and the export, on the CPU. Without a GPU the device is the
  host: this peak holds what a GPU run keeps in GPU memory too (the student, its gradients and AdamW's
  state, the activations), so it bounds a GPU process's host memory from above, apart from what CUDA itself
  keeps on the host (its context and libraries: not measurable here) and the pinned host copies of
  `distill.offload_frozen` (the frozen teacher and text encoder in bf16, which the CPU run holds once).
  `distill-fp32` (not in the default runs): the same in fp32, which holds the teacher in fp32 and fp32
  activations, so its peak is above bf16's; on a CPU without bf16 units (AVX2 only) bf16's step takes ~40
  minutes at this shape, fp32's a fraction of that.

The folder's text encoder is written in bf16 (`--encoder-dtype`), as transformers 5 then loads it; a Gemma-2-2B
folder holding float32 would take 5 GB more wherever it is loaded. diffusers loads the transformer and the
VAE in float32 whatever their files hold.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("evaluate-fp32", "evaluate-bf16", "distill", "distill-fp32")
WORDS = ["a", "red", "green", "blue", "circle", "square", "star", "on", "background", "small", "big", "."]


def status_gb(key: str) -> float:
    """A memory line of /proc/self/status, in GB (10^9 bytes, as Slurm's mem_mb counts MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024 / 1e9
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")


def peak_gb() -> float:
    """This process's peak resident set (VmHWM)."""
    return status_gb("VmHWM")


def now() -> dict:
    """The resident set now, split: anonymous memory (what only swapping could free) and mapped files (the
    memory-mapped weights, clean pages the kernel may drop and read again under a memory limit)."""
    return {"anon_gb": status_gb("RssAnon"), "file_gb": status_gb("RssFile")}


def shapes(tiny: bool):
    from tbcm.models.reference_shapes import sana_sprint_0p6b_shapes, tiny_shapes

    return tiny_shapes() if tiny else sana_sprint_0p6b_shapes()


def build_folder(folder: Path, tiny: bool, encoder_dtype: torch.dtype) -> None:
    """A SanaPipeline folder of the stack's shapes with random weights; reused if it is already there."""
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    from tbcm.atomic import atomic_dir
    from tbcm.world.text import build_tokenizer

    if (folder / "model_index.json").is_file():
        print(f"host_memory: reusing {folder}", flush=True)
        return
    s = shapes(tiny)
    tokenizer = build_tokenizer(WORDS + ["\n".join(s.instruction)])
    text_cfg = dict(s.text_encoder, vocab_size=max(s.text_encoder["vocab_size"], len(tokenizer)))
    torch.manual_seed(0)
    with torch.device("meta"):  # Gemma's own init of 2.6B weights takes minutes on the CPU; values do not matter
        encoder = Gemma2Model(Gemma2Config(**text_cfg))
    encoder = encoder.to_empty(device="cpu").to(encoder_dtype)
    with torch.no_grad():
        for p in encoder.parameters():
            p.normal_(0, 0.02)
    transformer = SanaTransformer2DModel(**s.transformer)
    vae = AutoencoderDC(**s.vae)
    with atomic_dir(folder) as tmp:
        SanaPipeline(tokenizer=tokenizer, text_encoder=encoder.eval(), vae=vae.eval(), transformer=transformer.eval(),
                     scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0)).save_pretrained(tmp)
    print(f"host_memory: wrote {folder}", flush=True)


def run_evaluate(folder: Path, tiny: bool, precision: str) -> dict:
    import open_clip

    from tbcm.eval.generate import load_generator

    s = shapes(tiny)
    t0 = time.time()
    gen = load_generator(folder, s.prompt_tokens, "cpu", tuple(s.instruction), precision)
    loaded = peak_gb()
    with torch.no_grad():  # what a move to the GPU does first: read every weight once
        for m in (gen.denoiser, gen.encoder, gen.vae):
            for p in m.parameters():
                p.sum()
    read, split = peak_gb(), now()
    clip = open_clip.create_model("ViT-B-32" if tiny else "ViT-L-14-quickgelu", pretrained=None)
    end = now()
    del gen, clip
    return {"peak_gb": peak_gb(), "loaded_gb": loaded, "read_gb": read, "read_split": split, "end_split": end,
            "seconds": time.time() - t0}


def run_distill_step(folder: Path, tiny: bool, scratch: Path, precision: str = "bf16") -> dict:
    from tbcm.distill import DistillConfig, run_distill
    from tbcm.train_step import MethodConfig

    s = shapes(tiny)
    cfg = DistillConfig(steps=1, prompts_per_step=1, text_max_length=s.prompt_tokens,
                        text_instruction=tuple(s.instruction), precision=precision, gradient_checkpointing=True,
                        checkpoint_every=1, method=MethodConfig(route_steps=2))
    t0 = time.time()
    info = run_distill(folder, ["a small red star on a blue background"], None, scratch / "student", cfg,
                       progress=False, checkpoint_dir=scratch / "student.ckpt")
    return {"peak_gb": peak_gb(), "seconds": time.time() - t0, "skipped": info["skipped"]}


def measure(run: str, folder: Path, tiny: bool, scratch: Path) -> dict:
    """`run` in a fresh Python process (its own peak), its result as a dict."""
    code = (f"import json, sys; sys.path[:0] = [{str(ROOT / 'src')!r}, {str(ROOT / 'benchmarks')!r}]; "
            f"import host_memory as h; from pathlib import Path; "
            f"print('RESULT ' + json.dumps(h.child({run!r}, Path({str(folder)!r}), {tiny!r}, Path({str(scratch)!r}))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": f"rc {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}"}
    return json.loads(lines[-1][len("RESULT "):])


def child(run: str, folder: Path, tiny: bool, scratch: Path) -> dict:
    if run.startswith("evaluate-"):
        return run_evaluate(folder, tiny, run.split("-", 1)[1])
    if run in ("distill", "distill-fp32"):  # bf16 as at scale; fp32 runs ~5x faster on a CPU without bf16 units
        return run_distill_step(folder, tiny, scratch, "fp32" if run == "distill-fp32" else "bf16")
    raise ValueError(f"unknown run {run!r} (one of {RUNS})")


def markdown(report: dict) -> str:
    lines = [f"# Host memory: {report['stack']}", "",
             f"Machine: {report['machine']}, torch {report['torch']}; {report['date']}. Peak resident set of a fresh "
             "process (VmHWM), GB = 10^9 bytes.", "",
             "| process | generator loaded, GB | its weights read, GB (anonymous + mapped files) | peak, GB "
             "| at the end (anonymous + mapped files) | seconds |", "|---|---|---|---|---|---|"]
    for name, r in report["runs"].items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error'].splitlines()[-1] if r['error'] else ''} | | | | |")
            continue
        gb = lambda k: f"{r[k]:.2f}" if k in r else "–"
        split = lambda k: f" ({r[k]['anon_gb']:.2f} + {r[k]['file_gb']:.2f})" if k in r else ""
        end = f"{r['end_split']['anon_gb']:.2f} + {r['end_split']['file_gb']:.2f}" if "end_split" in r else "–"
        lines.append(f"| {name} | {gb('loaded_gb')} | {gb('read_gb')}{split('read_split')} | {r['peak_gb']:.2f} "
                     f"| {end} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", required=True, help="the random-weight SanaPipeline folder (built there if missing)")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny stack instead of Sana-Sprint 0.6B")
    ap.add_argument("--runs", nargs="+", choices=RUNS, default=["evaluate-fp32", "evaluate-bf16", "distill"])
    ap.add_argument("--encoder-dtype", choices=("bf16", "fp32"), default="bf16",
                    help="the dtype the folder's text encoder is written in")
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json (atomically)")
    args = ap.parse_args(argv)
    from tbcm.atomic import write_tables
    from tbcm.machine import cpu_model

    folder = Path(args.folder)
    build_folder(folder, args.tiny, {"bf16": torch.bfloat16, "fp32": torch.float32}[args.encoder_dtype])
    report = {"stack": shapes(args.tiny).name, "machine": f"{cpu_model()}, {platform.machine()}",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "encoder_dtype": args.encoder_dtype,
              "runs": {}}
    for run in args.runs:
        scratch = folder.parent / f"{folder.name}-{run}"
        shutil.rmtree(scratch, ignore_errors=True)  # a fresh distillation, not a resumed or refused one
        report["runs"][run] = r = measure(run, folder, args.tiny, scratch)
        print(f"host_memory: {run}: {r}", flush=True)
    text = markdown(report)
    print(text)
    write_tables(args.out, report, text)
    return report


if __name__ == "__main__":
    main()
