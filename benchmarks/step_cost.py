"""Cost of one training step: TBCM against the forward-sampling sCM step of Sana-Sprint, at equal pairs.

    python benchmarks/step_cost.py --device cuda --out docs/step-cost          # Sana-Sprint 0.6B, 1024 px
    python benchmarks/step_cost.py --tiny --device cpu --out /tmp/step-cost     # tiny stack, seconds on CPU

Both steps run the library's own code (`tbcm.train_step`: a TBCM step's pairs and student step, `scm_step`; hence `tbcm.rollout`,
`tbcm.baseline` and `tbcm.loss.scm_loss`) on the Sana stack of `tbcm.models` built from configs with
random weights (cost does not depend on weight values; `tbcm.models.reference_shapes`):

- TBCM (Alg. 1): encode B prompts once; roll the teacher out for N route steps with two-pass CFG from
  noise; train the student on the B (N - 1) pairs (JVP of theta^-, forward, backward, clip, AdamW).
- sCM as Sana-Sprint trains it: B (N - 1) captioned images: encode each caption, VAE-encode each image
  (DC-AE f32c32), noise at log-normal t, one CFG teacher call for dx/dt, then the same student step.

The pieces are timed inside the real step: the teacher, the student, `loss.directional_derivative` (the
tangent), the backward, the gradient clip and the optimizer step are wrapped, and the device is
synchronised at each boundary (this removes overlap between pieces, the same for both methods).
"other" is the step's wall time minus its pieces (loss arithmetic, route/noise draws, bookkeeping).
Memory is the allocator's (CUDA: torch.cuda max_memory_allocated; CPU: the process's resident set,
VmHWM reset through /proc/self/clear_refs), "extra peak" is a piece's peak above what was allocated
when it began; "step peak" includes everything resident (weights, optimizer state).

Same settings for both methods: bf16 autocast on CUDA (fp32 master weights for the student; teacher,
text encoder and VAE stored in bf16), gradient checkpointing of the student's blocks outside the JVP
(diffusers checkpoints only when grad is enabled), the same tangent method. The uncond (empty-prompt)
embedding is computed once beforehand for both. The VAE encoder is on the device only during the sCM
steps (TBCM never needs it); text encoder, teacher, student and optimizer state are resident for both.
TBCM's brightness filter is off (one mean per prompt; with random weights it could drop whole batches
and skip the step being measured).

A second table times the tangent alone against a plain forward of the same network on the same pairs,
for each JVP method (`processor`: `tbcm.models.jvp_attention`, linear layers and convolutions skipping their
weights' zero tangents (`tbcm.skip_zero_tangents`), as the loss runs it; `processor_pytorch_rules`: the same
with PyTorch's own rules for them; `math`: torch.func.jvp alone, SDPA pinned to the math backend;
`finite_difference`: the library's central difference, three forwards), with its distance to the math tangent.
Compiled (--compile), the zero products are dropped by `tbcm.zero_tangents` whatever the method, and
`processor_pytorch_rules` is not run.

Outputs (with --out PREFIX): PREFIX.md (tables, device named) and PREFIX.json, each written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

import tbcm.loss as loss_module
from tbcm.atomic import write_tables
from tbcm.denoiser import split_condition
from tbcm.machine import device_name
from tbcm.models.compile_report import compile_stats, describe, set_recompile_limit
from tbcm.models.compiled_jvp import split_conv_bias
from tbcm.models.compiled_student import compile_gradient_pass
from tbcm.models.compiled_teacher import MODES as TEACHER_COMPILE_MODES, CompiledTeacher
from tbcm.models.jvp_attention import use_jvp_attention, use_stock_attention
from tbcm.models.reference_shapes import StackShapes, sana_sprint_0p6b_shapes, tiny_shapes
from tbcm.models.sana import PromptEncoder, SanaTrigFlowStudent, encoder_tokens, sana_denoiser, student_from_teacher
from tbcm.offload import FrozenOffload
from tbcm.optim import OPTIMIZERS, make_optimizer, state_bytes
from tbcm.schedules import RSchedule
from tbcm.train_step import MethodConfig, scm_step, tbcm_pairs_ahead, train_on_pairs
from tbcm.trigflow import SIGMA_DATA
from tbcm.weighting import AdaptiveWeight

JVP_METHODS = ("processor", "math", "finite_difference")
# the tangent table's: each JVP method, and the processor with PyTorch's rules for linear layers and convolutions
# (their weights' zero tangents multiplied out, as `math` does too): what tbcm.skip_zero_tangents saves
TABLE_METHODS = ("processor", "processor_pytorch_rules", "math", "finite_difference")
TBCM_PIECES = ("text encode", "teacher rollout", "tangent (JVP of θ⁻)", "student forward", "student backward",
               "grad clip", "optimizer step", "other")
OFFLOAD_PIECE = "frozen models in and out"  # TBCM with --offload-frozen (tbcm.offload): copies in, drops
SCM_PIECES = ("text encode", "VAE encode", "teacher CFG velocity", "tangent (JVP of θ⁻)", "student forward",
              "student backward", "grad clip", "optimizer step", "other")
GIB = 2.0 ** 30
PAPER_TIME_RATIO, PAPER_MEMORY_RATIO = 0.58, 0.36  # TBCM / Sana-Sprint sCM, paper's claims (issue 6)
WORDS = ("a red circle on a blue background small big green square photo of the cat dog tree house "
         "under sky at night bright dark river city street").split()


# --- measuring -------------------------------------------------------------------------------------

class Memory:
    """Allocated bytes now / peak since reset: CUDA allocator stats, or the process RSS on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        if not self.cuda and not Path("/proc/self/clear_refs").exists():
            raise RuntimeError("CPU memory needs Linux /proc/self/status and clear_refs (peak RSS reset)")

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"/proc/self/status has no {key}")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def now(self) -> int:
        return torch.cuda.memory_allocated(self.device) if self.cuda else self._status("VmRSS")

    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device) if self.cuda else self._status("VmHWM")

    def reset_peak(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            Path("/proc/self/clear_refs").write_text("5")


class Meter:
    """Accumulates wall time and extra peak memory per named piece; nested pieces count in the outer one."""

    def __init__(self, memory: Memory):
        self.mem = memory
        self.active: str | None = None
        self.times = defaultdict(float)
        self.extra_peak = defaultdict(int)
        self.calls = defaultdict(int)
        self.step_peak = 0

    def _fold_peak(self):
        self.step_peak = max(self.step_peak, self.mem.peak())

    @contextlib.contextmanager
    def piece(self, name: str):
        if self.active is not None:
            yield
            return
        self.mem.sync()
        self._fold_peak()
        base = self.mem.now()
        self.mem.reset_peak()
        self.active = name
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.mem.sync()
            self.times[name] += time.perf_counter() - t0
            peak = self.mem.peak()
            self.extra_peak[name] = max(self.extra_peak[name], peak - base)
            self.calls[name] += 1
            self.step_peak = max(self.step_peak, peak)
            self.active = None

    @contextlib.contextmanager
    def step(self):
        """The whole step: wall time and the peak over everything (pieces reset the counter; it is folded)."""
        self.mem.sync()
        self.mem.reset_peak()
        self.step_resident = self.mem.now()
        t0 = time.perf_counter()
        yield
        self.mem.sync()
        self.step_seconds = time.perf_counter() - t0
        self._fold_peak()


class Timed(torch.nn.Module):
    """A denoiser whose calls are one piece (calls inside another piece, e.g. the JVP, stay there)."""

    def __init__(self, inner, meter: Meter, name: str):
        super().__init__()
        self.inner, self.meter, self.name = inner, meter, name

    @property
    def jvp_regions(self):  # the student's blocks, for the loss's regional JVP (AttributeError if it has none)
        return self.inner.jvp_regions

    def forward(self, *args, **kw):
        if torch.compiler.is_compiling():  # traced inside a compiled piece (the tangent): timed there
            return self.inner(*args, **kw)
        with self.meter.piece(self.name):
            return self.inner(*args, **kw)


@contextlib.contextmanager
def timed_tangent(meter: Meter):
    """Time the tangent where scm_loss calls it: `loss.directional_derivative`, or its compiled version
    (`loss.compiled_directional_derivative`, MethodConfig.compile_tangent, what distill.compile runs)."""
    names = ("directional_derivative", "compiled_directional_derivative")
    originals = {name: getattr(loss_module, name) for name in names}

    def timed(inner):
        def wrapper(*args, **kw):
            with meter.piece("tangent (JVP of θ⁻)"):
                return inner(*args, **kw)
        return wrapper

    for name in names:
        setattr(loss_module, name, timed(originals[name]))
    try:
        yield
    finally:
        for name in names:
            setattr(loss_module, name, originals[name])


def step_hooks(meter: Meter, optimizer):
    """backward / clip_grad_norm injectables for optimize_pairs, and optimizer-step hooks, as pieces."""
    stack = contextlib.ExitStack()

    def backward(loss):
        with meter.piece("student backward"):
            loss.backward()

    def clip(params, max_norm):
        with meter.piece("grad clip"):
            return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def pre(*_):
        stack.enter_context(meter.piece("optimizer step"))

    def post(*_):
        stack.close()

    handles = [optimizer.register_step_pre_hook(pre), optimizer.register_step_post_hook(post)]
    return dict(backward=backward, clip_grad_norm=clip), handles


# --- building the stack ----------------------------------------------------------------------------

def build_stack(shapes: StackShapes, device: torch.device, frozen_dtype: torch.dtype, checkpointing: bool):
    """Teacher, student (from the teacher), text encoder, tokenizer, VAE encoder, all with random weights."""
    from diffusers import AutoencoderDC, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    from tbcm.world.text import build_tokenizer

    instruction = "\n".join(shapes.instruction)
    tokenizer = build_tokenizer(list(WORDS) + [instruction])
    text_cfg = dict(shapes.text_encoder)
    text_cfg["vocab_size"] = max(text_cfg["vocab_size"], len(tokenizer))
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: a 2.6B-parameter init on CPU takes minutes
        encoder = Gemma2Model(Gemma2Config(**text_cfg)).eval().requires_grad_(False).to(frozen_dtype)
        teacher_tr = SanaTransformer2DModel(**shapes.transformer).eval().requires_grad_(False)
        vae = AutoencoderDC(**shapes.vae).eval().requires_grad_(False)
    student_tr = student_from_teacher(teacher_tr).train()  # fp32 master weights
    teacher_tr.to(frozen_dtype)
    del vae.decoder  # training never decodes; only the encoder stays on the device
    vae.decoder = None
    vae_encoder = vae.to(dtype=frozen_dtype, device="cpu")  # on the device only for the sCM steps
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if checkpointing:
        student_tr.enable_gradient_checkpointing()
    return dict(tokenizer=tokenizer, encoder=encoder, teacher_tr=teacher_tr, student_tr=student_tr, vae=vae_encoder,
                instruction=instruction)


def text_encoder_fn(stack, shapes: StackShapes):
    """The library's prompt encoding (models.sana.PromptEncoder, SanaPipeline's: the instruction prefix and
    the prompt at prefix tokens + L - 2, token 0 and the last L - 1 kept), and the encoder's sequence length."""
    encode = PromptEncoder(stack["tokenizer"], stack["encoder"], shapes.prompt_tokens, shapes.instruction)
    return encode, encoder_tokens(stack["tokenizer"], shapes.prompt_tokens, shapes.instruction)


def random_prompts(n: int, gen: torch.Generator) -> list[str]:
    return [" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (12,), generator=gen)) for _ in range(n)]


# --- the two steps ---------------------------------------------------------------------------------

@contextlib.contextmanager
def placed(frozen: FrozenOffload | None, model, meter: Meter):
    """`frozen.on_device(model)` around the block, its copy in and its drop timed as one piece."""
    if frozen is None:
        yield
        return
    use = frozen.on_device(model)
    with meter.piece(OFFLOAD_PIECE):
        use.__enter__()
    try:
        yield
    finally:
        with meter.piece(OFFLOAD_PIECE):
            use.__exit__(None, None, None)


def run_method(method: str, stack, shapes, args, device, encode, uncond, meter_memory, steps: int, student: "Timed"):
    """Warm-up step(s) then `steps` timed steps; returns per-step means of every piece. `student` (the timed
    student wrapper) is shared by both methods, so a compiled tangent, guarded on it, compiles once. With
    --compile its blocks are compiled in place (the gradient pass) and the tangent goes block by block through
    the loss's compiled JVP, as in distill.

    TBCM with --rollout-ahead K (distill.rollout_ahead): the timed unit is K steps served by one rollout (their
    prompts encoded in one call, then K student steps); its times and pairs are divided by K, its peak is the
    unit's. `steps` and the warm-up count units."""
    student_tr, teacher_tr = stack["student_tr"], stack["teacher_tr"]
    cfg = MethodConfig(route_steps=args.route_steps, brightness_threshold=0.0,
                       tangent_method="finite_difference" if args.jvp == "finite_difference" else "jvp",
                       compile_tangent=args.compile, r=RSchedule(warmup_steps=0))
    weight = AdaptiveWeight().to(device)
    params = list(student_tr.parameters()) + list(weight.parameters())
    opt = make_optimizer(args.optimizer, [{"params": list(student_tr.parameters()), "lr": 1e-6},
                                          {"params": list(weight.parameters()), "lr": 1e-3}])
    pairs = args.batch * (args.route_steps - 1)
    ahead = args.rollout_ahead if method == "tbcm" else 1
    gen = torch.Generator().manual_seed(1)
    autocast = autocast_for(device, args.precision)
    records, first = [], None
    stack["vae"].to(device if method == "scm" else "cpu")  # TBCM never needs the VAE resident
    # TBCM's frozen models between rollouts: on the CPU with --offload-frozen (distill.offload_frozen); sCM needs
    # its text encoder and teacher in every step and keeps them resident, as Sana-Sprint trains
    frozen = FrozenOffload([stack["encoder"], teacher_tr], device) if method == "tbcm" and args.offload_frozen else None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    compiled = stack.get("teacher_compiled")
    teacher = Timed(sana_denoiser(teacher_tr) if compiled is None else compiled, None,
                    "teacher rollout" if method == "tbcm" else "teacher CFG velocity")
    for i in range(args.warmup + steps):
        meter = teacher.meter = student.meter = Meter(meter_memory)
        kw, handles = step_hooks(meter, opt)
        prompts = random_prompts(args.batch * ahead if method == "tbcm" else pairs, gen)
        images = None
        if method == "scm":  # the "data": random images, not counted (a data loader's job)
            images = torch.rand(pairs, 3, shapes.resolution, shapes.resolution, generator=gen).to(device) * 2 - 1
            images = images.to(stack["vae"].dtype)
        try:
            with timed_tangent(meter), autocast, meter.step():
                with placed(frozen, stack["encoder"], meter), meter.piece("text encode"):
                    cond = encode(prompts)
                if method == "tbcm":  # tbcm_step's two halves, so that one rollout may serve K steps
                    with placed(frozen, teacher_tr, meter):
                        ready, _ = tbcm_pairs_ahead(teacher, split_condition(cond, [args.batch] * ahead), uncond,
                                                    shapes.latent_shape, cfg, gen, device=device)
                    results = [train_on_pairs(student, weight, opt, params, p, step=1, cfg=cfg, **kw) for p in ready]
                else:
                    with meter.piece("VAE encode"):
                        vae = stack["vae"]
                        # contiguous: a channels-last latent would make a compiled tangent compile again
                        x0 = (vae.encode(images).latent * vae.config.scaling_factor * SIGMA_DATA).float().contiguous()
                    results = [scm_step(student, weight, opt, params, teacher, x0, cond, uncond, step=1, cfg=cfg,
                                        generator=gen, **kw)]
        finally:
            for h in handles:
                h.remove()
        for res in results:
            if res.skipped:
                raise RuntimeError(f"{method} step {i} was skipped ({res.skipped}): its timing would not be a training step")
            if res.n_pairs != pairs:
                raise RuntimeError(f"{method} trained {res.n_pairs} pairs, expected {pairs}")
        rec = dict(seconds=meter.step_seconds / ahead, peak=meter.step_peak, resident=meter.step_resident,
                   times={k: v / ahead for k, v in meter.times.items()}, extra=dict(meter.extra_peak),
                   calls={k: v / ahead for k, v in meter.calls.items()})
        if i < args.warmup:
            first = first or rec
        else:
            records.append(rec)
        del images
    stack["vae"].to("cpu")
    if frozen is not None:  # resident again for sCM and the table
        stack["encoder"].to(device)
        teacher_tr.to(device)
    pieces = (TBCM_PIECES + ((OFFLOAD_PIECE,) if frozen is not None else ())) if method == "tbcm" else SCM_PIECES
    out = {"pairs": pairs, "steps_per_rollout": ahead, "step_s": _mean(r["seconds"] for r in records), "peak_bytes": max(r["peak"] for r in records),
           "resident_bytes": records[0]["resident"], "optimizer_state_bytes": state_bytes(opt), "first_step_s": first["seconds"] if first else None,
           "pieces": {}}
    for name in pieces:
        if name == "other":
            continue
        missing = [k for k, r in enumerate(records) if name not in r["times"]]
        if missing:
            raise RuntimeError(f"{method}: piece '{name}' never ran (steps {missing}); the breakdown would be incomplete")
        out["pieces"][name] = {"s": _mean(r["times"][name] for r in records),
                               "extra_peak_bytes": max(r["extra"][name] for r in records),
                               "calls": records[0]["calls"][name]}
    other = [r["seconds"] - sum(r["times"].values()) for r in records]
    out["pieces"]["other"] = {"s": _mean(other), "extra_peak_bytes": None, "calls": None}
    return out


def autocast_for(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs)


# --- tangent against forward -----------------------------------------------------------------------

def jvp_ratios(stack, shapes, args, device, encode, uncond, memory, repeats: int, methods=TABLE_METHODS,
               profile: bool = False):
    """Per JVP method: time of directional_derivative on a TBCM pair batch / time of one no-grad forward."""
    student_tr = stack["student_tr"]
    installed = use_stock_attention(student_tr) > 0  # the forward and "math" run the stock processors
    cfg = MethodConfig(route_steps=args.route_steps, brightness_threshold=0.0)
    gen = torch.Generator().manual_seed(2)
    autocast = autocast_for(device, args.precision)
    with torch.no_grad(), autocast:
        cond = encode(random_prompts(args.batch, gen))
        (pairs,), _ = tbcm_pairs_ahead(sana_denoiser(stack["teacher_tr"]), [cond], uncond, shapes.latent_shape, cfg,
                                       gen, device=device)
        x_t, t, dxdt, scond = pairs.x_t, pairs.t, pairs.dxdt, pairs.student_cond()
    primals, tangents = loss_module.ode_tangents(x_t, t, dxdt)
    student = SanaTrigFlowStudent(student_tr).eval()
    fn = lambda x, tt: student(x, tt, scond)  # noqa: E731

    def timeit(call):
        call()  # warm-up (and compilation)
        memory.sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            out = call()
        memory.sync()
        return (time.perf_counter() - t0) / repeats, out

    results = {}
    try:
        with torch.no_grad(), autocast:
            # the reference tangent: eager forward-mode AD on the math backend (not timed)
            reference = loss_module.directional_derivative(fn, primals, tangents, "jvp", skip_zeros=False)[1].float()
            forward = fn  # with --compile main() has compiled the student's blocks in place (the gradient pass)
            t_fwd, _ = timeit(lambda: forward(*primals))
            profiles = {"forward": profile_call(lambda: forward(*primals), device)} if profile else {}
            for method in [m for m in TABLE_METHODS if m in methods]:
                if method.startswith("processor"):
                    use_jvp_attention(student_tr)
                else:
                    use_stock_attention(student_tr)
                lib = "finite_difference" if method == "finite_difference" else "jvp"
                skip = method == "processor"
                if args.compile and method == "processor_pytorch_rules":
                    continue  # compiled, zero_tangents drops the zero products whatever the eager rules
                if args.compile:  # as distill.compile runs it: block by block (tbcm.regional_jvp)
                    tangent_fn = (lambda p, v, lib=lib: loss_module.compiled_directional_derivative(
                        fn, p, v, lib, regions=student.jvp_regions))
                else:
                    tangent_fn = (lambda p, v, lib=lib, skip=skip: loss_module.directional_derivative(
                        fn, p, v, lib, skip_zeros=skip))
                t0 = time.perf_counter()
                try:
                    seconds, (_, dF) = timeit(lambda: tangent_fn(primals, tangents))
                except Exception as err:  # reported, not hidden: e.g. a compile failure for one method
                    results[method] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
                    continue
                diff = float((dF.float() - reference).norm() / reference.norm())
                results[method] = {"s": seconds, "ratio": seconds / t_fwd, "rel_diff_vs_math": diff,
                                   "first_call_s": time.perf_counter() - t0 - seconds * repeats}
                r = results[method]  # printed as it comes: a run cut short by a time limit keeps its rows
                print(f"  {method}: {1000 * r['s']:.1f} ms = {r['ratio']:.2f}x forward ({1000 * t_fwd:.1f} ms), "
                      f"first call {r['first_call_s']:.1f} s, distance to math {diff:.1e}", file=sys.stderr, flush=True)
                if profile:
                    profiles[method] = profile_call(lambda: tangent_fn(primals, tangents), device)
    finally:
        (use_jvp_attention if installed else use_stock_attention)(student_tr)
        student_tr.train()
    return {"forward_s": t_fwd, "pairs": int(x_t.shape[0]), "methods": results, "profiles": profiles}


# --- where the time goes ----------------------------------------------------------------------------

# Operator families for the profile: each kernel's time is charged to the ATen operator that launched it
# (its self device time), so the families add up to the call's device time without double counting.
OP_FAMILIES = (
    ("matmul and convolution", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_mm", "aten::cudnn_convolution",
                "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution", "aten::conv2d")),
    ("fused attention", ("aten::_scaled_dot_product", "aten::_flash_attention", "aten::_efficient_attention",
                         "aten::_cudnn_attention")),
    ("dtype casts and copies", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous")),
)


def op_family(name: str) -> str:
    for family, prefixes in OP_FAMILIES:
        if any(name.startswith(p) for p in prefixes):
            return family
    return "elementwise, norms, reductions, other"


def profile_call(call, device: torch.device, top: int = 12) -> dict:
    """One call under torch.profiler: device time per operator family and the top operators by self time."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = [e for e in prof.key_averages() if e.device_type == DeviceType.CPU and getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in rows) / 1e6
    families = defaultdict(float)
    for e in rows:
        families[op_family(e.key)] += getattr(e, attr) / 1e6
    rows.sort(key=lambda e: getattr(e, attr), reverse=True)
    return {"total_s": total, "clock": "device" if device.type == "cuda" else "cpu", "families": dict(families),
            "top": [{"op": e.key, "s": getattr(e, attr) / 1e6, "count": e.count} for e in rows[:top]]}


# --- report ----------------------------------------------------------------------------------------

def _ms(s):
    return "–" if s is None else f"{1000 * s:.1f}"


def _gib(b):
    return "–" if b is None else f"{b / GIB:.3f}"


def markdown(report: dict) -> str:
    lines = [f"# Step cost: TBCM vs forward-sampling sCM ({report['shapes']})", "",
             f"Device: **{report['device']}**. Run {report['date']}: `{report['command']}`.", "",
             f"{report['batch']} prompt(s) x {report['route_steps'] - 1} pairs per step; "
             f"TBCM's rollout serves {report.get('rollout_ahead', 1)} step(s)"
             f"{' (its text encoder and teacher on the CPU between rollouts)' if report.get('offload_frozen') else ''}; optimizer {report.get('optimizer', 'adamw')}; precision {report['precision']}; "
             f"gradient checkpointing {'on' if report['checkpointing'] else 'off'}; tangent method `{report['jvp']}`; "
             f"compile {'on' if report['compile'] else 'off'} (teacher: {report.get('compile_teacher') or 'off'}); "
             f"text encoder sequence {report['text_tokens']} tokens (instruction prefix, word-level count, + prompt); "
             f"mean of {report['steps']} step(s) after "
             f"{report['warmup']} warm-up.", ""]
    if report.get("dynamo"):
        lines += [f"torch.compile: {describe(report['dynamo'])}.", ""]
    if "tbcm" in report:
        lines += step_table(report)
    if report["jvp_ratios"] is not None:
        lines += tangent_table(report["jvp_ratios"])
    return "\n".join(lines) + "\n"


def step_table(report: dict) -> list[str]:
    a, b = report["tbcm"], report["scm"]
    pairs = a["pairs"]
    lines = [f"**{pairs} trained pairs per step** for both methods.", "",
             "| piece | TBCM ms/step | TBCM extra peak GiB | sCM ms/step | sCM extra peak GiB |", "|---|---|---|---|---|"]
    for name in SCM_PIECES[:2] + ("teacher rollout",) + ((OFFLOAD_PIECE,) if OFFLOAD_PIECE in a["pieces"] else ()) \
            + SCM_PIECES[2:]:
        pa, pb = a["pieces"].get(name), b["pieces"].get(name)
        lines.append(f"| {name} | {_ms(pa and pa['s'])} | {_gib(pa and pa['extra_peak_bytes'])} | "
                     f"{_ms(pb and pb['s'])} | {_gib(pb and pb['extra_peak_bytes'])} |")
    t_ratio = (a["step_s"] / a["pairs"]) / (b["step_s"] / b["pairs"])
    m_ratio = a["peak_bytes"] / b["peak_bytes"]
    lines += [f"| **step total** | **{_ms(a['step_s'])}** | | **{_ms(b['step_s'])}** | |",
              f"| **per trained pair** | **{_ms(a['step_s'] / pairs)}** | | **{_ms(b['step_s'] / pairs)}** | |",
              f"| **step peak memory (GiB, all resident incl.)** | | **{_gib(a['peak_bytes'])}** | | **{_gib(b['peak_bytes'])}** |",
              f"| resident at step start (GiB) | | {_gib(a['resident_bytes'])} | | {_gib(b['resident_bytes'])} |",
              f"| of which optimizer state (GiB) | | {_gib(a.get('optimizer_state_bytes'))} | | "
              f"{_gib(b.get('optimizer_state_bytes'))} |",
              f"| first (warm-up) step, ms | {_ms(a['first_step_s'])} | | {_ms(b['first_step_s'])} | |", "",
              f"TBCM / sCM: time per trained pair **{t_ratio:.2f}x** (paper: ≤ {PAPER_TIME_RATIO}), "
              f"peak memory **{m_ratio:.2f}x** (paper: ≤ {PAPER_MEMORY_RATIO}).", "",
              f"Tangent / the student's forward, on the same {pairs} pairs as the step runs both: TBCM "
              f"**{tangent_over_forward(a):.2f}x**, sCM **{tangent_over_forward(b):.2f}x** (target ≤ 2; this forward "
              "records for the backward, which costs a little more than the no-grad forward of the tangent table).", ""]
    return lines


def tangent_over_forward(method_report: dict) -> float:
    pieces = method_report["pieces"]
    return pieces["tangent (JVP of θ⁻)"]["s"] / pieces["student forward"]["s"]


def tangent_table(j: dict) -> list[str]:
    lines = [f"## Tangent vs forward of the student network ({j['pairs']} pairs, no grad)", "",
              f"Plain forward: {_ms(j['forward_s'])} ms.", "",
              "| method | tangent ms | tangent / forward | rel. distance to eager math tangent | first call ms |",
              "|---|---|---|---|---|"]
    for method in TABLE_METHODS:
        if method not in j["methods"]:
            continue
        r = j["methods"][method]
        if "error" in r:
            lines.append(f"| {method} | failed: {r['error']} | | | |")
            continue
        diff = f"{r['rel_diff_vs_math']:.1e}"
        lines.append(f"| {method} | {_ms(r['s'])} | {r['ratio']:.2f}x | {diff} | {_ms(r['first_call_s'])} |")
    profiles = j.get("profiles") or {}
    if profiles:
        names = list(profiles)
        clock = profiles[names[0]]["clock"]
        families = [f for f, _ in OP_FAMILIES] + ["elementwise, norms, reductions, other"]
        lines += ["", f"### Where the time goes (one call each under torch.profiler; {clock} time by operator family, ms)", "",
                  "| family | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for fam in families:
            lines.append(f"| {fam} | " + " | ".join(_ms(profiles[n]["families"].get(fam, 0.0)) for n in names) + " |")
        lines.append("| **total** | " + " | ".join(f"**{_ms(profiles[n]['total_s'])}**" for n in names) + " |")
        for n in names:
            top = ", ".join(f"{r['op']} {_ms(r['s'])} ({r['count']}x)" for r in profiles[n]["top"][:8])
            lines += ["", f"Top operators, {n}: {top}."]
    return lines


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny configs (CPU, seconds); default: Sana-Sprint 0.6B at 1024 px")
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    ap.add_argument("--batch", type=int, default=1, help="TBCM prompts per step; sCM gets batch x (N-1) images (default 1)")
    ap.add_argument("--route-steps", type=int, default=16, help="N, teacher steps per trajectory (default 16)")
    ap.add_argument("--jvp", choices=JVP_METHODS, default="processor",
                    help="tangent method of the training steps: processor (the JVP attention processor) or math (the "
                         "stock attention on SDPA's math backend), each through the loss's JVP (linear layers and "
                         "convolutions skipping zero tangents; the table's `math` row is torch.func.jvp alone), or "
                         "finite_difference")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the tangent call and the student's gradient pass (as distill.compile does), "
                         "and the JVP-table calls")
    ap.add_argument("--compile-teacher", nargs="?", const="default", default=None,
                    choices=TEACHER_COMPILE_MODES,
                    help="torch.compile the teacher's calls (rollout and sCM's CFG velocity alike), in this mode "
                         "(default: default; reduce-overhead replays CUDA graphs)")
    ap.add_argument("--rollout-ahead", type=int, default=1, metavar="K",
                    help="TBCM: one rollout serves K steps' prompts (distill.rollout_ahead; the teacher's batch x K); "
                         "a timed unit is then K steps, reported per step (default 1)")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw",
                    help="the student's optimiser, both methods (distill.optimizer; came: about half AdamW's state)")
    ap.add_argument("--offload-frozen", action="store_true",
                    help="TBCM: text encoder and teacher on the CPU between rollouts (distill.offload_frozen); sCM keeps "
                         "them resident")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                    help="bf16: autocast, frozen models stored in bf16 (default on CUDA); fp32 (default on CPU)")
    ap.add_argument("--no-checkpointing", action="store_true", help="no gradient checkpointing of the student")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per method (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps per method (default 1)")
    ap.add_argument("--jvp-repeats", type=int, default=3, help="timed calls per method in the tangent table")
    ap.add_argument("--table-methods", default=",".join(TABLE_METHODS),
                    help="comma-separated JVP methods timed in the tangent table (default: all); each is compared "
                         "with an eager math-backend tangent")
    ap.add_argument("--table-only", action="store_true", help="only the tangent-vs-forward table (no training steps)")
    ap.add_argument("--no-table", action="store_true", help="only the training steps (no tangent-vs-forward table)")
    ap.add_argument("--profile", action="store_true",
                    help="profile one call of the forward and of each tangent method (time by operator family)")
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json (atomically)")
    args = ap.parse_args(argv)
    for name in ("batch", "steps", "jvp_repeats", "rollout_ahead"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    table_methods = [m.strip() for m in args.table_methods.split(",") if m.strip()]
    unknown = sorted(set(table_methods) - set(TABLE_METHODS))
    if unknown:
        raise SystemExit(f"--table-methods: unknown {unknown}; expected some of {list(TABLE_METHODS)}")
    if args.table_only and args.no_table:
        raise SystemExit("--table-only and --no-table leave nothing to measure")
    if args.offload_frozen and args.compile_teacher == "reduce-overhead":
        raise SystemExit("--offload-frozen with --compile-teacher reduce-overhead: the offloaded teacher's weights come "
                         "to new addresses in every rollout, which CUDA graphs would record again (distill.compile "
                         "compiles an offloaded teacher in the default mode)")
    if args.route_steps < 2:
        raise SystemExit(f"--route-steps must be >= 2 (N - 1 pairs per prompt), got {args.route_steps}")
    if args.warmup < 0:
        raise SystemExit(f"--warmup must be >= 0, got {args.warmup}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but no CUDA device is available")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    precision = args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    shapes = tiny_shapes() if args.tiny else sana_sprint_0p6b_shapes()
    frozen_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    memory = Memory(device)
    print(f"building {shapes.name} on {device} ...", file=sys.stderr)
    stack = build_stack(shapes, device, frozen_dtype, checkpointing=not args.no_checkpointing)
    if args.jvp == "processor":
        use_jvp_attention(stack["student_tr"])
    if args.compile or args.compile_teacher:  # torch 2.11's inductor cannot compile a biased conv's JVP
        set_recompile_limit(fail=True)  # an eager fallback would be reported as compiled speed
        compiled_since = compile_stats()
        split_conv_bias(stack["student_tr"])
        split_conv_bias(stack["teacher_tr"])
    if args.compile_teacher:
        stack["teacher_compiled"] = CompiledTeacher(sana_denoiser(stack["teacher_tr"]), args.compile_teacher,
                                                    transformer=stack["teacher_tr"])
    encode, text_tokens = text_encoder_fn(stack, shapes)
    with autocast_for(device, precision):
        uncond = encode.uncond()  # the empty prompt without the instruction (SanaPipeline's negative branch)
    report = dict(shapes=shapes.name, device=device_name(device), date=datetime.datetime.now().isoformat(timespec="seconds"),
                  command=" ".join(["python benchmarks/step_cost.py", *(argv if argv is not None else sys.argv[1:])]),
                  batch=args.batch, rollout_ahead=args.rollout_ahead, optimizer=args.optimizer,
                  offload_frozen=args.offload_frozen, route_steps=args.route_steps, precision=precision, jvp=args.jvp, compile=args.compile,
                  compile_teacher=args.compile_teacher,
                  checkpointing=not args.no_checkpointing, steps=args.steps, warmup=args.warmup, text_tokens=text_tokens)
    # one student wrapper for both methods (a compiled tangent is guarded on the module it closes over)
    plain = SanaTrigFlowStudent(stack["student_tr"])
    if args.compile:  # the gradient pass: its blocks compiled in place, as distill.compile does
        compile_gradient_pass(plain)
    student = Timed(plain, None, "student forward")
    for method in () if args.table_only else ("tbcm", "scm"):
        print(f"{method} steps ...", file=sys.stderr)
        r = report[method] = run_method(method, stack, shapes, args, device, encode, uncond, memory, args.steps,
                                        student)
        pieces = ", ".join(f"{name} {_ms(p['s'])}" for name, p in r["pieces"].items())
        print(f"  {method}: {_ms(r['step_s'])} ms/step ({_ms(r['step_s'] / r['pairs'])} per pair), peak "
              f"{_gib(r['peak_bytes'])} GiB, first step {_ms(r['first_step_s'])} ms; {pieces}", file=sys.stderr, flush=True)
    if not args.no_table:
        print("tangent vs forward ...", file=sys.stderr)
    report["jvp_ratios"] = None if args.no_table else jvp_ratios(stack, shapes, args, device, encode, uncond, memory, args.jvp_repeats,
                                      table_methods, profile=args.profile)
    report["dynamo"] = compile_stats(since=compiled_since) if args.compile or args.compile_teacher else None
    publish(report, markdown(report), args.out)
    return report


def publish(report: dict, text: str, out: str | None) -> None:
    """The tables on stdout and, with --out, OUT.md and OUT.json, each written atomically."""
    print(text)
    write_tables(out, report, text)


if __name__ == "__main__":
    main()
