"""Build data/audio/<class>/*.wav from the Donate-a-Cry corpus, plus real silence clips.

By default the corpus is downloaded from its public GitHub repository; --source takes a
local copy instead. Every output name starts with the baby (app-install) id, so splits
can keep each baby on one side. The cleaned folder's recordings are copied; then the original
uploads (3gp, caf) are taken too, unless --no-uploads: an upload already in the cleaned folder
is not counted again, the others are decoded, screened (no crying window heard by YAMNet: listed,
not used) and written to data/audio/<class>/uploads/, or, tagged dk/lo/sc (no class), to
--other-cries-dir for the detector only. Every upload's outcome is listed in data/audio/uploads.csv;
a rerun decodes only what changed. Files that cannot be used (no class, cannot be decoded) are
printed one line each with their reason, and the exit status is then 1 (else 0; 2 on error).
The pretrained YAMNet is fetched too, into models/pretrained/ (--models-source takes a local copy).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cry import runtime
from cry.audio import list_audio_files
from cry.corpus import baby_id, download_corpus, find_cleaned_folder, find_upload_buckets, prepare_cleaned
from cry.files import UserError, run_main
from cry.params import CLASSES, DEFAULT_AUDIO, DEFAULT_OTHER_CRIES
from cry.pretrained import PRETRAINED_DIR, fetch_pretrained
from cry.uploads import IN_CLEANED, NOT_A_CRY, OTHER_CRY, UNUSABLE, UPLOADS_LIST, USED, prepare_uploads, \
    remove_uploads


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="local copy of the corpus (default: download it)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_AUDIO, help="default: %(default)s")
    parser.add_argument("--no-uploads", action="store_true",
                        help="the cleaned folder only (removes decoded uploads of earlier runs from --out-dir)")
    parser.add_argument("--other-cries-dir", type=Path, help="uploads tagged dk/lo/sc, cries for the detector only "
                        f"(default: other_cries beside --out-dir, so {DEFAULT_OTHER_CRIES} for the default)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/download"),
                        help="where the download is kept (default: %(default)s)")
    parser.add_argument("--models-source", type=Path, help="local copy of the pretrained model folder "
                        "(default: download YAMNet)")
    parser.add_argument("--models-dir", type=Path, default=PRETRAINED_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    args.other_cries_dir = args.other_cries_dir or args.out_dir.parent / DEFAULT_OTHER_CRIES.name
    runtime.setup()
    for folder in (args.source, args.models_source):
        if folder is not None and not folder.is_dir():
            raise UserError(f"{folder}: no such folder")
    fetch_pretrained(args.models_dir, args.models_source)
    folder = find_cleaned_folder(args.source or download_corpus(args.cache_dir))
    counts, skipped = prepare_cleaned(folder, args.out_dir)
    buckets = [] if args.no_uploads else find_upload_buckets(folder)
    if args.no_uploads:
        if removed := remove_uploads(args.out_dir, args.other_cries_dir):
            print(f"--no-uploads: removed {removed} decoded uploads of an earlier run")
    elif not buckets:
        print(f"note: no upload buckets beside {folder}: the cleaned folder only")
    else:
        skipped += uploads(buckets, folder, args, counts)
    for line in skipped:
        print(f"skipped: {line}")
    babies = {baby_id(p) for p in list_audio_files(args.out_dir)}
    print("recordings per class: " + ", ".join(f"{c} {counts[c]}" for c in CLASSES))
    print(f"{sum(counts[c] for c in CLASSES)} files from {len(babies)} babies written to {args.out_dir}/, "
          f"{len(skipped)} skipped")
    return 1 if skipped else 0


def uploads(buckets: list[Path], folder: Path, args, counts) -> list[str]:
    """Prepare the uploads, add what they gave to counts, say what became of them; their problems."""
    from cry.detect.screen import CryScreen
    from cry.yamnet import YamnetModel

    result = prepare_uploads(buckets, folder, args.out_dir, args.other_cries_dir,
                             CryScreen(YamnetModel.from_folder(args.models_dir)))
    written = result.written()
    counts.update({c: written[c] for c in CLASSES})
    other = ", ".join(f"{f} {n}" for f, n in sorted(written.items()) if f not in CLASSES)
    print(f"uploads: {len(result.rows)} in {', '.join(map(str, buckets))}: {result.count(IN_CLEANED)} already in "
          f"the cleaned folder, {result.count(USED)} used for the reasons, {result.count(OTHER_CRY)} cries for the "
          f"detector only ({other or 'none'}; in {args.other_cries_dir}/), {result.count(NOT_A_CRY)} not cries, "
          f"{result.count(UNUSABLE)} cannot be used; {result.reused} decided by an earlier run"
          + (f", {result.removed} outputs of an earlier run removed" if result.removed else ""))
    print(f"every upload and its outcome: {args.out_dir / UPLOADS_LIST}")
    return result.problems()


if __name__ == "__main__":
    run_main(main)
