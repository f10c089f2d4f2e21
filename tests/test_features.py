"""The one feature function, checked on signals whose answer we know."""
import librosa
import numpy as np
import pytest
from conftest import tone

from cry.reason.windows import audio_to_windows, window_starts
from cry.features import indices_to_png, png_to_image, window_to_image, window_to_indices, window_to_levels
from cry.params import CLASSES, Settings, SettingsMismatch, check_compatible, parse_overrides

S = Settings()


def test_image_shape_and_type():
    image = window_to_image(tone(440, S.window_seconds, S.sample_rate_hz), S)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8


def test_silence_gives_the_darkest_image():
    levels = window_to_levels(np.zeros(S.window_samples, np.float32), S)
    assert levels.max() == 0.0
    image = window_to_image(np.zeros(S.window_samples, np.float32), S)
    assert (image == image[0, 0]).all()            # one colour: the bottom of the colour map
    loud = window_to_image(tone(440, S.window_seconds, S.sample_rate_hz), S)
    assert loud.astype(int).sum() > image.astype(int).sum()


@pytest.mark.parametrize("freq_hz", [300, 1000, 2500])
def test_tone_lights_its_own_mel_band(freq_hz):
    levels = window_to_levels(tone(freq_hz, S.window_seconds, S.sample_rate_hz), S)
    centres = librosa.mel_frequencies(S.n_mels + 2, fmin=S.fmin_hz, fmax=S.fmax_hz)[1:-1]
    expected = int(np.argmin(np.abs(centres - freq_hz)))
    assert abs(int(levels.mean(axis=1).argmax()) - expected) <= 1


def test_tone_above_fmax_is_not_seen():
    quiet = window_to_levels(np.zeros(S.window_samples, np.float32), S)
    high = window_to_levels(tone(9000, S.window_seconds, S.sample_rate_hz), S)
    assert high.mean() < quiet.mean() + 0.1


def test_fixed_reference_keeps_loudness():
    soft = window_to_levels(tone(440, S.window_seconds, S.sample_rate_hz, 0.01), S)
    loud = window_to_levels(tone(440, S.window_seconds, S.sample_rate_hz, 0.5), S)
    assert loud.max() > soft.max() + 0.2           # 34 dB louder is visibly brighter


def test_absurdly_loud_input_saturates_bright_not_dark():
    loud = window_to_levels(tone(440, S.window_seconds, S.sample_rate_hz, 0.5), S)
    absurd = window_to_levels(tone(440, S.window_seconds, S.sample_rate_hz, 1e20), S)
    assert absurd.max() == 1.0 and absurd.mean() >= loud.mean()


def test_same_audio_same_image_through_png(tmp_path):
    audio = np.random.default_rng(0).normal(0, 0.1, S.window_samples).astype(np.float32)
    first, second = window_to_image(audio, S), window_to_image(audio.copy(), S)
    assert np.array_equal(first, second)
    indices_to_png(window_to_indices(audio, S), S.colormap, tmp_path / "x.png")
    assert np.array_equal(png_to_image(tmp_path / "x.png"), first)


def test_window_length_is_checked():
    with pytest.raises(ValueError, match="samples"):
        window_to_image(np.zeros(100, np.float32), S)


def test_windows_cover_the_whole_recording():
    n = int(6.96 * S.sample_rate_hz)
    starts = window_starts(n, S)
    assert starts[0] == 0 and starts[-1] + S.window_samples == n
    assert all(b - a <= S.window_hop_seconds * S.sample_rate_hz + 1 for a, b in zip(starts, starts[1:]))
    short = audio_to_windows(np.ones(1000, np.float32), S)
    assert short.shape == (1, S.window_samples) and short[0, 1000:].max() == 0


def test_settings_round_trip_and_mismatch_is_named():
    assert Settings.from_dict(S.to_dict()) == S
    with pytest.raises(SettingsMismatch, match="unknown"):
        Settings.from_dict({**S.to_dict(), "volume": 11})
    with pytest.raises(SettingsMismatch, match="window_seconds"):
        check_compatible(S.replace(window_seconds=2.0), S, "model")
    with pytest.raises(SettingsMismatch, match="classes"):
        check_compatible(S.replace(classes=tuple(reversed(CLASSES))), S, "model")
    assert parse_overrides(["window_seconds=2", "colormap=magma"], S).window_seconds == 2.0
    with pytest.raises(SettingsMismatch, match="nonsense"):
        parse_overrides(["nonsense=1"], S)
    for bad in ("colormap=nope", "image_size=1", "window_seconds=0", "fmax_hz=20000"):
        with pytest.raises(SettingsMismatch):
            parse_overrides([bad], S)


def test_settings_from_before_db_reference_load_as_fixed_and_window_reference_ignores_gain():
    old = {k: v for k, v in S.to_dict().items() if k != "db_reference"}
    assert Settings.from_dict(old) == S and S.db_reference == "fixed"
    per_window = parse_overrides(["db_reference=window"], S)
    loud = tone(440, S.window_seconds, S.sample_rate_hz)
    quiet = loud * 10 ** (-30 / 20)  # the same sound 30 dB down
    assert window_to_levels(quiet, S).max() < window_to_levels(loud, S).max() - 0.2
    np.testing.assert_allclose(window_to_levels(quiet, per_window), window_to_levels(loud, per_window), atol=2e-3)
    with pytest.raises(SettingsMismatch, match="db_reference"):
        parse_overrides(["db_reference=loudest"], S)


@pytest.mark.parametrize("changes", [{}, {"n_mels": 64}, {"fmin_hz": 0.0, "fmax_hz": 8000.0, "sample_rate_hz": 16000},
                                     {"n_fft": 1024, "fmax_hz": 3000.0}])
def test_mel_basis_and_window_are_librosa_and_scipy_to_the_bit(changes):
    """The features import neither librosa nor scipy.signal (the live monitor's memory): their
    filter bank and Hann window, computed here, must be exactly the libraries' own."""
    import dataclasses
    import subprocess
    import sys

    import scipy.signal

    from cry.features import _stft_window, mel_basis, reference_mel_basis

    settings = dataclasses.replace(Settings(), **changes)
    assert np.array_equal(mel_basis(settings), reference_mel_basis(settings))
    assert np.array_equal(_stft_window(settings.n_fft), scipy.signal.get_window("hann", settings.n_fft, fftbins=True))
    if changes:
        return  # the imports once
    loaded = subprocess.run([sys.executable, "-c", "import sys; import cry.features as f, cry.params as p; "
                             "import numpy as np; f.window_to_image(np.zeros(p.Settings().window_samples, "
                             "np.float32), p.Settings()); print(sorted({'librosa', 'scipy.signal', 'numba'} & "
                             "set(sys.modules)))"], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stderr[-2000:]
