"""Lambda schedules start, end and grow as documented; the LR factor decays as documented."""

import math

import pytest

from sparsity_search.config import TrainConfig
from sparsity_search.schedules import (Annealing, Constant, Linear, Piecewise, _Timeline, lr_at, lr_factor,
                                      make_lambda_schedule)

STEPS = 10


def _values(schedule, epochs):
    return [schedule.lambda_at(e, s) for e in range(epochs) for s in range(STEPS)]


def test_constant_is_lambda_max_everywhere():
    assert set(_values(Constant(0.7), 3)) == {0.7}


def test_linear_is_zero_in_warmup_then_ramps_to_lambda_max():
    sched = Linear(2.0, _Timeline(epochs=5, steps_per_epoch=STEPS, warmup_epochs=1.0))
    values = _values(sched, 5)
    assert all(v == 0.0 for v in values[:STEPS])  # the whole warm-up epoch
    assert values[-1] == pytest.approx(2.0)
    assert values[STEPS + 4] == pytest.approx(2.0 * 5 / 40)  # halfway through epoch 1 of 4 ramp epochs
    assert all(b >= a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("temperature", [0.05, 0.3, 1.0, 10.0])
def test_annealing_starts_near_zero_ends_at_lambda_max_and_is_monotone(temperature):
    sched = Annealing(3.0, temperature, _Timeline(epochs=6, steps_per_epoch=STEPS))
    values = _values(sched, 6)
    p0 = 1 / 60  # progress after the first of 60 steps
    assert values[0] == pytest.approx(3.0 * math.expm1(-p0 / temperature) / math.expm1(-1 / temperature))
    assert values[0] < 3.0 * 0.35  # near zero at the start, even at the coldest setting
    assert values[-1] == pytest.approx(3.0)
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_colder_annealing_reaches_the_weight_sooner():
    fast = Annealing(1.0, 0.1, _Timeline(10, STEPS))
    slow = Annealing(1.0, 5.0, _Timeline(10, STEPS))
    linear = Linear(1.0, _Timeline(10, STEPS))
    assert fast.lambda_at(2, 0) > slow.lambda_at(2, 0) > linear.lambda_at(2, 0) * 0.99
    # hot limit: annealing tends to the linear ramp
    assert Annealing(1.0, 1e4, _Timeline(10, STEPS)).lambda_at(4, 9) == pytest.approx(linear.lambda_at(4, 9), 1e-3)


def test_factory_reads_the_config():
    cfg = TrainConfig(schedule="linear", lambda_max=1.0, epochs=4)
    assert isinstance(make_lambda_schedule(cfg, STEPS), Linear)
    assert isinstance(make_lambda_schedule(cfg.replace(schedule="annealing"), STEPS), Annealing)
    assert make_lambda_schedule(cfg.replace(schedule="constant"), STEPS).lambda_at(0, 0) == 1.0


def test_lr_factor_cosine_and_step():
    cfg = TrainConfig(epochs=4, lr_schedule="cosine")
    assert lr_factor(cfg, 0, 0, STEPS) == 1.0
    assert lr_factor(cfg, 2, 0, STEPS) == pytest.approx(0.5)
    assert lr_factor(cfg, 3, STEPS - 1, STEPS) < 0.01
    step = cfg.replace(lr_schedule="step", lr_step_epochs=2, lr_gamma=0.5)
    assert [lr_factor(step, e, 0, STEPS) for e in range(4)] == [1.0, 1.0, 0.5, 0.5]
    assert lr_factor(cfg.replace(lr_schedule="constant"), 3, 5, STEPS) == 1.0


def test_piecewise_holds_each_value_from_its_epoch_until_the_next_point():
    sched = Piecewise(((0.0, 0.5), (2.0, 1.0), (2.0, 1.5), (3.5, 0.1)), STEPS)
    assert [sched.lambda_at(e, 0) for e in range(5)] == [0.5, 0.5, 1.5, 1.5, 0.1]  # a jump at 2: the later wins
    assert sched.lambda_at(1, STEPS - 1) == 0.5 and sched.lambda_at(3, 4) == 1.5 and sched.lambda_at(3, 5) == 0.1
    cfg = TrainConfig(schedule="piecewise", lambda_points=[[0, 0.5], [2, 1.0]], lr_schedule="piecewise",
                      lr_points=[[0, 1e-3], [1, 5e-4]], epochs=4)
    assert make_lambda_schedule(cfg, STEPS).lambda_at(3, 9) == 1.0
    assert [lr_at(cfg, e, 3, STEPS) for e in range(3)] == [1e-3, 5e-4, 5e-4]  # absolute, not a factor of lr


def test_lr_at_is_lr_times_the_factor_for_every_other_schedule():
    for schedule in ("cosine", "step", "constant"):
        cfg = TrainConfig(epochs=4, lr=3e-3, lr_schedule=schedule, lr_step_epochs=1)
        assert [lr_at(cfg, e, s, STEPS) for e in range(4) for s in (0, 7)] == \
            [3e-3 * lr_factor(cfg, e, s, STEPS) for e in range(4) for s in (0, 7)]
