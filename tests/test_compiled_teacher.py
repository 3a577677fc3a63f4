"""models.compiled_teacher: the teacher's calls under torch.compile give the eager outputs; on a GPU its mode
replays CUDA graphs and returns copies (their buffers are reused by the next replay)."""

import pytest
import torch

from tbcm.models.compiled_teacher import CompiledTeacher, teacher_compile_mode


class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x, t, cond):
        return self.lin(x) * torch.cos(t)[:, None] + cond["y"]


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_calls_match_eager_and_outputs_survive_the_next_call(mode):
    torch.manual_seed(0)
    f = Field()
    compiled = CompiledTeacher(f, mode)
    calls = [(torch.randn(3, 4), torch.rand(3), {"y": torch.randn(3, 4)}) for _ in range(3)]
    outs = [compiled(*c) for c in calls]  # kept across calls, as the rollout keeps every dx/dt
    for c, out in zip(calls, outs):
        torch.testing.assert_close(out, f(*c))


def test_modes():
    assert teacher_compile_mode(torch.device("cuda")) == "reduce-overhead"
    assert teacher_compile_mode(torch.device("cpu")) == "default"
    with pytest.raises(ValueError, match="unknown compile mode 'fast'"):
        CompiledTeacher(Field(), "fast")
