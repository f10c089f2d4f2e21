"""Nights as a benchmark: long recordings mixed from sound clips by source, with what was mixed where.

A night is a background (a near-silent room, a white-noise machine, a fan, loud room tone) with
dense not-crying events on it (laughter, talk, music, animals, ... whatever the given sources
hold) and a few cries of 15-90 s, each a bout of one cry source's recordings with pauses and
breaths between them, at a chosen SNR above the background, some with reverberation and some
over music or talk. Written as <name>.wav (16 kHz mono) with <name>.txt (an Audacity label
track: onset, offset, label) and nights.json (the recipe and the sources of every night), which
`evaluate_model.py --events DIR` scores through the live path.

A module of our own rather than scaper: scaper 1.6 needs soxbindings, which does not build
with this project's pinned stack, and what is needed here is a few mixing rules.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from cry.audio import resample
from cry.detect.sounds import Clip, load_clip
from cry.detect.synth import at_level, noise
from cry.files import atomic_output, write_json, write_text

RATE = 16000
CRY_LABEL = "cry"


@dataclasses.dataclass(frozen=True)
class Background:
    name: str
    noise: str        # cry.detect.synth.noise kind
    dbfs: float       # its RMS level


BACKGROUNDS = (Background("quiet room", "pink", -68.0), Background("white-noise machine", "white", -42.0),
               Background("fan", "fan", -46.0), Background("loud room tone", "brown", -50.0))


@dataclasses.dataclass(frozen=True)
class NightRecipe:
    """How a night is mixed. Levels are RMS dBFS; a cry is never quieter than min_cry_dbfs (a
    crying baby near the monitor), whatever the background."""

    minutes: float = 30.0
    cries: int = 7
    cry_seconds: tuple = (15.0, 90.0)
    cry_snr_db: tuple = (5.0, 45.0)
    min_cry_dbfs: float = -45.0
    min_gap_seconds: float = 90.0            # between cries: two cries are never one episode
    events_per_minute: float = 2.0           # not-crying events, dense
    event_above_background_db: tuple = (5.0, 30.0)
    min_event_dbfs: float = -50.0
    over_sound_share: float = 0.3            # cries with a not-crying event (music, talk) under them
    reverb_share: float = 0.5                # cries and events heard through a room

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def clip_audio(clip: Clip) -> np.ndarray:
    """A clip at RATE, float32 [n], its level normalised to 0 dBFS RMS for mixing."""
    audio, rate = load_clip(clip.path)
    audio = resample(audio, rate, RATE)
    return audio / max(float(np.sqrt(np.mean(audio ** 2))), 1e-6)


def cry_bout(clips: list[Clip], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One cry of about `seconds`: recordings of one source one after another, with the pauses and
    breaths of a real cry (0.2-3 s of nothing) between them; float32 [n], RMS 1 over the crying."""
    pieces, total = [], 0
    while total < seconds * RATE:
        piece = clip_audio(clips[int(rng.integers(len(clips)))])
        pause = np.zeros(int(rng.uniform(0.2, 3.0) * RATE), np.float32)
        pieces += [piece, pause]
        total += len(piece) + len(pause)
    bout = np.concatenate(pieces[:-1])[:int(seconds * RATE)]
    return bout / max(float(np.sqrt(np.mean(bout[np.abs(bout) > 0] ** 2))), 1e-6)


def room(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """audio heard through a random small room (pyroomacoustics image-source model), same length."""
    import pyroomacoustics as pra
    from scipy.signal import fftconvolve

    dims = rng.uniform([2.5, 2.5, 2.3], [5.0, 4.5, 2.8])
    shoebox = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(float(rng.uniform(0.2, 0.6))), max_order=8)
    shoebox.add_source(rng.uniform(0.3, 1.0, 3) * (dims - 0.6) + 0.3)
    shoebox.add_microphone(rng.uniform(0.3, 1.0, 3) * (dims - 0.6) + 0.3)
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], np.float64)
    wet = fftconvolve(audio, rir / max(np.abs(rir).max(), 1e-9))[:len(audio)]
    return (wet / max(float(np.sqrt(np.mean(wet ** 2))), 1e-9) * float(np.sqrt(np.mean(audio ** 2)))).astype(
        np.float32)


def by_source(clips: list[Clip]) -> dict[str, list[Clip]]:
    groups: dict[str, list[Clip]] = {}
    for clip in clips:
        groups.setdefault(clip.source, []).append(clip)
    return dict(sorted(groups.items()))


def cry_times(recipe: NightRecipe, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(onset, seconds) of the night's cries, in order, never closer than min_gap_seconds."""
    night = recipe.minutes * 60
    for _ in range(1000):
        lengths = rng.uniform(*recipe.cry_seconds, recipe.cries)
        onsets = np.sort(rng.uniform(5.0, night - recipe.cry_seconds[1] - 5.0, recipe.cries))
        if all(onsets[i + 1] - onsets[i] - lengths[i] >= recipe.min_gap_seconds for i in range(recipe.cries - 1)):
            return [(float(o), float(s)) for o, s in zip(onsets, lengths)]
    raise ValueError("cannot fit that many cries that far apart into the night; fewer cries or a longer night")


def add(night: np.ndarray, sound: np.ndarray, at: float) -> None:
    start = int(at * RATE)
    sound = sound[:max(0, len(night) - start)]
    night[start:start + len(sound)] += sound


def make_night(recipe: NightRecipe, background: Background, cries: list[Clip], sounds: list[Clip],
               rng: np.random.Generator) -> tuple[np.ndarray, list[tuple]]:
    """One night: (audio float32 [minutes * 60 * RATE], events (onset, offset, label, what was mixed)
    in time order)."""
    n = int(recipe.minutes * 60 * RATE)
    night = at_level(noise(background.noise, n, rng), background.dbfs).astype(np.float64)
    events, cry_sources, sound_sources = [], by_source(cries), by_source(sounds)
    for onset, seconds in cry_times(recipe, rng):
        source = list(cry_sources)[int(rng.integers(len(cry_sources)))]
        bout = cry_bout(cry_sources[source], seconds, rng)
        reverb = rng.random() < recipe.reverb_share
        bout = room(bout, rng) if reverb else bout
        level = max(background.dbfs + rng.uniform(*recipe.cry_snr_db), recipe.min_cry_dbfs)
        add(night, bout * 10 ** (level / 20), onset)
        events.append((onset, onset + len(bout) / RATE, CRY_LABEL, {"source": source, "dbfs": round(level, 1),
                                                                     "reverb": bool(reverb)}))
        under = {k: v for k, v in sound_sources.items() if any(w in v[0].folder for w in ("music", "speech", "talk"))}
        if (under or sound_sources) and rng.random() < recipe.over_sound_share:  # a cry over music or talk
            events.append(place_sound(night, recipe, background, under or sound_sources, onset - 2.0, rng))
    for _ in range(rng.poisson(recipe.events_per_minute * recipe.minutes) if sound_sources else 0):
        events.append(place_sound(night, recipe, background, sound_sources, rng.uniform(0, n / RATE - 5), rng))
    return np.clip(night, -1, 1).astype(np.float32), sorted(events, key=lambda e: e[:3])


def place_sound(night: np.ndarray, recipe: NightRecipe, background: Background, sources: dict[str, list[Clip]],
                at: float, rng: np.random.Generator) -> tuple:
    """A not-crying clip mixed in at `at`; its event (onset, offset, label: not_cry/<folder>, what)."""
    clips = sources[list(sources)[int(rng.integers(len(sources)))]]
    clip = clips[int(rng.integers(len(clips)))]
    sound = clip_audio(clip)
    sound = room(sound, rng) if rng.random() < recipe.reverb_share else sound
    level = max(background.dbfs + rng.uniform(*recipe.event_above_background_db), recipe.min_event_dbfs)
    at = max(0.0, at)
    add(night, sound * 10 ** (level / 20), at)
    return (at, min(at + len(sound) / RATE, len(night) / RATE), f"not_cry/{clip.folder.split('/')[-1]}",
            {"source": clip.source, "dbfs": round(level, 1), "file": clip.path.name})


def write_nights(out_dir: Path, cries: list[Clip], sounds: list[Clip], nights_per_background: int = 1,
                 recipe: NightRecipe = NightRecipe(), seed: int = 0, backgrounds=BACKGROUNDS) -> Path:
    """Write nights_per_background nights on each background to out_dir (WAV + Audacity labels +
    nights.json). cries, sounds: the crying and not-crying clips the nights are made of."""
    out_dir, rng, made = Path(out_dir), np.random.default_rng(seed), []
    jobs = [(b, i) for b in backgrounds for i in range(nights_per_background)]
    for background, i in tqdm(jobs, desc="nights", unit="night"):
        name = f"{background.name.replace(' ', '_').replace('-', '_')}_{i + 1}"
        audio, events = make_night(recipe, background, cries, sounds, rng)
        with atomic_output(out_dir / f"{name}.wav") as tmp:
            sf.write(str(tmp), audio, RATE, subtype="PCM_16", format="WAV")
        write_text("".join(f"{on:.3f}\t{off:.3f}\t{label}\n" for on, off, label, _ in events), out_dir / f"{name}.txt")
        made.append({"file": f"{name}.wav", "background": background.name, "seconds": len(audio) / RATE,
                     "cries": sum(label == CRY_LABEL for _, _, label, _ in events),
                     "events": [{"onset": round(on, 3), "offset": round(off, 3), "label": label, **what}
                                for on, off, label, what in events]})
    write_json({"recipe": recipe.to_dict(), "seed": seed, "nights": made,
                "cry_sources": sorted(by_source(cries)), "not_cry_sources": sorted(by_source(sounds))},
               out_dir / "nights.json")
    return out_dir


def night_pool(clips: list[Clip]) -> list[Clip]:
    """The clips nights are mixed from: not the corpus's room tone (a night has backgrounds of its
    own) and not the decoded uploads (phone recordings, many with talk or noise over a trace of
    crying: no clean truth of where a cry is). The same pool for make_nights.py, the night-check
    detector and the design table, so a source falls to the same group in all three."""
    return [c for c in clips if not c.folder.startswith("corpus/silence") and not c.folder.endswith("/uploads")]


def source_groups(clips: list[Clip], n_groups: int = 2) -> dict[str, int]:
    """source -> group (0 .. n_groups - 1): every folder's sources dealt out in turn, each folder
    starting where the last left off, so that every group holds sources of every kind and a
    folder of one source (one home recording, one laughing baby) falls to one group only.
    Nights of a group are scored by a detector trained without that group's sources."""
    groups, turn = {}, 0
    folders = sorted({c.folder for c in clips})
    for folder in folders:
        for source in sorted({c.source for c in clips if c.folder == folder}):
            if source not in groups:
                groups[source], turn = turn % n_groups, turn + 1
    return groups


def group_clips(clips: list[Clip], group: int, n_groups: int = 2) -> tuple[list[Clip], list[Clip]]:
    """(the clips of `group`'s sources, the rest)."""
    groups = source_groups(clips, n_groups)
    return [c for c in clips if groups[c.source] == group], [c for c in clips if groups[c.source] != group]


def night_backgrounds(folder: Path) -> dict[str, str]:
    """file name -> background of a folder written by write_nights (none for other folders)."""
    path = Path(folder) / "nights.json"
    try:
        return {n["file"]: n["background"] for n in json.loads(path.read_text())["nights"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
