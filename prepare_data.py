"""Build data/audio/<class>/*.wav from the Donate-a-Cry corpus, plus real silence clips.

By default the corpus is downloaded from its public GitHub repository; --source takes a
local copy instead. Every output name starts with the baby (app-install) id, so splits
can keep each baby on one side. Files without a class, or that cannot be decoded, are not
copied: each is printed with its reason, and the exit status is then 1 (else 0; 2 on error).
The pretrained YAMNet is fetched too, into models/pretrained/ (--models-source takes a local copy).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cry import runtime
from cry.audio import list_audio_files
from cry.corpus import baby_id, download_corpus, find_cleaned_folder, prepare_cleaned
from cry.files import UserError, run_main
from cry.params import CLASSES, DEFAULT_AUDIO
from cry.pretrained import PRETRAINED_DIR, fetch_pretrained


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="local copy of the corpus (default: download it)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_AUDIO, help="default: %(default)s")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/download"),
                        help="where the download is kept (default: %(default)s)")
    parser.add_argument("--models-source", type=Path, help="local copy of the pretrained model folder "
                        "(default: download YAMNet)")
    parser.add_argument("--models-dir", type=Path, default=PRETRAINED_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    runtime.setup()
    for folder in (args.source, args.models_source):
        if folder is not None and not folder.is_dir():
            raise UserError(f"{folder}: no such folder")
    fetch_pretrained(args.models_dir, args.models_source)
    folder = find_cleaned_folder(args.source or download_corpus(args.cache_dir))
    counts, skipped = prepare_cleaned(folder, args.out_dir)
    for line in skipped:
        print(f"skipped: {line}")
    babies = {baby_id(p) for p in list_audio_files(args.out_dir)}
    print("recordings per class: " + ", ".join(f"{c} {counts[c]}" for c in CLASSES))
    print(f"{sum(counts.values())} files from {len(babies)} babies written to {args.out_dir}/, {len(skipped)} skipped")
    return 1 if skipped else 0


if __name__ == "__main__":
    run_main(main)
