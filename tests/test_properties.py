"""Property-based tests of the feature path: whatever comes in, a valid picture or a clear error.

Inputs are drawn by hypothesis: any length (empty, shorter or longer than one window), any
float values including NaN, infinities, subnormals and huge ones, and a few dtypes.
"""
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from robustness_summary import record

from cry.audio import AudioError
from cry.reason.windows import audio_to_windows, load_audio, window_starts
from cry.features import window_to_image, window_to_levels
from cry.params import Settings

S = Settings()
W = S.window_samples
FAST = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])

any_float = st.floats(width=32, allow_nan=True, allow_infinity=True)
finite_float = st.floats(width=32, allow_nan=False, allow_infinity=False)


def signals(elements, lengths=st.one_of(st.just(W), st.integers(0, 3 * W)), dtypes=(np.float32, np.float64)):
    """1-D arrays: a background value (fill) with a few drawn samples set, in one of dtypes."""
    return st.sampled_from(dtypes).flatmap(lambda dtype: hnp.arrays(
        dtype, lengths, elements=elements, fill=st.one_of(st.just(0.0), elements)))


def one_window_with(value, dtype=np.float32, n=W) -> np.ndarray:
    """Quiet noise with value in the middle: the awkward sample among ordinary ones."""
    x = np.random.default_rng(0).normal(0, 0.01, n).astype(dtype)
    if n:
        x[n // 2] = value
    return x


# Every kind kinds_of() can name is tried on every run, whatever hypothesis draws besides.
EXAMPLES = [np.zeros(0, np.float32), one_window_with(0.5, n=100), np.zeros(W, np.float32),
            one_window_with(np.nan), one_window_with(np.inf), one_window_with(-np.inf),
            one_window_with(3e38), one_window_with(1e-45), one_window_with(1e300, np.float64),
            one_window_with(0.5, n=2 * W + 7)]


def with_examples(test):
    for x in EXAMPLES:
        test = example(x)(test)
    return test


def kinds_of(x: np.ndarray) -> set[str]:
    """The kinds of bad input this example is, for the robustness figure."""
    values = x.astype(np.float64)
    finite = values[np.isfinite(values)]
    checks = {"empty": x.size == 0, "shorter than a window": 0 < x.size < W, "longer than a window": x.size > W,
              "NaN": np.isnan(values).any(), "+inf": np.isposinf(values).any(), "-inf": np.isneginf(values).any(),
              "beyond full scale": (np.abs(finite) > 1).any(),
              "beyond float32 range": (np.abs(finite) > np.finfo(np.float32).max).any(),
              "subnormal": ((finite != 0) & (np.abs(finite) < np.finfo(np.float32).tiny)).any(),
              "all zero": x.size > 0 and not values.any()}
    return {f"feature input: {k}" for k, hit in checks.items() if hit}


def assert_valid_image(image: np.ndarray) -> None:
    assert image.shape == (S.image_size, S.image_size, 3) and image.dtype == np.uint8


@FAST
@with_examples
@given(signals(any_float))
def test_window_to_image_gives_a_picture_or_a_clear_error(x):
    """Exactly one window of finite samples -> a picture; anything else -> ValueError saying why."""
    record(kinds=kinds_of(x), checked=1)
    usable = x.shape == (W,) and np.isfinite(x.astype(np.float32)).all()
    if usable:
        assert_valid_image(window_to_image(x, S))
    else:
        with pytest.raises(ValueError, match="samples"):
            window_to_image(x, S)


@FAST
@given(signals(finite_float, lengths=st.just(W)))
def test_levels_of_any_finite_window_are_finite_and_in_range(x):
    """No NaN pixel: the levels behind the colours stay in [0, 1] even for huge values."""
    record(kinds=kinds_of(x), checked=1)
    if not np.isfinite(x.astype(np.float32)).all():     # float64 beyond float32: refused, as above
        return
    levels = window_to_levels(x, S)
    assert levels.shape == (S.n_mels, S.image_size)
    assert np.isfinite(levels).all() and levels.min() >= 0.0 and levels.max() <= 1.0


@FAST
@with_examples
@given(signals(any_float, dtypes=(np.float32,)))
def test_any_audio_through_windows_gives_pictures_or_a_clear_error(audio):
    """audio_to_windows pads short audio (even empty) to one window; then every window is a
    picture, or the audio had NaN/inf and the first window holding one says so."""
    record(kinds=kinds_of(audio), checked=1)
    windows = audio_to_windows(audio, S)
    assert windows.shape == (len(window_starts(max(len(audio), W), S)), W)
    for window in windows:
        if np.isfinite(window).all():
            assert_valid_image(window_to_image(window, S))
        else:
            with pytest.raises(ValueError, match="NaN or infinite"):
                window_to_image(window, S)


@settings(deadline=None, max_examples=40)
@given(st.binary(max_size=64), st.sampled_from([b"", b"\x00" * 100, b"\xff" * 100]),
       st.integers(0, 2000))
def test_any_bytes_after_a_wav_header_load_or_give_a_reason(tmp_path_factory, junk, tail, cut):
    """A real float WAV header, then junk, cut anywhere: AudioError or finite audio, nothing else."""
    path = tmp_path_factory.mktemp("fuzz") / "x.wav"
    sf.write(path, np.full(16000, 0.25, np.float32), 8000, subtype="FLOAT")
    data = path.read_bytes()
    path.write_bytes(data[:cut] + junk + tail + data[cut + len(junk) + len(tail):])
    record(kinds=["wav with junk bytes or cut short"], checked=1)
    try:
        audio = load_audio(path, S)
    except AudioError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()
