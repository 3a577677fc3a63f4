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
    # an offloaded teacher's weights come back at new addresses each rollout: no recorded graphs
    assert teacher_compile_mode(torch.device("cuda"), offloaded=True) == "default"
    with pytest.raises(ValueError, match="unknown compile mode 'fast'"):
        CompiledTeacher(Field(), "fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (inductor skips them on the CPU)")
def test_cuda_graph_replays_match_eager_on_a_gpu():
    """On a GPU "reduce-overhead" really replays CUDA graphs: each output must survive the next replay, and a
    smaller last batch (a shorter last rollout group) must still be right."""
    torch.manual_seed(0)
    f = Field().cuda()
    compiled = CompiledTeacher(f, teacher_compile_mode(torch.device("cuda")))
    calls = [(torch.randn(b, 4, device="cuda"), torch.rand(b, device="cuda"), {"y": torch.randn(b, 4, device="cuda")})
             for b in (6, 6, 6, 2)]
    outs = [compiled(*c) for c in calls]
    for c, out in zip(calls, outs):
        torch.testing.assert_close(out, f(*c))
