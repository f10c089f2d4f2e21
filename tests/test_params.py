"""One home for the hyperparameters: the scripts' options default to Training, and what the
model JSON saves of it reads back."""
import argparse
import json

from cry.params import Training, add_training_arguments, training_from_args


def parsed(*argv) -> Training:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    return training_from_args(parser.parse_args(list(argv)))


def test_options_default_to_training_and_override_one_field():
    assert parsed() == Training()
    assert parsed("--patience", "3", "--augment", "mix") == Training(patience=3, augment="mix")
    assert Training().patience == 8  # what both scripts always passed, and the README's runs used


def test_saved_training_reads_back():
    changed = Training(filters=(8, 16, 32), mix_snrs_db=(3.0,))
    assert Training.from_dict(json.loads(json.dumps(changed.to_dict()))) == changed
