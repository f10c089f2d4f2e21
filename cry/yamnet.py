"""YAMNet, Google's AudioSet sound classifier: its log-mel features in numpy and its LiteRT model."""
from __future__ import annotations

import csv
import dataclasses
import functools
import threading
import warnings
from pathlib import Path

import numpy as np
import scipy.fft

BABY_CRY = 20  # "Baby cry, infant cry"
CRYING = 19    # "Crying, sobbing"
N_CLASSES = 521
EMBEDDING_SIZE = 1024

# What a parent would read for YAMNet's top class: AudioSet ontology ranges of yamnet_class_map.csv
# (first, last) inclusive. Any class not listed is "noise".
HEARD_RANGES = {
    "speech": [(0, 12)],                  # speech, shouting, whispering
    "laughter": [(13, 18)],
    "crying": [(19, 22)],                 # crying, baby cry, whimper, wail
    "music": [(24, 32), (132, 276)],      # singing, instruments, genres
    "animal": [(67, 131)],
    "alarm": [(302, 304), (313, 313), (316, 319), (349, 350), (382, 397)],  # horns, sirens, doorbell, alarms, phones
    "silence": [(494, 494)],
}


@dataclasses.dataclass(frozen=True)
class YamnetParams:
    """The features YAMNet was trained on (tensorflow/models research/audioset/yamnet/params.py); the sample
    counts below are derived as its features.py derives them."""
    sample_rate_hz: int = 16000
    stft_window_seconds: float = 0.025
    stft_hop_seconds: float = 0.010
    mel_bands: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.001
    patch_window_seconds: float = 0.96
    patch_hop_seconds: float = 0.48

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.stft_window_seconds))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.stft_hop_seconds))

    @property
    def fft_length(self) -> int:
        return 2 ** int(np.ceil(np.log2(self.window_samples)))

    @property
    def patch_frames(self) -> int:
        return int(round(self.patch_window_seconds / self.stft_hop_seconds))

    @property
    def patch_hop_frames(self) -> int:
        return int(round(self.patch_hop_seconds / self.stft_hop_seconds))

    @property
    def patch_samples(self) -> int:
        """Waveform samples one patch needs (0.975 s: its last STFT window reaches past 0.96 s)."""
        return (self.patch_frames - 1) * self.hop_samples + self.window_samples


@functools.lru_cache(maxsize=4)
def mel_matrix(params: YamnetParams) -> np.ndarray:
    """HTK mel triangles built as tf.signal.linear_to_mel_weight_matrix builds them (DC bin zeroed,
    slopes linear in mel, peak 1, no area normalisation). Returns float32 [fft_length // 2 + 1, mel_bands]."""
    def hz_to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)

    n_bins = params.fft_length // 2 + 1
    bins_mel = hz_to_mel(np.linspace(0.0, params.sample_rate_hz / 2, n_bins))[1:, None]  # [n_bins - 1, 1]
    edges_mel = np.linspace(hz_to_mel(params.mel_min_hz), hz_to_mel(params.mel_max_hz), params.mel_bands + 2)
    lower, center, upper = edges_mel[:-2], edges_mel[1:-1], edges_mel[2:]                   # each [mel_bands]
    rising = (bins_mel - lower) / (center - lower)
    falling = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(weights, [(1, 0), (0, 0)]).astype(np.float32)


def pad_waveform(waveform: np.ndarray, params: YamnetParams = YamnetParams()) -> np.ndarray:
    """Zero-pad as YAMNet's pad_waveform does: to at least one patch, then to a whole number of patch hops,
    so a short sound still gets a patch and the tail of a long one is not dropped."""
    waveform = np.asarray(waveform, np.float32)
    hop = params.patch_hop_frames * params.hop_samples
    after_first = max(len(waveform), params.patch_samples) - params.patch_samples
    n_samples = params.patch_samples + -(-after_first // hop) * hop
    return np.pad(waveform, (0, n_samples - len(waveform)))


def stft_magnitude(waveform: np.ndarray, params: YamnetParams = YamnetParams()) -> np.ndarray:
    """|STFT| framed like tf.signal.stft: no centring, no end padding, periodic Hann, frames zero-padded
    at their end to fft_length. Returns float32 [n_frames, fft_length // 2 + 1]."""
    n, hop = params.window_samples, params.hop_samples
    waveform = np.ascontiguousarray(waveform, np.float32)
    if len(waveform) < n:
        return np.zeros((0, params.fft_length // 2 + 1), np.float32)
    frames = np.lib.stride_tricks.as_strided(waveform, (1 + (len(waveform) - n) // hop, n),
                                             (hop * waveform.strides[0], waveform.strides[0]), writeable=False)
    return np.abs(scipy.fft.rfft(frames * periodic_hann(n), n=params.fft_length, axis=-1))  # [n_frames, 400] in


@functools.lru_cache(maxsize=4)
def periodic_hann(n: int) -> np.ndarray:
    """tf.signal.hann_window(n, periodic=True) as float32 [n] (made once: every patch of a night uses it)."""
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
    hann.flags.writeable = False
    return hann


def log_mel_spectrogram(waveform: np.ndarray, params: YamnetParams = YamnetParams()) -> np.ndarray:
    """log(mel(|STFT|) + log_offset): the offset keeps silence finite. Returns float32 [n_frames, mel_bands]."""
    return np.log(stft_magnitude(waveform, params) @ mel_matrix(params) + np.float32(params.log_offset))


def waveform_to_log_mel_patches(waveform: np.ndarray, params: YamnetParams = YamnetParams()) -> np.ndarray:
    """YAMNet's input from a 16 kHz mono waveform float32 [n]: padded as YAMNet pads, then 0.96 s patches
    every 0.48 s. Returns float32 [n_patches, patch_frames, mel_bands], n_patches >= 1."""
    log_mel = log_mel_spectrogram(pad_waveform(waveform, params), params)                # [n_frames, 64]
    patches = np.lib.stride_tricks.sliding_window_view(log_mel, params.patch_frames, axis=0)
    return np.ascontiguousarray(patches[::params.patch_hop_frames].transpose(0, 2, 1))    # [n, 96, 64]


def read_class_names(class_map_csv: Path) -> list[str]:
    """display_name of each class, in output order (yamnet_class_map.csv: index, mid, display_name)."""
    with open(class_map_csv, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [name for _, _, name in rows]


def heard_label(scores_row: np.ndarray) -> str:
    """A parent's word for the top-scoring class of one patch: speech, music, crying, animal... else noise."""
    top = int(np.argmax(scores_row))
    for label, ranges in HEARD_RANGES.items():
        if any(first <= top <= last for first, last in ranges):
            return label
    return "noise"


class YamnetModel:
    """A YAMNet LiteRT file in the interpreter: one 0.975 s patch -> scores, embedding.

    Two pinned builds are taken (cry.pretrained): Coral's int8 yamnet_spectra_in.tflite, fed the
    official log-mel patch [1, 96, 64] computed here, and TF Hub's lite model (int8 inside, float
    in and out), fed the 16 kHz waveform [15600] and computing the same features in its graph.
    Each has one output (the 521 sigmoid scores). The 1024-wide embedding, the global average of the
    last convolution that the classifier reads, is its last 4-D tensor of 1024 values ([1, 1, 1, 1024],
    just before the [521, 1024] fully-connected weights); it is read with experimental_preserve_all_tensors,
    which costs no measurable time, and tests/test_yamnet.py recomputes the classifier from it. Being int8,
    it is coarser than a float embedding (ReLU6-capped, in steps of about 0.02).
    """

    params = YamnetParams()  # the features it takes

    def __init__(self, model_path: Path, class_map_path: Path):
        from ai_edge_litert.interpreter import Interpreter  # not at import: cry.yamnet features stay light

        with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging; we read one
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=1,
                                           experimental_preserve_all_tensors=True)
        self.interpreter.allocate_tensors()
        self._lock = threading.Lock()
        self.class_names = read_class_names(class_map_path)
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        pooled = [t for t in self.interpreter.get_tensor_details()
                  if int(np.prod(t["shape"])) == EMBEDDING_SIZE and len(t["shape"]) == 4]
        self._embedding = pooled[-1]  # the pooled activation the classifier reads
        self.embedding_tensor_name = self._embedding["name"]
        self.takes_waveform = len(self.interpreter.get_input_details()[0]["shape"]) == 1  # [15600], else [1, 96, 64]

    @classmethod
    def from_folder(cls, folder: Path | None = None, model: str = "coral") -> YamnetModel:
        """The build `model` (cry.pretrained.YAMNET_MODELS) from a folder checked by cry.pretrained
        (default models/pretrained/)."""
        from cry.pretrained import PRETRAINED_DIR, yamnet_files

        built = cls(*yamnet_files(folder or PRETRAINED_DIR, model))
        built.name = model
        return built

    def _run(self, inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Scores float32 [n, 521] (sigmoid, one per class) and embeddings float32 [n, 1024] of model inputs."""
        scale, zero_point = self._embedding["quantization"]
        scores = np.empty((len(inputs), N_CLASSES), np.float32)
        embeddings = np.empty((len(inputs), EMBEDDING_SIZE), np.float32)
        with self._lock:  # one interpreter: the live loop and a page's upload take turns
            for i, x in enumerate(inputs):
                self.interpreter.set_tensor(self._input, np.asarray(x, np.float32))
                self.interpreter.invoke()
                scores[i] = self.interpreter.get_tensor(self._output)[0]
                embedded = self.interpreter.get_tensor(self._embedding["index"]).reshape(-1).astype(np.float32)
                embeddings[i] = (embedded - zero_point) * scale if scale else embedded
        return scores, embeddings

    def patches(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores [n, 521] and embeddings [n, 1024] of log-mel patches float32 [n, 96, 64] (the
        spectra-in model only)."""
        if self.takes_waveform:
            raise ValueError("this YAMNet takes waveforms, not log-mel patches")
        return self._run([patch[None] for patch in np.asarray(patches, np.float32)])

    def wave_patches(self, waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores [n, 521] and embeddings [n, 1024] of 16 kHz waveform patches float32 [n, 15600]:
        the one patch function of either build."""
        waves = np.asarray(waves, np.float32).reshape(-1, self.params.patch_samples)
        if self.takes_waveform:
            return self._run(list(waves))
        return self._run([log_mel_spectrogram(wave, self.params)[None] for wave in waves])

    def waveform(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores [n_patches, 521] and embeddings [n_patches, 1024] of a 16 kHz mono waveform float32 [n],
        framed as YAMNet frames it (0.96 s patches every 0.48 s, padded to whole patches)."""
        if not self.takes_waveform:
            return self.patches(waveform_to_log_mel_patches(waveform))
        wave, p = pad_waveform(waveform, self.params), self.params
        hop = p.patch_hop_frames * p.hop_samples
        return self._run([wave[s:s + p.patch_samples] for s in range(0, len(wave) - p.patch_samples + 1, hop)])
