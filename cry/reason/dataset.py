"""The tf.data input pipeline: window PNGs in, batches out; training data balanced and augmented."""
from __future__ import annotations

import numpy as np

from cry.features import colour_table, pack_rgb
from cry.params import CLASSES, SILENCE, Settings
from cry.reason.params import Training


def _rgb_to_indices(colormap: str):
    """A function uint8 image [H, W, 3] -> float32 colour-table index [H, W] (0 = dB floor).

    Augmenting on levels, not colours, lets gain and mixing do real arithmetic in dB; the
    PNGs are drawn in the settings' colour map, so every pixel is one of its 256 colours.
    """
    import tensorflow as tf

    keys, first = np.unique(pack_rgb(colour_table(colormap).astype(np.int64)), return_index=True)
    lookup = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, first.astype(np.int64)), -1)

    def to_indices(image):
        index = lookup.lookup(pack_rgb(tf.cast(image, tf.int64)))
        tf.debugging.assert_non_negative(index, f"a training PNG has colours outside the {colormap} colour map")
        return tf.cast(index, tf.float32)
    return to_indices


def _augment_levels(index, silence_index, seed, settings: Settings, params: Training, mix: bool):
    """Training-only changes to one picture's levels (colour-table indices, float [H, W]).

    mix: a random gain, and (for params.mix_probability of the windows) a real silence window
    added in power at one of params.mix_snrs_db, as a cry recorded in another room. Always:
    SpecAugment (one band of time columns and one of mel rows set to the dB floor) and a
    circular time shift.
    """
    import tensorflow as tf

    draws = tf.random.stateless_uniform([9], seed=seed)
    size = tf.shape(index)[0]
    db_per_step = settings.db_range / 255.0
    if mix:
        floor = index <= 0
        gain = (2 * draws[0] - 1) * params.max_gain_db / db_per_step
        index = tf.where(floor, 0.0, tf.clip_by_value(index + gain, 0, 255))
        to_power = lambda i: tf.pow(10.0, i * db_per_step / 10.0)  # noqa: E731  (relative to the floor)
        signal, noise = to_power(index), to_power(silence_index)
        snrs = params.mix_snrs_db
        snr = tf.gather(tf.constant(snrs, tf.float32), tf.cast(draws[1] * len(snrs), tf.int32) % len(snrs))
        scale = tf.reduce_mean(signal) / (tf.reduce_mean(noise) * tf.pow(10.0, snr / 10.0))
        mixed = 10.0 * tf.math.log(signal + scale * noise) / tf.math.log(10.0) / db_per_step
        index = tf.where(draws[2] < params.mix_probability, tf.clip_by_value(mixed, 0, 255), index)
    t_width = tf.cast(draws[3] * params.max_time_mask, tf.int32)
    t_start = tf.cast(draws[4] * tf.cast(size - t_width, tf.float32), tf.int32)
    f_width = tf.cast(draws[5] * params.max_freq_mask, tf.int32)
    f_start = tf.cast(draws[6] * tf.cast(size - f_width, tf.float32), tf.int32)
    steps = tf.range(size)
    masked = (((steps >= f_start) & (steps < f_start + f_width))[:, None]
              | ((steps >= t_start) & (steps < t_start + t_width))[None, :])
    index = tf.where(masked, 0.0, index)
    shift = tf.cast(draws[7] * (2 * params.max_shift + 1), tf.int32) - params.max_shift
    return tf.roll(index, shift, axis=1)


def _decoded(paths, labels, to_indices=None):
    """(image, one-hot label) per PNG, decoded once and cached; images as colour indices with to_indices."""
    import tensorflow as tf

    def load(path, label):
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        image.set_shape((None, None, 3))
        return (image if to_indices is None else to_indices(image)), tf.one_hot(label, len(CLASSES))
    return tf.data.Dataset.from_tensor_slices((paths, labels)).map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()


def evaluation_dataset(paths, labels, batch_size: int = 32):
    """Batches of (uint8 images, one-hot labels) in the order given, exactly the PNGs' pixels."""
    import tensorflow as tf

    return _decoded(np.asarray(paths, dtype=str), np.asarray(labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def training_dataset(paths, labels, settings: Settings, params: Training = Training(), seed: int = 0):
    """Batches for one epoch of training: shuffled, class-balanced (params.balance "sampling")
    and augmented (params.augment) afresh every epoch, with as many windows as given."""
    import tensorflow as tf

    paths, labels = np.asarray(paths, dtype=str), np.asarray(labels)
    to_indices = _rgb_to_indices(settings.colormap) if params.augment != "none" else None

    def base(p, y):
        return _decoded(p, y, to_indices)

    if params.balance == "sampling":
        present = [c for c in range(len(CLASSES)) if (labels == c).any()]
        per_class = [base(paths[labels == c], labels[labels == c]).repeat().shuffle(params.shuffle_buffer, seed=seed)
                     for c in present]
        ds = tf.data.Dataset.sample_from_datasets(per_class, seed=seed, rerandomize_each_iteration=True
                                                  ).take(len(labels))
    else:
        ds = base(paths, labels).shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if params.augment != "none":
        silent = labels == SILENCE
        mix = params.augment == "mix" and silent.any()
        noise = (base(paths[silent], labels[silent]).repeat().shuffle(params.shuffle_buffer, seed=seed + 2)
                 .map(lambda i, _: i) if mix
                 else tf.data.Dataset.from_tensors(tf.zeros([settings.image_size] * 2)).repeat())
        seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        colours = tf.constant(colour_table(settings.colormap))

        def augment_one(xy, silence_index, pair):
            index = _augment_levels(xy[0], silence_index, pair, settings, params, mix)
            return tf.gather(colours, tf.cast(tf.round(index), tf.int32)), xy[1]
        ds = tf.data.Dataset.zip(ds, noise, seeds).map(augment_one, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(params.batch_size).prefetch(tf.data.AUTOTUNE)
