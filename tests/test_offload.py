"""tbcm.offload: each frozen model comes to the device at its first call and both leave on offload(). On the
CPU the moves are recorded against a device the hooks take for another one (cpu:0), so the order is
checked without a GPU; what it saves on a GPU is not measured here."""

import torch

from tbcm.offload import FrozenOffload


def test_models_move_in_for_their_calls_and_out_after_the_rollout(monkeypatch):
    encoder, teacher = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    names = {id(encoder): "encoder", id(teacher): "teacher"}
    moves = []
    real_to = torch.nn.Module.to

    def spy(self, *args, **kw):
        if id(self) in names:
            moves.append((names[id(self)], str(args[0] if args else kw.get("device"))))
        return real_to(self, *args, **kw)

    monkeypatch.setattr(torch.nn.Module, "to", spy)
    frozen = FrozenOffload(encoder, teacher, torch.device("cpu", 0))
    assert moves == [("encoder", "cpu"), ("teacher", "cpu")]  # both start off the device
    moves.clear()
    x = torch.ones(1, 2)
    encoder(x)
    assert moves == [("encoder", "cpu:0")]
    frozen.offload()  # distill: after the encode, then after the rollout
    teacher(x)
    assert moves[1:] == [("encoder", "cpu"), ("teacher", "cpu"), ("teacher", "cpu:0")]
    moves.clear()
    frozen.offload()
    assert moves == [("encoder", "cpu"), ("teacher", "cpu")]
    frozen.remove()
    moves.clear()
    encoder(x), teacher(x)
    assert moves == []  # the hooks are gone
