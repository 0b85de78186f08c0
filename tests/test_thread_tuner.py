"""ThreadTuner: picks the faster of N threads and 1 thread from measured step times (fake clock here)."""

import numpy as np
import torch

from pixelforge.train.speed import ThreadTuner


class FakeMachine:
    """A clock that advances by the step time of the thread count in use."""

    def __init__(self, step_seconds: dict[int, float]):
        self.step_seconds = dict(step_seconds)
        self.now = 0.0
        self.threads = max(step_seconds)
        self.calls: list[int] = []

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.calls.append(n)

    def clock(self) -> float:
        return self.now

    def run(self, tuner: ThreadTuner, steps: int) -> list[int]:
        used = []
        for _ in range(steps):
            self.now += self.step_seconds[self.threads]
            used.append(self.threads)
            tuner.step_done()
        return used


def tuner_for(machine: FakeMachine, **options) -> ThreadTuner:
    return ThreadTuner(max(machine.step_seconds), set_threads=machine.set_threads, clock=machine.clock, **options)


def test_keeps_all_threads_when_they_are_faster():
    machine = FakeMachine({2: 0.001, 1: 0.0015})
    tuner = tuner_for(machine)
    used = machine.run(tuner, 200)
    assert tuner.decisions and set(tuner.decisions) == {2}
    assert used[-100:] == [2] * 100


def test_drops_to_one_thread_when_two_share_a_core_and_probes_again_later():
    machine = FakeMachine({2: 0.004, 1: 0.0023})  # the measured 8,200 vs 14,000 images/s at batch 32
    tuner = tuner_for(machine, every_s=0.5)
    used = machine.run(tuner, 30)
    assert tuner.decisions == [1] and used[-5:] == [1] * 5
    machine.step_seconds = {2: 0.0015, 1: 0.0023}  # the host moved the vCPUs apart
    machine.run(tuner, 2000)
    assert tuner.decisions[-1] == 2 and machine.threads == 2
    tuner.close()
    assert machine.threads == 2


def test_probing_costs_little_when_one_thread_is_much_slower():
    """A slow model on many cores: 1 s per step on 16 threads, 10 s on 1; probes cost under 10% of an hour."""
    machine = FakeMachine({16: 1.0, 1: 10.0})
    tuner = tuner_for(machine)
    steps = 0
    while machine.now < 3600:
        machine.run(tuner, 1)
        steps += 1
    assert steps > 0.9 * 3600 and set(tuner.decisions) == {16}


def test_pause_during_the_one_thread_half_restores_the_chosen_count():
    machine = FakeMachine({2: 0.001, 1: 0.003})
    tuner = tuner_for(machine)
    machine.run(tuner, 14)  # first probe: 2-thread half done, now timing 1 thread
    assert machine.threads == 1
    tuner.pause()  # validation runs on the chosen count, not on the probe's
    assert machine.threads == 2
    machine.run(tuner, 40)
    assert tuner.decisions == [2]


def test_noise_within_the_margin_keeps_all_threads():
    machine = FakeMachine({2: 0.00100, 1: 0.00098})
    tuner = tuner_for(machine)
    machine.run(tuner, 100)
    assert tuner.decisions == [2]


def test_close_restores_the_thread_count_and_pause_skips_the_gap():
    machine = FakeMachine({2: 0.004, 1: 0.002})
    tuner = tuner_for(machine)
    machine.run(tuner, 5)  # mid-probe, on 2 threads
    machine.now += 10.0  # a validation pass
    tuner.pause()
    machine.run(tuner, 40)
    assert tuner.decisions == [1]  # the 10 s gap did not count as a 2-thread step
    tuner.close()
    assert machine.threads == 2 and machine.calls[-1] == 2


def test_one_thread_is_left_alone():
    calls = []
    tuner = ThreadTuner(1, set_threads=calls.append)
    for _ in range(50):
        tuner.step_done()
    tuner.close()
    assert calls == [] and not tuner.active


def test_trainer_restores_threads_after_fit():
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train import Trainer

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8), np.arange(64) % 4
        trainer = Trainer("fmnist_baseline", Preprocess(), verbose=False)
        trainer.fit((x, y), epochs=2, batch_size=8)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
