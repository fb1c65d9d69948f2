"""End of turn by meaning, and push-to-talk.

Unit tests script the detector (complete or not) with an energy VAD and a scripted
recogniser, so the mechanism is proven the same everywhere; the model tests run the
real Smart Turn v3.2 on speech Piper makes."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from vtuber.clock import FastClock
from vtuber.events import Utterance, UtteranceRetracted
from vtuber.hearing import Endpointer, Hearing
from vtuber.hearing.turn import RATE, log_mel, mel_filterbank, smart_turn_model_path
from vtuber.sources import WavReplaySource


class EnergyVAD:
    def __call__(self, frame):
        return 1.0 if np.sqrt(np.mean(frame**2)) > 0.01 else 0.0

    def reset(self):
        pass


class ScriptedASR:
    def __init__(self, text):
        self.text = text

    def transcribe(self, audio):
        return self.text


class ScriptedTurn:
    """The detector's probabilities in order (the last one repeats); records what it was asked."""

    def __init__(self, *verdicts):
        self.verdicts = list(verdicts)
        self.asked: list[float] = []

    def probability(self, audio):
        self.asked.append(len(audio) / RATE)
        return self.verdicts.pop(0) if len(self.verdicts) > 1 else self.verdicts[0]


def tone(s):
    return (0.2 * np.sin(np.arange(int(s * RATE)) * 0.2)).astype(np.float32)


def silence(s):
    return np.zeros(int(s * RATE), np.float32)


def hear(audio, text="Miko, what is the plan for tonight?", presses=(), asr=None, counters=None, **kw):
    """Utterances and retractions heard in `audio`; `presses`: (t, pressed) push-to-talk changes."""
    events = []

    async def run():
        clock = FastClock()
        hearing = Hearing(EnergyVAD(), Endpointer(), asr or ScriptedASR(text), clock, events.append, **kw)
        clock.start()
        pending = sorted(presses)

        def feed(ev):
            while pending and pending[0][0] <= ev.t:
                hearing.talk(pending.pop(0)[1])
            hearing.feed(ev)

        await WavReplaySource(audio).run(clock, feed)
        await hearing.drain()
        hearing.close()
        if counters is not None:
            counters.update(hearing.counters)

    asyncio.run(run())
    return [e for e in events if isinstance(e, (Utterance, UtteranceRetracted))]


def test_a_finished_turn_goes_out_at_the_short_pause_even_without_a_full_stop():
    turn = ScriptedTurn(0.95)
    (u,) = hear(np.concatenate([silence(0.5), tone(1.5), silence(2.0)]), text="okay chat so", turn=turn)
    assert u.text == "okay chat so"
    assert u.t_endpoint - u.t_end < 0.25  # at the short pause (128 ms), not the 448 ms hangover
    assert turn.asked  # the detector decided, not the punctuation


def test_an_unfinished_turn_waits_through_the_pause_and_is_heard_whole():
    # A whole sentence by its text, but the detector hears more coming: no early answer,
    # and the streamer going on 1 s later is heard as one utterance.
    turn = ScriptedTurn(0.2, 0.95)  # at the pause: not over; after the rest: over
    audio = np.concatenate([silence(0.5), tone(1.0), silence(1.0), tone(1.0), silence(2.5)])
    events = hear(audio, turn=turn, turn_wait_ms=1500)
    assert [type(e).__name__ for e in events] == ["Utterance"]
    assert events[0].t_start < 0.6 and events[0].t_end > 3.4  # both parts, one turn


def test_an_unfinished_turn_goes_out_after_turn_wait_ms_of_silence():
    turn = ScriptedTurn(0.1)
    (u,) = hear(np.concatenate([silence(0.5), tone(1.0), silence(3.0)]), turn=turn, turn_wait_ms=1500)
    assert 1.4 <= u.t_endpoint - u.t_end <= 1.6


def test_a_held_turn_goes_out_on_the_clock_when_no_more_audio_comes():
    # The recording ends (or the mic goes quiet) before turn_wait_ms of silence has been
    # fed: the held transcript is still sent at its deadline, and the director stops
    # waiting for the streamer (a bench once waited for it forever).
    turn = ScriptedTurn(0.1)
    events, talking = [], []

    async def run():
        clock = FastClock()
        hearing = Hearing(EnergyVAD(), Endpointer(), ScriptedASR("so what I was thinking"), clock, events.append, turn=turn, turn_wait_ms=3000)
        clock.start()
        await WavReplaySource(np.concatenate([silence(0.5), tone(1.0)])).run(clock, hearing.feed)  # 1.28 s of silence after
        clock.add_source()
        await clock.sleep_until(clock.now() + 3.0)  # no frames: only the clock goes on
        clock.source_done()
        talking.append(hearing.streamer_talking)
        hearing.close()

    asyncio.run(run())
    (u,) = [e for e in events if isinstance(e, Utterance)]
    assert u.text == "so what I was thinking"
    assert 2.9 <= u.t_endpoint - u.t_end <= 3.1
    assert talking == [False]
    assert turn.asked  # it was held by the detector's verdict, not sent at once


def test_the_detector_is_asked_once_at_the_short_pause_not_again_at_the_endpoint():
    turn = ScriptedTurn(0.3, 0.99)  # a second verdict would say "over": it must not be asked
    (u,) = hear(np.concatenate([silence(0.5), tone(1.5), silence(3.0)]), turn=turn, turn_wait_ms=1500)
    assert len(turn.asked) == 1 and turn.asked[0] < 1.9  # the utterance up to the short pause
    assert 1.4 <= u.t_endpoint - u.t_end <= 1.6  # waited: not over


@pytest.mark.parametrize("text", ["Miko.", "The best part about this game is...", "So the next boss is…"])
def test_a_word_or_two_or_words_that_trail_off_are_never_a_finished_turn_whatever_the_detector_says(text):
    turn = ScriptedTurn(0.99)
    (u,) = hear(np.concatenate([silence(0.5), tone(0.6), silence(3.0)]), text=text, turn=turn, turn_wait_ms=1500)
    assert 1.4 <= u.t_endpoint - u.t_end <= 1.6  # waited for the rest of the sentence


def test_where_the_detector_is_unsure_a_whole_sentence_ends_the_turn_at_the_short_pause():
    # 0.3: unsure (between turn_unsure 0.2 and one half): the punctuation is asked
    audio = np.concatenate([silence(0.5), tone(1.5), silence(2.0)])
    (u,) = hear(audio, turn=ScriptedTurn(0.3), turn_wait_ms=1500, turn_unsure=0.2)
    assert u.t_endpoint - u.t_end < 0.25
    # the same verdict with the detector alone (turn_unsure at one half): it waits
    (u,) = hear(audio, turn=ScriptedTurn(0.3), turn_wait_ms=1500, turn_unsure=0.5)
    assert 1.4 <= u.t_endpoint - u.t_end <= 1.6


@pytest.mark.parametrize(
    "verdict, text",
    [
        (0.3, "okay chat so"),  # unsure, and the words are not a whole sentence
        (0.3, "And then we go to the..."),  # Whisper's mark for speech that trails off
        (0.3, "Miko."),  # a word or two is never a whole turn
        (0.1, "Miko, what is the plan for tonight?"),  # sure it is not over: the punctuation is not asked
    ],
)
def test_the_second_opinion_never_ends_a_turn_the_words_or_the_detector_say_goes_on(verdict, text):
    audio = np.concatenate([silence(0.5), tone(1.5), silence(3.0)])
    (u,) = hear(audio, text=text, turn=ScriptedTurn(verdict), turn_wait_ms=1500, turn_unsure=0.2)
    assert 1.4 <= u.t_endpoint - u.t_end <= 1.6


def test_without_a_detector_the_punctuation_decides_as_before():
    (u,) = hear(np.concatenate([silence(0.5), tone(1.5), silence(2.0)]))
    assert u.t_endpoint - u.t_end < 0.25
    (u,) = hear(np.concatenate([silence(0.5), tone(1.5), silence(2.0)]), text="okay chat so")
    assert u.t_endpoint - u.t_end >= 0.6  # held for a continuation (700 ms from the last voice)


def test_push_to_talk_hears_only_while_held_and_letting_go_ends_the_turn():
    # Voice before the press is not heard; a 1 s pause while held does not end the turn;
    # letting go ends it at once, with no hangover.
    audio = np.concatenate([tone(1.0), silence(1.0), tone(1.0), silence(1.0), tone(1.0), silence(2.0)])
    events = hear(audio, text="okay chat so", presses=[(1.5, True), (5.05, False)], push_to_talk=True)
    assert [type(e).__name__ for e in events] == ["Utterance"]
    (u,) = events
    assert 1.3 <= u.t_start < 1.6  # from the press (the voice at 0-1 s, button up, was not heard)
    assert 5.05 <= u.t_endpoint < 5.15  # at the release, not after a silence


def test_push_to_talk_with_the_button_never_pressed_hears_nothing():
    audio = np.concatenate([tone(1.0), silence(1.0)])
    assert hear(audio, push_to_talk=True) == []


# --- short fragments: Whisper's costliest calls ------------------------------------------


class SlowShortASR(ScriptedASR):
    """A recogniser that says audio under 1.5 s is its costliest (as Whisper's whole window
    is); logs each call's length beside the detector's verdicts in `log`."""

    slow_under_s = 1.5

    def __init__(self, text, log):
        super().__init__(text)
        self.log = log
        self.heard: list[float] = []

    def transcribe(self, audio):
        self.heard.append(len(audio) / RATE)
        self.log.append("asr")
        return self.text


class LoggedTurn(ScriptedTurn):
    """Logs each verdict as it is given; with `wait_for`, holds its verdict until that event
    is set (or `hold_s` passes): did the transcription start without waiting for it?"""

    def __init__(self, *verdicts, log, wait_for=None, hold_s=0.5):
        super().__init__(*verdicts)
        self.log, self.wait_for, self.hold_s = log, wait_for, hold_s
        self.saw_asr: list[bool] = []

    def probability(self, audio):
        if self.wait_for is not None:
            self.saw_asr.append(self.wait_for(self.hold_s))
        p = super().probability(audio)
        self.log.append("turn")
        return p


def test_a_short_fragment_heard_as_unfinished_is_never_transcribed_when_the_streamer_goes_on():
    # "Miko," (0.6 s), a 300 ms pause (past the short pause, short of the endpoint), then the rest.
    audio = np.concatenate([silence(0.5), tone(0.6), silence(0.3), tone(1.2), silence(2.5)])
    log, counters = [], Counter()
    asr = SlowShortASR("Miko, what is the plan for tonight?", log)
    (u,) = hear(audio, asr=asr, turn=LoggedTurn(0.1, 0.95, log=log), turn_wait_ms=1500, counters=counters)
    assert asr.heard == [pytest.approx(u.t_end - u.t_start, abs=0.4)] and asr.heard[0] > 1.5  # once: the whole
    assert counters["short_asr_spared"] == 1
    # A recogniser with no such cost is asked at the short pause too: the fragment, then the whole.
    plain = ScriptedASR("Miko, what is the plan for tonight?")
    calls = []
    plain.transcribe = lambda audio: calls.append(len(audio) / RATE) or plain.text
    hear(audio, asr=plain, turn=ScriptedTurn(0.1, 0.95), turn_wait_ms=1500)
    assert len(calls) == 2 and calls[0] < 1.5


def test_a_short_fragment_heard_as_over_is_transcribed_at_the_endpoint_after_the_verdict():
    log = []
    asr = SlowShortASR("Be right back.", log)
    (u,) = hear(np.concatenate([silence(0.5), tone(0.8), silence(2.0)]), asr=asr, turn=LoggedTurn(0.95, log=log), turn_wait_ms=1500)
    assert u.text == "Be right back."
    assert 0.4 <= u.t_endpoint - u.t_end < 0.6  # at the endpoint (448 ms): not the short pause, not the turn wait
    assert log == ["turn", "asr"]  # one after the other: their working memory never adds up


def test_a_short_name_heard_as_over_is_never_transcribed_when_the_streamer_goes_on():
    # The detector hears a lone "Miko," as a finished turn: it is still not transcribed at the
    # short pause, so the whole line's transcription never waits behind it.
    audio = np.concatenate([silence(0.5), tone(0.6), silence(0.3), tone(1.2), silence(2.5)])
    log, counters = [], Counter()
    asr = SlowShortASR("Miko, what is the plan for tonight?", log)
    hear(audio, asr=asr, turn=LoggedTurn(0.99, log=log), counters=counters)
    assert len(asr.heard) == 1 and asr.heard[0] > 1.5 and counters["short_asr_spared"] == 1


def test_a_short_fragment_heard_as_unfinished_is_transcribed_at_the_endpoint_and_sent_after_the_wait():
    log = []
    asr = SlowShortASR("Thank you chat.", log)
    (u,) = hear(np.concatenate([silence(0.5), tone(0.8), silence(3.0)]), asr=asr, turn=LoggedTurn(0.1, log=log), turn_wait_ms=1500)
    assert u.text == "Thank you chat."
    assert 1.4 <= u.t_endpoint - u.t_end <= 1.6
    assert log == ["turn", "asr"] and len(asr.heard) == 1


@pytest.mark.parametrize("seconds, beside", [(2.0, True), (0.8, False)])
def test_a_longer_segment_is_transcribed_beside_the_verdict_a_short_one_after_it(seconds, beside):
    import threading

    started = threading.Event()
    log = []

    class Signalling(SlowShortASR):
        def transcribe(self, audio):
            started.set()
            return super().transcribe(audio)

    turn = LoggedTurn(0.95, log=log, wait_for=started.wait, hold_s=0.5)
    hear(np.concatenate([silence(0.5), tone(seconds), silence(2.0)]), asr=Signalling("Be right back now.", log), turn=turn)
    assert turn.saw_asr[0] is beside


# --- features and the real model --------------------------------------------------------


def test_features_are_80_mel_bands_of_8_seconds_with_the_end_right_aligned():
    f = log_mel(tone(1.0))
    assert f.shape == (80, 800) and f.dtype == np.float32
    # 7 s of padding in front: the first 700 frames are all the floor value, the last 100 are not
    assert np.ptp(f[:, :690]) == 0.0 and np.ptp(f[:, -90:]) > 0.5
    # longer audio: only its last 8 s count
    long = np.concatenate([tone(5.0), silence(1.0), tone(8.0)])
    assert np.allclose(log_mel(long), log_mel(tone(8.0)))


def test_mel_filters_cover_the_spectrum_once():
    fb = mel_filterbank()
    assert fb.shape == (80, 201) and (fb >= 0).all()
    # every band is a triangle with one peak, and the bands' peaks rise with frequency
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > 190


needs_model = pytest.mark.skipif(smart_turn_model_path() is None, reason="Smart Turn not installed (make install)")


@needs_model
def test_smart_turn_loads_with_one_thread_and_gives_a_probability():
    from vtuber.hearing.turn import SmartTurn

    st = SmartTurn(threads=1)
    p = st.probability(np.concatenate([silence(0.3), tone(1.0), silence(0.2)]))
    assert 0.0 <= p <= 1.0
    opts = st.session.get_session_options()
    assert opts.intra_op_num_threads == 1


def test_a_missing_model_is_one_clear_line(tmp_path):
    from vtuber.errors import UserError
    from vtuber.hearing.turn import SmartTurn

    with pytest.raises(UserError, match="Smart Turn model not found"):
        SmartTurn(tmp_path / "nope.onnx")


@needs_model
def test_the_pause_set_through_the_real_hearing_counts_cut_ins_and_commits(engine):
    """Two finished sentences and two mid-sentence pauses from Piper, through Silero, Whisper
    and Smart Turn: what must hold whatever the models hear."""
    from vtuber.turn_bench import make_pause_set, run_turn_bench

    if engine.turn is None:
        pytest.skip("the session engine has no turn detector")
    clips = make_pause_set(engine.tts)
    finished = [c for c in clips if c.resume is None][:2]
    paused = [c for c in clips if c.resume is not None][:2]
    for c in paused:  # the pause is real silence, longer than the endpoint's hangover
        gap = c.audio[int((c.resume - 0.5) * RATE) : int(c.resume * RATE)]
        assert np.abs(gap).max() == 0.0
    r = run_turn_bench(engine, finished + paused)
    assert r["clips"] == {"finished": 2, "paused": 2}
    # silence alone ends every pause longer than the hangover: each is a cut-in
    assert r["silence"]["cut_ins"] == 2
    for mode in ("silence", "punctuation", "smart_turn"):
        assert 0 <= r[mode]["cut_ins"] <= 2 and r[mode]["missed"] == 0
        assert r[mode]["commit"]["n"] == 2 and r[mode]["commit"]["p50"] > 0
    assert r["model_s"]["turn"]["n"] == 2
