"""One optimisation step of TBCM (Alg. 1) and of the forward-sampling sCM baseline.

Both build a batch of pairs (x_t, t, dx/dt) and hand it to the same `optimize_pairs`, which computes
`loss.scm_loss`, back-propagates, clips, and steps - unless the loss or the gradient norm is NaN/Inf
or every pair was filtered out, in which case nothing is trained on and the reason is returned.

Data-parallel training (`collective`, e.g. an accelerate.Accelerator under `accelerate launch`): every
process draws the randomness of the WHOLE step (all processes' prompts, routes, guidance, noise and
filter draws) from the same seeded generator and keeps its own slice, so P processes with B prompts
each compute exactly the batch one process with P * B prompts would. Each process's loss is scaled by
its share of the step's kept pairs, so the gradient average DDP takes is the mean over all kept pairs;
every skip decision (all filtered, NaN/Inf loss or gradient) is taken on global values, so all
processes skip together and none waits forever in a collective the others left.

A TBCM step is its pairs (`tbcm_pairs_ahead`: randomness, rollout, filter) then the student's
optimisation on them (`train_on_pairs`); the pairs of several steps may come from one rollout, since
the teacher is frozen (`distill.rollout_ahead`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable, Protocol, Sequence

import torch

from .baseline import forward_pairs
from .denoiser import Condition, Denoiser, concat_conditions, condition_batch_size, repeat_condition, with_guidance
from .filters import brightness_keep
from .loss import check_pairs, scm_loss
from .rollout import Trajectory, draw_guidance, guided_velocity, rollout
from .routes import sample_routes
from .schedules import RSchedule
from .trigflow import SIGMA_DATA


@dataclass
class MethodConfig:
    """Everything a step needs besides the models; defaults are the official TBCM settings."""

    sigma_d: float = SIGMA_DATA
    route_scheme: str = "reference"  # reference | logit_normal | random
    route_steps: int = 16  # N: N - 1 pairs per prompt
    route_shift: float = 2.5
    p_mean: float = 0.2
    p_std: float = 1.6
    guidance_scales: Sequence[float] = (4.0, 4.5, 5.0)
    brightness_threshold: float = 1.0  # <= 0 disables the filter
    tangent_c: float = 0.1
    tangent_method: str = "jvp"  # jvp | finite_difference
    compile_tangent: bool = False  # the tangent call under torch.compile (loss.compiled_directional_derivative)
    grad_clip: float = 0.1
    r: RSchedule = field(default_factory=RSchedule)


@dataclass
class StepResult:
    step: int
    r: float
    loss: float | None = None
    grad_norm: float | None = None
    skipped: str | None = None  # None | "nonfinite_loss" | "nonfinite_grad" | "all_filtered"
    n_pairs: int = 0
    n_prompts: int = 0
    n_dropped: int = 0
    stats: dict = field(default_factory=dict)


@dataclass
class SkipCounter:
    """Counts of skipped steps by reason; a skipped step is never silently trained on."""

    counts: dict = field(default_factory=dict)

    def update(self, res: StepResult) -> None:
        if res.skipped:
            self.counts[res.skipped] = self.counts.get(res.skipped, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Collective(Protocol):
    """What a data-parallel step needs from its process group (accelerate.Accelerator provides all of it)."""

    num_processes: int
    process_index: int

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor: ...

    def backward(self, loss: torch.Tensor) -> None: ...

    def clip_grad_norm_(self, parameters, max_norm: float): ...


def _world(collective: Collective | None) -> tuple[int, int]:
    """(rank, world size); a missing collective is one process."""
    if collective is None:
        return 0, 1
    return int(collective.process_index), int(collective.num_processes)


def _default_backward(loss: torch.Tensor) -> None:
    loss.backward()


def optimize_pairs(
    student: Denoiser,
    weight_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Iterable[torch.nn.Parameter],
    x_t: torch.Tensor,
    t: torch.Tensor,
    dxdt: torch.Tensor,
    cond: Condition,
    step: int,
    cfg: MethodConfig,
    pair_weight: torch.Tensor | None = None,
    backward: Callable[[torch.Tensor], None] = _default_backward,
    clip_grad_norm: Callable = torch.nn.utils.clip_grad_norm_,
    frozen: Denoiser | None = None,
    collective: Collective | None = None,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
) -> StepResult:
    """Loss, backward, clip, step, with the NaN/Inf and empty-batch guards.

    `backward` and `clip_grad_norm` are injectable (tests inject failures). With a `collective` of
    more than one process they are the collective's (DDP's gradient averaging, clipping on the
    averaged gradient), `student` and `weight_fn` are its wrapped modules, `frozen` the unwrapped
    student for the no-grad JVP pass, and the returned loss and statistics are means over processes.
    `autocast` wraps the forward passes only (mixed precision; backward runs outside it).
    """
    params = list(params)
    check_pairs(x_t, t, dxdt)
    r = cfg.r(step)
    res = StepResult(step=step, r=r, n_pairs=int(x_t.shape[0]))
    optimizer.zero_grad(set_to_none=True)
    _, world = _world(collective)
    if world > 1:
        backward, clip_grad_norm = collective.backward, collective.clip_grad_norm_
        local_w = pair_weight.sum().double() if pair_weight is not None else torch.tensor(float(x_t.shape[0]), dtype=torch.float64)
        total_w = float(collective.reduce(local_w.reshape(1).to(x_t.device), "sum"))
        if total_w == 0:
            res.skipped = "all_filtered"
            return res
    elif pair_weight is not None and float(pair_weight.sum()) == 0:
        res.skipped = "all_filtered"
        return res
    with autocast():
        out = scm_loss(
            student, weight_fn, x_t, t, dxdt, cond, r,
            sigma_d=cfg.sigma_d, tangent_c=cfg.tangent_c, pair_weight=pair_weight, tangent_method=cfg.tangent_method,
            frozen=frozen, compile_tangent=cfg.compile_tangent,
        )
    loss = out.loss
    summary = torch.stack([out.loss.detach().float(), out.mse.float().mean(), out.logvar.float().mean(),
                           out.tangent_norm.float().mean()])
    if world > 1:
        # This process's weighted mean times its share of the kept pairs: DDP's average over
        # processes of these is the weighted mean over every kept pair of the global batch.
        share = float(local_w) * world / total_w
        loss = loss * share
        summary[0] = summary[0] * share
        summary = collective.reduce(summary.to(x_t.device), "mean").cpu()
    res.stats = {"mse": float(summary[1]), "logvar": float(summary[2]), "tangent_norm": float(summary[3])}
    if not torch.isfinite(summary[0]):  # in a group: NaN/Inf on any process poisons the mean, so all skip
        res.skipped = "nonfinite_loss"
        return res
    backward(loss)
    grad_norm = clip_grad_norm(params, cfg.grad_clip)
    res.loss, res.grad_norm = float(summary[0]), float(grad_norm)
    if not torch.isfinite(torch.as_tensor(grad_norm)):
        optimizer.zero_grad(set_to_none=True)
        res.skipped = "nonfinite_grad"
        return res
    optimizer.step()
    # Free the gradients now rather than at the next step's start: otherwise they stay resident through
    # the next step's rollout or VAE encode (2.2 GiB at Sana 0.6B, inside sCM's peak; docs/step-cost.md).
    optimizer.zero_grad(set_to_none=True)
    return res


@dataclass
class StepPairs:
    """One step's training pairs on this process: what `optimize_pairs` trains on, ready before the step.

    Each prompt's condition is kept once (at Sana scale 300 x 2304 numbers) and repeated for its pairs
    only when the step trains (`student_cond`): steps rolled out ahead cost their latents, not N - 1
    copies of every embedding."""

    x_t: torch.Tensor  # [pairs, ...], prompt-major
    t: torch.Tensor  # [pairs]
    dxdt: torch.Tensor  # [pairs, ...]
    prompt_cond: dict  # the teacher's condition, one row per prompt
    guidance: torch.Tensor  # [prompts]: the CFG scale of each prompt's trajectory
    pair_weight: torch.Tensor  # [pairs]: 1 kept, 0 dropped by the brightness filter
    keep: torch.Tensor  # [prompts] bool, on the CPU

    def student_cond(self) -> dict:
        """The student's condition per pair: its prompt's, and the guidance scale it is distilled at."""
        k = self.x_t.shape[0] // self.keep.numel()
        return with_guidance(repeat_condition(self.prompt_cond, k), self.guidance.repeat_interleave(k))

    def state(self) -> dict:
        """Compact CPU copies (a slice of a rollout would save the whole rollout's storage), for a checkpoint."""
        cpu = lambda x: x.detach().cpu().clone()  # noqa: E731
        return {"x_t": cpu(self.x_t), "t": cpu(self.t), "dxdt": cpu(self.dxdt),
                "prompt_cond": {k: cpu(v) for k, v in self.prompt_cond.items()}, "guidance": cpu(self.guidance),
                "pair_weight": cpu(self.pair_weight), "keep": cpu(self.keep)}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str) -> "StepPairs":
        to = lambda x: x.to(device)  # noqa: E731
        return cls(x_t=to(state["x_t"]), t=to(state["t"]), dxdt=to(state["dxdt"]),
                   prompt_cond={k: to(v) for k, v in state["prompt_cond"].items()}, guidance=to(state["guidance"]),
                   pair_weight=to(state["pair_weight"]), keep=state["keep"])


def _step_draws(b: int, world_size: int, rank: int, latent_shape: Sequence[int], cfg: MethodConfig,
                generator: torch.Generator, filtering: bool):
    """One step's randomness, drawn for all world_size * b prompts in the order one process draws them;
    this process's rows are kept. The filter's draws come last, as when they followed the rollout."""
    n = b * world_size
    routes = sample_routes(
        cfg.route_scheme, n, cfg.route_steps, generator,
        shift=cfg.route_shift, p_mean=cfg.p_mean, p_std=cfg.p_std, sigma_d=cfg.sigma_d,
    )
    guidance = draw_guidance(n, cfg.guidance_scales, generator)
    noise = torch.randn((n, *latent_shape), generator=generator, dtype=torch.float64)
    uniform = torch.rand(n, generator=generator, dtype=torch.float64) if filtering else None
    mine = slice(rank * b, (rank + 1) * b)
    return routes[mine], guidance[mine], noise[mine], None if uniform is None else uniform[mine]


def tbcm_pairs_ahead(
    teacher: Denoiser,
    conds: Sequence[Condition],
    uncond: Condition | None,
    latent_shape: Sequence[int],
    cfg: MethodConfig,
    generator: torch.Generator,
    black_latent: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    batch: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
) -> tuple[list[StepPairs], Trajectory]:
    """The pairs of several consecutive steps (one condition each) from ONE rollout of all their prompts.

    All randomness (routes, guidance, noise, filter) comes from `generator`, drawn on the CPU, so a run
    is reproducible across devices and resumable from the generator's state. With `world_size` > 1 each
    condition holds this process's B prompts of its step; the draws are made for all world_size * B
    prompts, in the order one process would make them, and rows [rank * B, (rank + 1) * B) are kept.
    Each step's randomness is drawn in step order, exactly as one call per step draws it, and the
    teacher is frozen, so step j's pairs are the ones it would get on its own (up to float rounding
    that depends on the batch size): rolling out ahead changes no distribution. What it changes is the
    teacher's batch: the N route calls run once on all the steps' prompts instead of N times per step,
    which matters where a small call is bound by launching its kernels rather than by the GPU (Sana
    0.6B on an H100, batch 2: 28-40 ms per sample-forward against 8.8 at batch 30; docs/step-cost.md).
    Returns the steps' pairs and the whole rollout.
    """
    if not conds:
        raise ValueError("no steps to roll out: conds is empty")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a group of {world_size} processes")
    sizes = []
    for cond in conds:
        b = condition_batch_size(cond) or batch
        if batch is not None and b != batch:
            raise ValueError(f"batch={batch} but the condition has {b} rows")
        if not b:
            raise ValueError("empty prompt batch: the condition has no rows (pass batch= for an unconditional model)")
        sizes.append(b)
    filtering = black_latent is not None and cfg.brightness_threshold > 0
    draws = [_step_draws(b, world_size, rank, latent_shape, cfg, generator, filtering) for b in sizes]
    routes, guidance, noise = (torch.cat([d[i] for d in draws]) for i in range(3))
    noise = noise.to(device=device, dtype=dtype)
    cond_all = conds[0]
    for cond in conds[1:]:
        cond_all = concat_conditions(cond_all, cond)
    with autocast():
        traj = rollout(teacher, cond_all, uncond, routes, noise * cfg.sigma_d, guidance, cfg.sigma_d)
    if filtering:
        uniform = torch.cat([d[3] for d in draws])
        keep, _ = brightness_keep(traj.x0, black_latent, cfg.brightness_threshold, cfg.sigma_d, uniform=uniform)
    else:
        keep = torch.ones(sum(sizes), dtype=torch.bool)
    keep = keep.cpu()
    k = traj.pairs_per_prompt
    steps, start = [], 0
    for cond, b in zip(conds, sizes):
        rows = slice(start, start + b)
        x_t = traj.x_t[rows].flatten(0, 1)  # prompt-major, matching repeat_condition
        steps.append(StepPairs(
            x_t=x_t, t=traj.t[rows].flatten(0, 1), dxdt=traj.dxdt[rows].flatten(0, 1), prompt_cond=dict(cond),
            guidance=traj.guidance[rows],
            pair_weight=keep[rows].to(device=x_t.device, dtype=x_t.dtype).repeat_interleave(k), keep=keep[rows],
        ))
        start += b
    return steps, traj


def train_on_pairs(
    student: Denoiser,
    weight_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Iterable[torch.nn.Parameter],
    pairs: StepPairs,
    step: int,
    cfg: MethodConfig,
    collective: Collective | None = None,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    **optimize_kw,
) -> StepResult:
    """The student's half of a TBCM step: the sCM loss on one step's trajectory pairs.

    With a `collective`, `pairs` are this process's and the result counts (prompts, dropped prompts)
    are the whole step's."""
    _, world = _world(collective)
    n_dropped = int((~pairs.keep).sum())
    if world > 1:
        n_dropped = int(collective.reduce(torch.tensor([n_dropped], device=pairs.x_t.device), "sum"))
    res = optimize_pairs(
        student, weight_fn, optimizer, params, pairs.x_t, pairs.t, pairs.dxdt, pairs.student_cond(), step, cfg,
        pair_weight=None if n_dropped == 0 else pairs.pair_weight, collective=collective, autocast=autocast,
        **optimize_kw,
    )
    res.n_prompts, res.n_dropped = int(pairs.keep.numel()) * world, n_dropped
    return res


def tbcm_step(
    student: Denoiser,
    weight_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Iterable[torch.nn.Parameter],
    teacher: Denoiser,
    cond: Condition,
    uncond: Condition | None,
    latent_shape: Sequence[int],
    step: int,
    cfg: MethodConfig,
    generator: torch.Generator,
    black_latent: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    batch: int | None = None,
    collective: Collective | None = None,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    **optimize_kw,
) -> StepResult:
    """One TBCM step (Alg. 1): rollout -> brightness filter -> sCM loss on the trajectory pairs.

    With a `collective`, `cond` is this process's slice of the step's prompts and the result counts
    (prompts, dropped prompts) are the whole step's."""
    rank, world = _world(collective)
    (pairs,), _ = tbcm_pairs_ahead(teacher, [cond], uncond, latent_shape, cfg, generator, black_latent, device, dtype,
                                   batch, rank=rank, world_size=world, autocast=autocast)
    return train_on_pairs(student, weight_fn, optimizer, params, pairs, step, cfg, collective=collective,
                          autocast=autocast, **optimize_kw)


def scm_step(
    student: Denoiser,
    weight_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Iterable[torch.nn.Parameter],
    teacher: Denoiser,
    x0: torch.Tensor,
    cond: Condition,
    uncond: Condition | None,
    step: int,
    cfg: MethodConfig,
    generator: torch.Generator,
    **optimize_kw,
) -> StepResult:
    """One forward-sampling sCM step: clean latents x0 (TrigFlow scale) noised at log-normal t."""
    b = x0.shape[0]
    if condition_batch_size(cond) not in (None, b):
        raise ValueError(f"x0 has {b} rows but the condition has {condition_batch_size(cond)}")
    x_t, t = forward_pairs(x0, generator, cfg.p_mean, cfg.p_std, cfg.sigma_d)
    guidance = draw_guidance(b, cfg.guidance_scales, generator).to(x0)
    with torch.no_grad():
        dxdt = guided_velocity(teacher, x_t, t, cond, uncond, guidance, cfg.sigma_d)
    res = optimize_pairs(
        student, weight_fn, optimizer, params, x_t, t, dxdt, with_guidance(cond, guidance), step, cfg, **optimize_kw
    )
    res.n_prompts = b
    return res
