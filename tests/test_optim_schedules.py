"""Learning-rate schedules: values at key steps, the Scheduler driving group rates, state round trip."""

import math

import numpy as np
import pytest

from numbnn.errors import CheckpointError, InputError
from numbnn.optim import SGD, Scheduler, constant, cosine, linear_to_zero, warmup


class Param:
    def __init__(self):
        self.data = np.zeros(2, np.float32)
        self.grad = None


def test_constant():
    assert [constant()(t) for t in (0, 5, 10_000)] == [1.0, 1.0, 1.0]


def test_cosine_key_values():
    s = cosine(100)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.5)
    assert s(25) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert s(100) == pytest.approx(0.0, abs=1e-15)
    assert s(150) == pytest.approx(0.0, abs=1e-15)
    floor = cosine(10, final=0.1)
    assert floor(10) == pytest.approx(0.1) and floor(5) == pytest.approx(0.55)


def test_linear_to_zero_matches_reactnet_lambda():
    epochs = 8
    s = linear_to_zero(epochs)
    for e in range(epochs + 1):
        assert s(e) == pytest.approx(1.0 - e / epochs)
    assert s(epochs + 3) == 0.0  # PokeBNN's hold at zero after the knee


def test_warmup_ramps_then_hands_over():
    s = warmup(linear_to_zero(10), steps=4)
    assert [s(t) for t in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert s(4) == 1.0
    assert s(9) == pytest.approx(0.5)
    assert s(14) == 0.0
    assert warmup(constant(), 0)(0) == 1.0


def test_scheduler_scales_each_group_from_its_own_base():
    a, b = Param(), Param()
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    sched = Scheduler(opt, linear_to_zero(4))
    seen = []
    for _ in range(5):
        seen.append([g["lr"] for g in opt.param_groups])
        sched.step()
    np.testing.assert_allclose(seen, [[0.1 * f, 0.01 * f] for f in (1.0, 0.75, 0.5, 0.25, 0.0)], rtol=1e-15)
    assert sched.lr == 0.0 and sched.step_count == 5


def test_scheduler_applies_step_zero_at_construction():
    opt = SGD([Param()], lr=1.0)
    Scheduler(opt, warmup(constant(), 3))
    assert opt.lr == pytest.approx(0.25)


def test_scheduler_state_round_trip():
    opt = SGD([Param()], lr=0.2)
    sched = Scheduler(opt, cosine(10))
    for _ in range(3):
        sched.step()
    state = {k: np.asarray(v) for k, v in sched.state_dict().items()}  # as HDF5 returns it

    opt2 = SGD([Param()], lr=5.0)
    sched2 = Scheduler(opt2, cosine(10))
    sched2.load_state_dict(state)
    assert sched2.step_count == 3 and opt2.lr == opt.lr
    for _ in range(4):
        sched.step()
        sched2.step()
        assert opt2.lr == opt.lr and isinstance(opt2.lr, float)


def test_scheduler_state_with_wrong_group_count_is_rejected():
    sched = Scheduler(SGD([Param()], lr=0.1), constant())
    other = Scheduler(SGD([{"params": [Param()]}, {"params": [Param()]}], lr=0.1), constant())
    with pytest.raises(CheckpointError, match="groups"):
        other.load_state_dict(sched.state_dict())


@pytest.mark.parametrize(
    "build, match",
    [(lambda: cosine(0), "total_steps"), (lambda: cosine(10, final=2.0), "final"),
     (lambda: linear_to_zero(2.5), "total_steps"), (lambda: warmup(constant(), -1), "steps"),
     (lambda: warmup(3, 2), "schedule"), (lambda: Scheduler(SGD([Param()], lr=0.1), "cosine"), "schedule")],
)
def test_bad_schedule_arguments(build, match):
    with pytest.raises(InputError, match=match):
        build()
