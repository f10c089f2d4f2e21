"""How the reason model is built and trained, in one frozen object saved with every model."""
from __future__ import annotations

import argparse
import dataclasses

from cry.params import dataclass_to_dict

ARCHITECTURES = ("seed", "time")
BALANCES = ("weights", "sampling")
AUGMENTATIONS = ("none", "spec", "mix")  # none; masks + time shift; that + gain + mixing with silence


@dataclasses.dataclass(frozen=True)
class Training:
    """Every hyperparameter of the model and its training; the scripts' options default to these."""

    arch: str = "time"                   # "time" reads the spectrogram in time order; "seed" as first specified
    epochs: int = 30                     # at most
    patience: int = 8                    # epochs without a better validation macro-F1 before stopping
    batch_size: int = 32
    learning_rate: float = 1e-3
    balance: str = "sampling"            # "sampling": balanced batches; "weights": class weights
    augment: str = "spec"                # one of AUGMENTATIONS, training data only
    filters: tuple = (32, 64, 128)       # of the three Conv2D/MaxPool blocks
    lstm_units: int = 64                 # each of the two LSTMs
    dense_units: int = 64
    dropout: float = 0.5
    repeat_steps: int = 16               # "seed": how often RepeatVector repeats the flat vector
    shuffle_buffer: int = 256            # per class, in balanced sampling
    max_time_mask: int = 20              # SpecAugment: widest band of time columns set to the floor
    max_freq_mask: int = 16              # ... and of mel rows
    max_shift: int = 16                  # circular time shift, columns either way
    max_gain_db: float = 6.0             # "mix": random gain
    mix_snrs_db: tuple = (0.0, 5.0, 10.0, 20.0)  # "mix": a cry over real silence at one of these
    mix_probability: float = 0.5         # "mix": share of windows that get silence mixed in

    def to_dict(self) -> dict:
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Training:
        """As saved in a model's JSON; fields added since keep their defaults."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def replace(self, **changes) -> Training:
        return dataclasses.replace(self, **changes)


# The options every script that trains offers: name -> (help, choices); defaults come from Training.
TRAINING_OPTIONS = {
    "arch": ("'time' reads the spectrogram in time order; 'seed' is the original", ARCHITECTURES),
    "epochs": ("at most", None),
    "patience": ("early-stopping epochs", None),
    "batch_size": ("", None),
    "learning_rate": ("", None),
    "balance": ("balanced sampling or class weights, training data only (weights collapsed some folds to "
                "one class in cross-validation)", BALANCES),
    "augment": ("training data only: none; spec = time/frequency masks + time shift; mix = spec + gain + "
                "mixing with real silence at 0-20 dB SNR", AUGMENTATIONS),
}


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """--arch, --epochs, --patience, --batch-size, --learning-rate, --balance, --augment, defaulting
    to Training's values; the script passes them on as Training().replace(**chosen)."""
    defaults = Training()
    for name, (text, choices) in TRAINING_OPTIONS.items():
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), choices=choices, default=default,
                            help=f"{text}{' ' if text else ''}(default: %(default)s)")
