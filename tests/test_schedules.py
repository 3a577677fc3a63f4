import pytest

from tbcm.schedules import RSchedule


def test_official_warmup_cooldown_values():
    r = RSchedule()  # H 4000, S_r 15000, T_r 2000, R_final 0.75
    got = [r(s) for s in (0, 2000, 4000, 15000, 16000, 17000, 50000)]
    assert got == pytest.approx([0, 0.5, 1, 1, 0.875, 0.75, 0.75], abs=1e-12)


def test_variants():
    assert RSchedule("warmup")(2000) == pytest.approx(0.5) and RSchedule("warmup")(20000) == 1
    w = RSchedule("warmup_to_final", r_final=0.75)
    assert [w(0), w(2000), w(4000), w(20000)] == pytest.approx([0, 0.375, 0.75, 0.75])
    assert RSchedule(warmup_steps=0)(0) == 1


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="unknown r schedule 'cosine'"):
        RSchedule("cosine")
