"""Mix simulated nights from sound clips, by source, with annotations: the nights benchmark.

Each night is half an hour (--minutes) on one background (a near-silent room, a white-noise
machine, a fan, loud room tone) with dense not-crying events (every not_cry/ folder of --sounds)
and cries of 15-90 s (the cry/ folders of --sounds and the corpus cries of --corpus), some through
a room, some over music or talk. Only the sources of one --group are used (the sources are dealt
into --groups groups, every folder spread over them): a detector trained without that group's
sources (train_model.py --night-check) can then be scored on them honestly with
`evaluate_model.py --events DIR`. Writes DIR/<night>.wav, DIR/<night>.txt (Audacity labels:
onset, offset, label) and DIR/nights.json.

  python make_nights.py --sounds ../shared/sounds --out data/nights
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cry import runtime
from cry.detect.nights import BACKGROUNDS, NightRecipe, group_clips, night_pool, write_nights
from cry.detect.training import gather
from cry.files import UserError, run_main
from cry.params import DEFAULT_AUDIO

DEFAULT_NIGHTS = Path("data/nights")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sounds", type=Path, required=True, help="a folder with cry/ and not_cry/ at its top")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_AUDIO,
                        help="prepare_data.py's corpus folder, for its cries (default: %(default)s; 'none': no corpus)")
    parser.add_argument("--out", type=Path, default=DEFAULT_NIGHTS, help="default: %(default)s")
    parser.add_argument("--group", type=int, default=0, help="which group of sources (default: %(default)s)")
    parser.add_argument("--groups", type=int, default=2, help="how many groups the sources are dealt into "
                        "(default: %(default)s; 1: every source)")
    parser.add_argument("--nights-per-background", type=int, default=1, help="default: %(default)s")
    parser.add_argument("--minutes", type=float, default=NightRecipe().minutes, help="default: %(default)s")
    parser.add_argument("--cries", type=int, default=NightRecipe().cries, help="cries a night (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    args = parser.parse_args(argv)
    runtime.setup()
    if not 0 <= args.group < args.groups or args.nights_per_background < 1:
        raise UserError("--group must be in 0 .. --groups - 1, and --nights-per-background at least 1")
    folders = [args.sounds] + ([] if str(args.corpus) == "none" else [args.corpus])
    clips, _ = group_clips(night_pool(gather(folders)), args.group, args.groups)
    cries, sounds = [c for c in clips if c.label == 1], [c for c in clips if c.label == 0]
    if not cries:
        raise UserError(f"no cries among the sources of group {args.group} (cry/ folders of {args.sounds})")
    recipe = NightRecipe(minutes=args.minutes, cries=args.cries)
    out = write_nights(args.out, cries, sounds, args.nights_per_background, recipe, args.seed)
    print(f"{args.nights_per_background * len(BACKGROUNDS)} nights of {args.minutes:g} minutes from "
          f"{len({c.source for c in cries})} cry sources and {len({c.source for c in sounds})} not-crying sources "
          f"(group {args.group} of {args.groups}) written to {out}/ (labels beside each, recipe in nights.json)")
    return 0


if __name__ == "__main__":
    run_main(main)
