"""The frozen models (text encoder, teacher) off the device between their uses (`distill.offload_frozen`).

TBCM needs its text encoder and teacher only while it encodes prompts and rolls the teacher out; the
student's steps need neither. With `distill.rollout_ahead` K that is once per K steps, so the two can
live on the CPU and come to the device for each encode and rollout: the student's steps then run without
Gemma-2-2B (4.9 GiB in bf16) and the teacher (1.1 GiB) resident, at the price of copying them in once
per K steps. Forward-sampling sCM cannot do the same cheaply: it encodes captions and calls the teacher
in every step (docs/step-cost.md).

Written here rather than with accelerate's `cpu_offload_with_hook` (diffusers' model CPU offload), which
this module used before, for two reasons. Frozen weights never change, so the CPU copy is kept (pinned on
a GPU machine, so the copy in runs at full bandwidth) and offloading only drops the device copy, where
accelerate copies every weight back (6 GiB out per rollout). And the caller places a model around its use,
outside any call, where accelerate moves it inside the model's forward hook, which `torch.compile` would
trace into a compiled teacher. Each placement copies into new device memory, so a compiled teacher must
not replay CUDA graphs, which record their weights' addresses (`models.compiled_teacher`).
"""

from __future__ import annotations

import contextlib
import itertools

import torch


class FrozenOffload:
    """Placement of frozen models: `on_device(model)` around each use, one model at a time.

    With `enabled` the models live in host memory and each `on_device` copies one in and drops the copy on
    exit; without it they are moved to the device once and `on_device` does nothing, so callers are written
    once for both. On a CPU-only machine the "device" copy is a second CPU copy while the model is in use:
    the option saves nothing there. Each process pins its own host copies (6 GiB at Sana 0.6B's scale).
    """

    def __init__(self, models, device: torch.device, enabled: bool = True):
        self.device, self.enabled = torch.device(device), enabled
        self._host: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._placed: set[int] = set()
        pin = self.enabled and self.device.type == "cuda" and torch.cuda.is_available()
        for model in models:
            if not enabled:
                model.to(self.device)
                continue
            if any(p.requires_grad for p in model.parameters()):
                raise ValueError(f"{type(model).__name__} has trainable parameters: only frozen models are offloaded "
                                 "(their device copies are dropped, not copied back)")
            entries = []
            for t in itertools.chain(model.parameters(), model.buffers()):
                host = t.detach().to("cpu")
                t.data = host.pin_memory() if pin else host
                entries.append((t, t.data))
            self._host[id(model)] = entries

    @contextlib.contextmanager
    def on_device(self, model):
        """`model`'s weights on the device inside the block, only their host copies after it."""
        if not self.enabled:
            yield model
            return
        if id(model) not in self._host:
            raise KeyError(f"{type(model).__name__} is not one of the offloaded models")
        if self._placed:  # a nested placement would take the outer model off the device under its caller
            raise RuntimeError(f"on_device({type(model).__name__}) inside another model's on_device: one at a time")
        self._placed.add(id(model))  # before copying, so that a failed copy (out of memory) is undone too
        try:
            for t, host in self._host[id(model)]:
                t.data = host.to(self.device, non_blocking=host.is_pinned(), copy=True)
            yield model
        finally:
            self.offload()

    def offload(self) -> None:
        """Every model back to its host copy; the device copies are freed, nothing is copied out."""
        for key in self._placed:
            for t, host in self._host[key]:
                t.data = host
        self._placed.clear()
