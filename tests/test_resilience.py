"""The one circuit breaker and the one reconnect backoff (unit, on a fake clock: no sleeps)."""

from __future__ import annotations

import numpy as np
import pytest

from vtuber.audio import resample
from vtuber.resilience import Backoff, CircuitBreaker


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_the_breaker_opens_on_a_failure_and_closes_after_retry_after_s():
    clock = FakeClock()
    b = CircuitBreaker(30.0, now=clock)
    assert b.usable()
    b.failed("connection refused")
    assert not b.usable() and b.last_error == "connection refused"
    clock.t += 29.9
    assert not b.usable()
    clock.t += 0.1
    assert b.usable()  # tried again after retry_after_s
    b.failed("timeout")
    b.used_local()
    assert not b.usable()
    b.succeeded()  # an answer closes it at once
    assert b.usable()
    assert b.counts == {"remote": 1, "local": 1, "fallbacks": 2}
    assert b.last_error == "timeout"  # kept for the report


def test_a_zero_retry_breaker_asks_again_at_once():
    clock = FakeClock()
    b = CircuitBreaker(0.0, now=clock)
    b.failed("x")
    assert b.usable()


def test_the_backoff_doubles_to_its_cap_and_starts_again_after_a_reset():
    b = Backoff(1.0, 30.0)
    assert [b.next() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.attempts == 7
    b.reset()
    assert b.next() == 1.0
    assert b.delay(1000) == 30.0  # a very long outage: still the cap, no overflow


def test_the_jittered_backoff_stays_in_its_band():
    seen = []

    def rand(lo, hi):
        seen.append((lo, hi))
        return lo  # the shortest the band allows

    b = Backoff(0.2, 1.0, jitter=(0.75, 1.0), rand=rand)
    assert [round(b.next(), 6) for _ in range(5)] == [0.15, 0.3, 0.6, 0.75, 0.75]
    assert seen == [(0.75, 1.0)] * 5
    real = Backoff(1.0, 60.0, jitter=(0.75, 1.0))
    for n in range(12):
        d = real.next()
        assert 0.75 * min(60.0, 2.0**n) <= d <= min(60.0, 2.0**n)


def test_a_negative_delay_is_refused():
    with pytest.raises(ValueError):
        Backoff(-1.0, 5.0)


# --- the one resampler -------------------------------------------------------------------


def tone(freq, rate, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


@pytest.mark.parametrize("src, dst", [(22050, 16000), (16000, 22050), (48000, 16000), (44100, 22050)])
def test_resample_keeps_a_tone_and_its_length(src, dst):
    y = resample(tone(440, src), src, dst)
    assert y.dtype == np.float32 and abs(len(y) - dst) <= 1
    spectrum = np.abs(np.fft.rfft(y[dst // 10 : -dst // 10]))
    peak_hz = np.argmax(spectrum) * dst / len(y[dst // 10 : -dst // 10])
    assert abs(peak_hz - 440) < 5
    assert 0.6 < np.sqrt(np.mean(y[dst // 10 : -dst // 10] ** 2)) / np.sqrt(0.5) < 1.1


def test_resample_removes_what_the_lower_rate_cannot_hold():
    y = resample(tone(10000, 48000), 48000, 16000)  # above 8 kHz: must not fold back as 6 kHz
    assert np.sqrt(np.mean(y**2)) < 0.01


def test_resample_keeps_int16_as_int16():
    pcm = (tone(300, 22050) * 12000).astype(np.int16)
    y = resample(pcm, 22050, 16000)
    assert y.dtype == np.int16 and abs(len(y) - 16000) <= 1
    assert 0.8 * 12000 < np.abs(y).max() <= 12500
    assert resample(pcm, 22050, 22050) is pcm  # same rate: the same samples, no copy
