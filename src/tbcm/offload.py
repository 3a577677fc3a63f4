"""The frozen models (text encoder, teacher) off the device between rollouts (`distill.offload_frozen`).

TBCM needs its text encoder and teacher only while it encodes prompts and rolls the teacher out; the
student's steps need neither. With `distill.rollout_ahead` K that is once per K steps, so the two can
live on the CPU and come to the device for each rollout: the student's steps then run without
Gemma-2-2B (4.9 GiB in bf16) and the teacher (1.1 GiB) resident, at the price of moving them in and
out once per K steps. Forward-sampling sCM cannot do the same cheaply: it encodes captions and calls
the teacher in every step (docs/step-cost.md).

The moving is accelerate's `cpu_offload_with_hook` (diffusers' model CPU offload): a model goes to
the device whole at its first call and stays there until `offload()`, which the caller makes after the
encode and after the rollout, so the two are never on the device together. It copies the weights back
to the CPU each time (4.9 + 1.1 GiB out, as in), which frozen weights would not need.
"""

from __future__ import annotations

import torch


class FrozenOffload:
    """Hooks on the text encoder and the teacher's network; `offload()` after each encode and each rollout,
    `remove()` at the end."""

    def __init__(self, encoder: torch.nn.Module, teacher: torch.nn.Module, device: torch.device):
        from accelerate import cpu_offload_with_hook

        if device.type == "cuda" and device.index is None:
            # the hook compares with its weights' device, which has an index; without one it would re-send
            # every call's inputs and walk the module again
            device = torch.device("cuda", torch.cuda.current_device())
        _, self._encoder = cpu_offload_with_hook(encoder, device)
        _, self._teacher = cpu_offload_with_hook(teacher, device)

    def offload(self) -> None:
        """Both models back on the CPU (a model already there is not copied)."""
        self._encoder.offload()
        self._teacher.offload()

    def remove(self) -> None:
        """Take the hooks off (the models stay on the CPU)."""
        self.offload()
        self._encoder.remove()
        self._teacher.remove()
