"""One home for every setting: the scripts' options default to Training, what the model JSON and
the detector's file save read back, and --set / --live-set refuse what cannot work."""
import argparse
import json

import pytest

from cry.params import LiveSettings, Settings, SettingsMismatch, parse_overrides
from cry.reason.params import TRAINING_OPTIONS, Training, add_training_arguments


def parsed(*argv) -> Training:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    args = parser.parse_args(list(argv))
    return Training().replace(**{name: getattr(args, name) for name in TRAINING_OPTIONS})


def test_options_default_to_training_and_override_one_field():
    assert parsed() == Training()
    assert parsed("--patience", "3", "--augment", "mix") == Training(patience=3, augment="mix")
    assert Training().patience == 8  # what both scripts always passed, and the README's runs used


def test_saved_settings_read_back():
    changed = Training(filters=(8, 16, 32), mix_snrs_db=(3.0,))
    assert Training.from_dict(json.loads(json.dumps(changed.to_dict()))) == changed
    live = LiveSettings(hop_seconds=0.25, smooth_windows=6)
    assert LiveSettings.from_dict(json.loads(json.dumps(live.to_dict()))) == live
    old = {**Settings().to_dict(), "quiet_dbfs": -60.0}  # written before the quiet gate moved to LiveSettings
    del old["db_reference"]                               # and before db_reference existed
    assert Settings.from_dict(old) == Settings()
    with pytest.raises(SettingsMismatch, match="unknown: \\['loudness'\\]"):
        LiveSettings.from_dict({**live.to_dict(), "loudness": 3})


def test_overrides_are_typed_and_checked():
    assert parse_overrides(["window_seconds=2"], Settings()).window_seconds == 2.0
    assert parse_overrides(["smooth_windows=6", "hop_seconds=1"], LiveSettings()) == \
        LiveSettings(smooth_windows=6, hop_seconds=1.0)
    for bad, settings in (("smooth_windows=0", LiveSettings()), ("hop=1", LiveSettings()),
                          ("window_seconds=two", Settings()), ("colormap=nope", Settings()),
                          ("classes=a", Settings())):
        with pytest.raises(SettingsMismatch):
            parse_overrides([bad], settings)
