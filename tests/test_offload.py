"""tbcm.offload: frozen models in host memory, copied to the device around each use and dropped after it.
On the CPU the device copy is still a new copy, so what is checked here (new storage inside, the host copy
after, nothing copied back, one model at a time, a compiled model following its weights without compiling
again) holds as on a GPU; the GPU test checks the pinned host copies and the freed device memory."""

import pytest
import torch
from torch._dynamo.utils import counters

from tbcm.offload import FrozenOffload


def frozen_pair():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)).requires_grad_(False)
    teacher = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 4)).requires_grad_(False)
    teacher.register_buffer("scale", torch.tensor(2.0))
    return encoder, teacher


def pointers(model):
    return [t.data_ptr() for t in (*model.parameters(), *model.buffers())]


def test_each_use_gets_a_fresh_device_copy_and_leaves_only_the_host_copy():
    encoder, teacher = frozen_pair()
    x = torch.randn(3, 4)
    before = teacher(x)
    frozen = FrozenOffload([encoder, teacher], torch.device("cpu"))
    host_enc, host_teacher = pointers(encoder), pointers(teacher)
    with frozen.on_device(teacher):
        inside = pointers(teacher)
        assert not set(inside) & set(host_teacher)  # new storage for every weight and buffer
        assert pointers(encoder) == host_enc  # one model on the device at a time
        torch.testing.assert_close(teacher(x), before, rtol=0, atol=0)
        teacher[0].weight.add_(1.0)  # a frozen model's device copy is dropped, never copied back
    assert pointers(teacher) == host_teacher
    torch.testing.assert_close(teacher(x), before, rtol=0, atol=0)
    with frozen.on_device(encoder):
        assert pointers(encoder) != host_enc and pointers(teacher) == host_teacher
    assert pointers(encoder) == host_enc


def test_the_host_copy_comes_back_when_the_block_raises():
    encoder, teacher = frozen_pair()
    frozen = FrozenOffload([encoder, teacher], torch.device("cpu"))
    host = pointers(teacher)
    with pytest.raises(RuntimeError, match="boom"), frozen.on_device(teacher):
        raise RuntimeError("boom")
    assert pointers(teacher) == host


def test_a_failed_copy_is_undone_and_nesting_is_refused(monkeypatch):
    encoder, teacher = frozen_pair()
    frozen = FrozenOffload([encoder, teacher], torch.device("cpu"))
    host = pointers(teacher)
    real_to, calls = torch.Tensor.to, []

    def failing_to(self, *args, **kw):  # the third weight's copy runs out of memory
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("no room")
        return real_to(self, *args, **kw)

    monkeypatch.setattr(torch.Tensor, "to", failing_to)
    with pytest.raises(torch.OutOfMemoryError), frozen.on_device(teacher):
        pass
    monkeypatch.undo()
    assert pointers(teacher) == host  # the two weights already copied are dropped again
    with frozen.on_device(teacher):
        with pytest.raises(RuntimeError, match="inside another model's on_device"), frozen.on_device(encoder):
            pass
        assert pointers(teacher) != host  # the outer model stays on the device


def test_trainable_and_unknown_models_are_refused():
    encoder, teacher = frozen_pair()
    with pytest.raises(ValueError, match="Linear has trainable parameters"):
        FrozenOffload([torch.nn.Linear(2, 2)], torch.device("cpu"))
    frozen = FrozenOffload([encoder], torch.device("cpu"))
    with pytest.raises(KeyError, match="Sequential is not one of the offloaded models"), frozen.on_device(teacher):
        pass


def test_disabled_places_once_and_then_leaves_the_models_alone():
    encoder, teacher = frozen_pair()
    frozen = FrozenOffload([encoder, teacher], torch.device("cpu"), enabled=False)
    host = pointers(teacher)
    with frozen.on_device(teacher):
        assert pointers(teacher) == host
    assert pointers(teacher) == host


def test_a_compiled_model_follows_its_weights_across_placements_without_compiling_again():
    """distill.compile with offload_frozen: the teacher is compiled once and finds its weights at new addresses
    in every rollout (models.compiled_teacher then compiles it without CUDA graphs)."""
    torch._dynamo.reset()
    encoder, teacher = frozen_pair()
    x = torch.randn(3, 4)
    expected = teacher(x)
    frozen = FrozenOffload([encoder, teacher], torch.device("cpu"))
    compiled = torch.compile(teacher)
    graphs = counters["stats"]["unique_graphs"]
    outs = []
    for _ in range(3):
        with frozen.on_device(encoder):
            pass
        with frozen.on_device(teacher):
            outs.append(compiled(x))
    assert counters["stats"]["unique_graphs"] - graphs == 1
    for out in outs:
        torch.testing.assert_close(out, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_host_copies_are_pinned_and_device_memory_is_freed_after_each_use():
    encoder, teacher = frozen_pair()
    device = torch.device("cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    frozen = FrozenOffload([encoder, teacher], device)
    assert all(t.is_pinned() for t in (*teacher.parameters(), *teacher.buffers()))
    x = torch.randn(3, 4, device=device)
    with frozen.on_device(teacher):
        assert all(t.device.type == "cuda" for t in teacher.parameters())
        assert torch.cuda.memory_allocated() > base + x.numel() * 4
        teacher(x)
    assert all(t.device.type == "cpu" for t in teacher.parameters())
    del x
    assert torch.cuda.memory_allocated() == base
