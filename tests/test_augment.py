"""Training augmentation works on dB levels: masks go to the floor, gain and mixing with silence
move levels the way sound does, draws change every epoch, and evaluation data is untouched."""
import numpy as np
import pytest
from conftest import tone

from cry.reason.dataset import evaluation_dataset, training_dataset
from cry.decision import SILENCE
from cry.features import colour_table, indices_to_png, pack_rgb, png_to_image, window_to_indices
from cry.params import CLASSES, Settings
from cry.reason.params import Training

S = Settings()
HUNGRY = CLASSES.index("hungry")


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """Cry-like tones (hungry) and quiet noise (silence) as window PNGs, as preprocessing writes them."""
    root, rng = tmp_path_factory.mktemp("aug"), np.random.default_rng(0)
    paths, labels = [], []
    for k in range(6):
        cry = tone(400 + 50 * k, S.window_seconds, S.sample_rate_hz, 0.3)
        noise = rng.normal(0, 1e-3, S.window_samples).astype(np.float32)
        for label, audio in ((HUNGRY, cry), (SILENCE, noise)):
            paths.append(root / f"{label}_{k}.png")
            indices_to_png(window_to_indices(audio, S), S.colormap, paths[-1])
            labels.append(label)
    return np.array([str(p) for p in paths]), np.array(labels)


def epoch(ds) -> np.ndarray:
    return np.concatenate([x.numpy() for x, _ in ds])


def levels(images: np.ndarray) -> np.ndarray:
    """Colour-table index of every pixel (the images are drawn in the colour map; the first
    index where a colour repeats)."""
    keys, first = np.unique(pack_rgb(colour_table(S.colormap).astype(np.int64)), return_index=True)
    packed = pack_rgb(images.astype(np.int64))
    assert np.isin(packed, keys).all()
    return first[np.searchsorted(keys, packed)]


def test_evaluation_data_is_the_png_pixels(pngs):
    paths, labels = pngs
    images = epoch(evaluation_dataset(paths, labels, batch_size=4))
    assert all(np.array_equal(image, png_to_image(p)) for image, p in zip(images, paths))


def test_spec_augment_masks_at_the_floor_and_draws_anew_each_epoch(pngs):
    paths, labels = pngs
    ds = training_dataset(paths, labels, S, Training(batch_size=4, augment="spec", balance="weights"))
    first, second = epoch(ds), epoch(ds)
    assert first.shape == (len(paths), S.image_size, S.image_size, 3) and first.dtype == np.uint8
    assert not np.array_equal(first, second)
    floor = np.all(levels(first) == 0, axis=1)  # whole floor-level columns: a time mask
    assert floor.any(axis=1).mean() > 0.5  # most pictures have one (widths are drawn from 0 to 20)


def test_mixing_with_silence_lifts_the_quiet_parts_of_a_tone(pngs):
    paths, labels = pngs
    hungry = labels == HUNGRY
    plain = levels(epoch(evaluation_dataset(paths[hungry], labels[hungry], 6)))
    ds = training_dataset(paths, labels, S, Training(batch_size=12, augment="mix", balance="weights"))
    mixed = np.concatenate([levels(x.numpy()[y.numpy().argmax(1) == HUNGRY]) for x, y in ds])
    quiet = plain[0] < 40  # away from the tone; half the pictures get silence mixed in
    lifted = [np.median(m[quiet]) for m in mixed]
    assert max(lifted) > np.median(plain[0][quiet]) + 10 and min(lifted) < max(lifted) - 10
