"""A folder of recordings as users have them: good files mixed with broken and unusual ones.

make_bad_corpus(root) writes it and returns one Case per file: where it is, what kind of
input it is, and what preprocessing must do with it (make `windows` PNGs, or skip it with a
reason containing `reason`). Everything is generated; no corpus audio is copied.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 8000  # the corpus rate; other rates are listed as their own kinds


@dataclasses.dataclass(frozen=True)
class Case:
    path: str          # relative to the corpus root
    kind: str          # what makes it special, one line
    windows: int = 0   # window PNGs expected; 0 means skipped
    reason: str = ""   # words the skip reason must contain (lower case)
    plain_cry: bool = False  # the same 2 s cry as hungry/plain.wav, only stored differently


# Folder-level kinds: they make no file of their own, so no Case, but they are tried.
FOLDER_KINDS = ("empty class folder", "nested sub-folders", "folder that is not a class",
                "empty sub-folder", "folder named like a file (x.wav/)")


def cry(seconds: float, rate: int = RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A cry-like sound: a 400-500 Hz voice with harmonics and vibrato, in bursts, over room noise.
    Returns float32 [n] or [n, channels]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    f0 = 450 + 50 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * (np.sin(2 * np.pi * 0.5 * t) > -0.3)
    audio = 0.25 * voice + 0.01 * rng.standard_normal(t.shape)
    if channels > 1:
        audio = np.stack([audio * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return audio.astype(np.float32)


def write(root: Path, rel: str, audio: np.ndarray, rate: int = RATE, subtype: str | None = "PCM_16",
          fmt: str | None = None) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype, format=fmt)


def write_bytes(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_bad_corpus(root: Path) -> list[Case]:
    root = Path(root)
    cases = []

    def good(rel, kind, seconds=2.0, windows=1, rate=RATE, channels=1, subtype="PCM_16", fmt=None, audio=None):
        write(root, rel, cry(seconds, rate, channels, seed=len(cases)) if audio is None else audio, rate, subtype, fmt)
        cases.append(Case(rel, kind, windows, plain_cry=seconds == 2.0 and audio is None and rate >= RATE))

    def bad(rel, kind, reason, data=None, audio=None, rate=RATE, subtype="PCM_16"):
        if data is not None:
            write_bytes(root, rel, data)
        else:
            write(root, rel, audio, rate, subtype)
        cases.append(Case(rel, kind, 0, reason))

    # Good and unusual-but-valid audio: every one must become spectrograms.
    good("hungry/plain.wav", "good 8 kHz 16-bit wav")
    good("hungry/four seconds.wav", "good wav, two windows", seconds=4.0, windows=2)
    good("tired/u8.wav", "8-bit unsigned wav", subtype="PCM_U8")
    good("tired/pcm24.wav", "24-bit wav", subtype="PCM_24")
    good("tired/pcm32.wav", "32-bit integer wav", subtype="PCM_32")
    good("tired/float32.wav", "32-bit float wav", subtype="FLOAT")
    good("tired/float64.wav", "64-bit float wav", subtype="DOUBLE")
    good("tired/hot float.wav", "float wav far above full scale", subtype="FLOAT", audio=8 * cry(2.0))
    good("belly_pain/ulaw.wav", "mu-law wav (phone line, monitor)", subtype="ULAW")
    good("belly_pain/alaw.wav", "A-law wav", subtype="ALAW")
    good("belly_pain/ima adpcm.wav", "IMA ADPCM wav", subtype="IMA_ADPCM")
    good("belly_pain/gsm.wav", "GSM 6.10 wav", subtype="GSM610")
    good("cold_hot/stereo 44k.wav", "stereo 44.1 kHz wav", rate=44100, channels=2)
    good("cold_hot/six channels.wav", "6-channel wav", channels=6)
    good("cold_hot/48k.wav", "48 kHz wav, two windows", seconds=4.0, windows=2, rate=48000)
    good("cold_hot/2k.wav", "2 kHz wav (below the model rate)", rate=2000)
    good("discomfort/ten minutes.wav", "10-minute clip", seconds=600.0, windows=598)
    good("discomfort/RECORDING.WAV", "upper-case .WAV")
    good("discomfort/bébé pleure 😢.wav", "non-ASCII name with spaces and emoji")
    good("discomfort/宝宝哭声.wav", "CJK file name")
    good("discomfort/cry [1] (copy).wav", "glob characters in the name")
    good("hungry/baby.wav", "name that prefixes another (baby / baby_windy)")
    good("hungry/baby_windy.wav", "name that extends another")
    good("burping/2024/march/night 1.wav", "recording in nested sub-folders")
    good("burping/folder.wav/inner.wav", "recording inside a folder named x.wav")
    good("burping/flac clip.flac", ".flac", subtype="PCM_16")
    good("burping/ogg clip.ogg", ".ogg (Vorbis)", subtype="VORBIS")
    good("burping/opus clip.opus", ".opus (Ogg Opus)", subtype="OPUS", fmt="OGG")
    good("burping/mp3 clip.mp3", ".mp3", subtype="MPEG_LAYER_III")
    good("burping/aiff clip.aiff", ".aiff", subtype="PCM_16")
    whole = (root / "hungry/plain.wav").read_bytes()
    good_long = root / "hungry/four seconds.wav"
    write_bytes(root, "hungry/cut off.wav", good_long.read_bytes()[:44 + 2 * int(2.5 * RATE)])
    cases.append(Case("hungry/cut off.wav", "wav cut off mid-data (header promises more)", 1))

    # Broken: each must be skipped with its reason, and nothing else lost.
    bad("hungry/empty.wav", "0-byte file", "empty", data=b"")
    bad("hungry/truncated header.wav", "truncated header", "cannot decode", data=whole[:30])
    bad("hungry/header only.wav", "header but no samples", "no audio samples", data=whole[:44])
    bad("hungry/._plain.wav", "macOS resource fork (._name)", "cannot decode",
        data=b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4000))
    bad("hungry/all zeros.wav", "all-zero audio", "digital silence", audio=np.zeros(2 * RATE, np.float32))
    bad("tired/notes.wav", "text file renamed .wav", "cannot decode", data=b"feeding at 3am, slept 2h\n" * 40)
    bad("tired/photo.wav", "PNG image renamed .wav", "cannot decode",
        data=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    bad("tired/diary.mp3", "text file renamed .mp3", "cannot decode", data=b"not an mp3 at all\n" * 40)
    bad("tired/voice memo.m4a", "phone .m4a (AAC, no decoder)", "cannot decode",
        data=b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isommp42" + bytes(2000))
    bad("cold_hot/short.wav", "0.1 s clip", "too short", audio=cry(0.1))
    nan = cry(2.0)
    nan[1000] = np.nan
    bad("cold_hot/nan.wav", "float wav containing NaN", "nan", audio=nan, subtype="FLOAT")
    inf = cry(2.0)
    inf[5000:5010] = np.inf
    bad("cold_hot/inf.wav", "float wav containing inf", "infinite", audio=inf, subtype="FLOAT")
    bad("hungry/twice.wav", "same name as twice.flac (outputs would collide)", "same output name",
        audio=cry(2.0))
    good("hungry/twice.flac", "first of two files with one name")
    bad("lullabies/song.wav", "folder that is not a class", "not a class", audio=cry(2.0))
    bad("loose.wav", "recording outside any class folder", "not in a class folder", audio=cry(2.0))

    # Not audio by suffix: ignored without a word; empty folders: nothing to do.
    write_bytes(root, "hungry/notes.txt", b"weights: 3.2 kg\n")
    write_bytes(root, "hungry/.DS_Store", bytes(64))
    (root / "silence").mkdir()
    (root / "burping/empty sub").mkdir(parents=True)
    return cases


if __name__ == "__main__":  # python tests/badcorpus.py DIR: write it to look at it
    import sys

    for case in make_bad_corpus(Path(sys.argv[1])):
        print(f"{case.path}: {case.kind} -> {case.windows or 'skip: ' + case.reason}")
