"""Generated sounds with known answers, written as a sounds tree (cry/, not_cry/, sources.csv).

Not crying: speech in many voices and languages (espeak-ng), music (sox), noise and fan hum,
tones, beeps and sweeps. Crying: corpus cries mixed with those sounds at several SNRs. The
corpus's only non-cry class is room tone, so a model trained on it alone learns "loud = crying";
these teach the detector that loud is not enough. Deterministic for a seed (same files, same
bytes); every clip's source (a voice, a piece, a baby) is recorded so splits can keep it on
one side. Noise is drawn with numpy (seeded): sox's own noise is the same for every call.
"""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from cry.audio import decode, resample
from cry.detect.sounds import SOURCES_FILE, list_clips, load_clip
from cry.files import UserError, write_text

RATE = 16000        # generated audio; every other not-crying clip is written at PHONE_RATE,
PHONE_RATE = 8000   # so that "nothing above 4 kHz" (all corpus cries) cannot mean "crying"
SECONDS = 5.0
SNRS_DB = (20.0, 10.0, 5.0, 0.0)  # cry over background, for the crying mixes
VERSION = 2         # bump when the generated sounds change: the folder is then regenerated

LANGUAGES = ("en-us", "en-gb", "fr-fr", "de", "es", "it", "pt", "nl", "pl", "hu", "sv", "ru", "cs", "tr",
             "hi", "cmn", "ja", "ar")
VARIANTS = ("m1", "m3", "m7", "f1", "f2", "f4", "klatt", "whisper", "Annie", "grandma", "croak", "Andrea")
TEXTS = {
    "en": ("Good morning, did you sleep well? I think the baby is finally asleep.",
           "Could you pass me the milk please, the bottle is in the kitchen.",
           "One, two, three, four, five, six, seven, eight, nine, ten.",
           "The weather today will be cloudy with a chance of rain in the afternoon."),
    "fr": ("Bonjour, tu as bien dormi ? Le bébé dort enfin.", "Un, deux, trois, quatre, cinq, six, sept."),
    "de": ("Guten Morgen, hast du gut geschlafen? Das Baby schläft endlich.", "Eins, zwei, drei, vier, fünf."),
    "es": ("Buenos días, ¿dormiste bien? El bebé por fin está dormido.", "Uno, dos, tres, cuatro, cinco."),
    "it": ("Buongiorno, hai dormito bene? Il bambino finalmente dorme.", "Uno, due, tre, quattro, cinque."),
    "pt": ("Bom dia, dormiste bem? O bebé finalmente adormeceu.", "Um, dois, três, quatro, cinco."),
    "nl": ("Goedemorgen, heb je goed geslapen? De baby slaapt eindelijk.", "Een, twee, drie, vier, vijf."),
    "pl": ("Dzień dobry, dobrze spałeś? Dziecko wreszcie śpi.", "Jeden, dwa, trzy, cztery, pięć."),
    "hu": ("Jó reggelt, jól aludtál? A baba végre alszik.", "Egy, kettő, három, négy, öt."),
    "sv": ("God morgon, sov du gott? Bebisen sover äntligen.", "Ett, två, tre, fyra, fem."),
    "ru": ("Доброе утро, ты хорошо спал? Малыш наконец уснул.", "Один, два, три, четыре, пять."),
    "cs": ("Dobré ráno, spal jsi dobře? Miminko konečně spí.", "Jedna, dva, tři, čtyři, pět."),
    "tr": ("Günaydın, iyi uyudun mu? Bebek sonunda uyudu.", "Bir, iki, üç, dört, beş."),
    "hi": ("सुप्रभात, क्या आप अच्छी तरह सोए? बच्चा आखिरकार सो गया।", "एक, दो, तीन, चार, पांच।"),
    "cmn": ("早上好，你睡得好吗？宝宝终于睡着了。", "一，二，三，四，五。"),
    "ja": ("おはようございます、よく眠れましたか。赤ちゃんはやっと寝ました。", "いち、に、さん、し、ご。"),
    "ar": ("صباح الخير، هل نمت جيدا؟ الطفل نام أخيرا.", "واحد، اثنان، ثلاثة، أربعة، خمسة."),
}
INSTRUMENTS = ("pluck", "sine", "triangle", "square", "sawtooth")
PROGRESSIONS = ((0, 7, 9, 5), (0, 5, 7, 0), (9, 5, 0, 7), (0, 9, 5, 7), (2, 7, 0, 0))  # semitones from the key
MAJOR, MINOR = (0, 4, 7), (0, 3, 7)


def need_tools() -> None:
    """espeak-ng and sox on the PATH, or one line saying how to install them."""
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        raise UserError(f"{' and '.join(missing)} not found: install them (Debian/Ubuntu: sudo apt-get install "
                        f"espeak-ng sox)")


def sox(*args: str) -> np.ndarray:
    """The mono float32 audio [n] at RATE that `sox -n ... <args>` synthesises."""
    cmd = ["sox", "-R", "-n", "-r", str(RATE), "-c", "1", "-t", "f32", "-", *args]
    done = subprocess.run(cmd, capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.float32).copy()


def speak(text: str, voice: str, pitch: int, words_per_minute: int) -> np.ndarray:
    """espeak-ng's reading of text, float32 [n] at RATE."""
    done = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(words_per_minute), "--stdout", text],
                          capture_output=True, check=True)
    audio, rate = decode(done.stdout)
    return resample(audio, rate, RATE)


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise, or a fan (brown rumble, mains hum, blade flutter); float32 [n], RMS 1."""
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    else:
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        power = {"pink": 1.0, "brown": 2.0, "fan": 2.0}[kind]
        shape = 1 / np.maximum(freqs, 20.0) ** (power / 2)
        out = np.fft.irfft(np.fft.rfft(white) * shape, n)
        if kind == "fan":
            t = np.arange(n) / RATE
            mains = rng.choice([50.0, 60.0])
            hum = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) / k for k in (1, 2, 3, 4))
            out = out / out.std() * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(8, 25) * t)) + 0.5 * hum
    return (out / out.std()).astype(np.float32)


def music(rng: np.random.Generator) -> np.ndarray:
    """A few bars of chords with a melody on top, in a random key and tempo; float32 [~SECONDS * RATE]."""
    key, beat = int(rng.integers(-14, 4)), float(rng.uniform(0.3, 0.7))
    instrument, lead = rng.choice(INSTRUMENTS), rng.choice(INSTRUMENTS)
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    bars = []
    while sum(map(len, bars)) < SECONDS * RATE:
        for step in progression:
            chord = MINOR if step in (2, 9) else MAJOR
            tones = [a for n in chord for a in (instrument, f"%{key + step + n}")]
            bar = sox("synth", f"{2 * beat:.3f}", *tones, "remix", "-", "fade", "0", f"{2 * beat:.3f}", "0.05")
            notes = [key + step + 12 + int(rng.choice([0, 2, 4, 5, 7, 9])) for _ in range(4)]
            melody = np.concatenate([sox("synth", f"{beat / 2:.3f}", lead, f"%{m}", "fade", "0.01", f"{beat / 2:.3f}",
                                         "0.03") for m in notes])
            n = min(len(bar), len(melody))
            bars.append(bar[:n] / 3 + melody[:n] * 0.6)
    return np.concatenate(bars)[:int(SECONDS * RATE)]


def played(rng: np.random.Generator) -> np.ndarray:
    """Played-sounding music (numpy): a bowed or blown melody with vibrato over held chords, bass
    and, half the time, drums. Real strings, brass and voices glide and waver in pitch like a
    cry does; sox's steady notes do not teach that. Returns float32 [SECONDS * RATE]."""
    n, t = int(SECONDS * RATE), np.arange(int(SECONDS * RATE)) / RATE
    key, beat = 220.0 * 2 ** (int(rng.integers(-7, 8)) / 12), float(rng.uniform(0.25, 0.6))
    scale = (0, 2, 4, 5, 7, 9, 11, 12)
    brightness, vibrato_hz = float(rng.uniform(0.5, 0.9)), float(rng.uniform(4.5, 6.5))

    def voice(f0: np.ndarray, partials: int) -> np.ndarray:  # f0: Hz per sample [n]
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        return sum(brightness ** k * np.sin(k * phase) for k in range(1, partials + 1))

    steps = np.minimum((t // beat).astype(int), 10_000)
    notes = key * 2 ** (np.array(scale)[rng.integers(len(scale), size=steps.max() + 1)] / 12)
    f0 = notes[steps] * (1 + 0.006 * np.sin(2 * np.pi * vibrato_hz * t))        # melody, vibrato
    attack = np.minimum(1.0, (t % beat) / 0.04)
    out = voice(f0, 8) * attack
    chord = key / 2 * 2 ** (np.array(PROGRESSIONS[rng.integers(len(PROGRESSIONS))]) / 12)
    bar = np.minimum((t // (4 * beat)).astype(int) % len(chord), len(chord) - 1)
    for interval in MAJOR:
        out = out + 0.4 * voice(chord[bar] * 2 ** (interval / 12), 4)
    out = out + 0.6 * voice(chord[bar] / 2, 2)                                   # bass
    if rng.random() < 0.5:                                                       # kick and hi-hat
        since = t % beat
        out = out + 3 * np.sin(2 * np.pi * 55 * since) * np.exp(-since / 0.08)
        out = out + 1.5 * rng.standard_normal(n) * np.exp(-((t + beat / 2) % beat) / 0.02)
    return out[:n].astype(np.float32)


def tone(rng: np.random.Generator) -> np.ndarray:
    """A steady tone, an alarm's beeps or a sweep (a siren): float32 [SECONDS * RATE]."""
    kind, seconds = rng.choice(["steady", "beeps", "sweep"]), f"{SECONDS:g}"
    low, high = sorted(rng.uniform(200, 3000, 2).round())
    wave = rng.choice(["sine", "square", "triangle"])
    if kind == "steady":
        return sox("synth", seconds, wave, f"{low:g}")
    if kind == "sweep":
        return sox("synth", seconds, wave, f"{low:g}-{high:g}", "repeat", "0")[:int(SECONDS * RATE)]
    on, period = float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.3, 1.0))
    audio = sox("synth", seconds, wave, f"{high:g}")
    t = np.arange(len(audio)) / RATE
    return audio * ((t % period) < on)


def at_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """audio scaled to an RMS of dbfs, clipped to [-1, 1]; float32 [n]."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) or 1.0
    return np.clip(audio * (10 ** (dbfs / 20) / rms), -1, 1).astype(np.float32)


def mix(signal: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """signal over background (looped or cut to its length) at snr_db, at signal's level; float32 [len(signal)]."""
    background = np.resize(background, len(signal))
    scale = np.sqrt(np.mean(signal ** 2) / max(np.mean(background ** 2), 1e-12)) * 10 ** (-snr_db / 20)
    return (signal + scale * background).astype(np.float32)


def not_crying(rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    """(folder, source, audio at RATE) of every generated not-crying clip."""
    clips = []
    for i, language in enumerate(LANGUAGES):
        texts = TEXTS.get(language.split("-")[0], TEXTS["en"])
        for variant in (VARIANTS[(2 * i) % len(VARIANTS)], VARIANTS[(2 * i + 1) % len(VARIANTS)]):
            voice, source = f"{language}+{variant}", f"espeak:{language}+{variant}"
            for text in texts[:2]:
                speech = speak(text, voice, int(rng.integers(20, 100)), int(rng.integers(120, 200)))
                clips.append(("not_cry/speech_espeak", source, speech))
            kind = str(rng.choice(["fan", "pink", "brown"]))
            clips.append(("not_cry/speech_in_noise", source,
                          mix(speech, noise(kind, len(speech), rng), float(rng.uniform(0, 15)))))
    n = int(SECONDS * RATE)
    for i in range(30):
        clips.append(("not_cry/music_sox", f"music:{i}", music(rng)))
    for i in range(40):
        clips.append(("not_cry/music_played", f"played:{i}", played(rng)))
    for i, kind in enumerate(("white", "pink", "brown", "fan") * 8):
        clips.append(("not_cry/noise", f"noise:{kind}:{i}", noise(kind, n, rng)))
    for i in range(24):
        clips.append(("not_cry/tones_sox", f"tone:{i}", tone(rng)))
    return clips


def crying(cries: list, backgrounds: list[np.ndarray], rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    """(folder, source, audio at RATE): one corpus cry per baby over a generated background at
    each SNR in turn. The source is the baby's, so a split keeps the mix with its baby."""
    first = {}
    for clip in cries:
        first.setdefault(clip.source, clip)
    clips = []
    for i, (source, clip) in enumerate(sorted(first.items())):
        audio, rate = load_clip(clip.path)
        cry = resample(audio, rate, RATE)
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        clips.append(("cry/corpus_cry_mixes", source, mix(cry, background, SNRS_DB[i % len(SNRS_DB)])))
    return clips


def generate(out_dir: Path, corpus_audio_dir: Path | None = None, seed: int = 0) -> Path:
    """Write the generated sounds tree to out_dir (skipped when it is already there for this
    VERSION and seed); crying mixes need prepare_data.py's corpus folder. Returns out_dir."""
    out_dir = Path(out_dir)
    stamp = f"version={VERSION} seed={seed} corpus={corpus_audio_dir is not None}\n"
    if (out_dir / SOURCES_FILE).is_file() and (out_dir / "made_by.txt").is_file() and \
            (out_dir / "made_by.txt").read_text() == stamp:
        return out_dir
    need_tools()
    rng = np.random.default_rng(seed)
    clips = not_crying(rng)
    if corpus_audio_dir is not None:
        cries = [c for c in list_clips(corpus_audio_dir)[0] if c.label == 1]
        backgrounds = [a for folder, _, a in clips if folder != "not_cry/tones_sox"]
        clips += crying(cries, backgrounds, rng)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / "made_by.txt").is_file():
            raise UserError(f"{out_dir}: not empty and not made by cry.detect.synth; choose another folder for them")
        shutil.rmtree(out_dir)  # made by an older version or seed: regenerated whole
    rows, counts = [], {}
    for folder, source, audio in clips:
        counts[folder] = counts.get(folder, 0) + 1
        path = Path(folder) / f"{folder.split('/')[-1]}_{counts[folder]:03d}.wav"
        rate = PHONE_RATE if folder.startswith("not_cry") and counts[folder] % 2 == 0 else RATE
        level = float(rng.uniform(-38, -14))  # quiet speech in the next room to a loud fan
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out_dir / path), at_level(resample(audio, RATE, rate), level), rate, subtype="PCM_16")
        rows.append({"path": path.as_posix(), "source": source})
    table = io.StringIO()
    writer = csv.DictWriter(table, ["path", "source"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(table.getvalue(), out_dir / SOURCES_FILE)
    write_text(stamp, out_dir / "made_by.txt")
    return out_dir
