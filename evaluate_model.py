"""Honest evaluation: metrics with 95% intervals over babies (or sources), beside baselines.

Default: the trained model on its own held-out test babies (the split saved in its JSON).
--audio-dir DIR: the model on any <class>/*.wav folder, windowed and imaged as in training.
--cv K: grouped K-fold cross-validation by baby (train and evaluate per fold, several seeds),
        with the majority, MFCC and YAMNet-embedding baselines through the same folds; with
        --ray ADDRESS the trainings run as tasks on a Ray cluster, with the same results.
--rescore DIR: summarise an earlier --cv run again from its saved probabilities.
--sounds DIR: the real-room report: every clip of DIR's cry/ and not_cry/ trees played alone
        through the live path (detector + reason model), beside YAMNet zero-shot.
--events DIR: long recordings with annotations (e.g. make_nights.py's nights) through the live
        path: cries caught, onset latency, false alarms per hour, episodes per cry, event F1.
--feedback-check --sounds DIR: a parent's "not a cry" on the first false alarms of each kind of
        sound: the rest of that source's alarms, and the cries caught, before and after.
--detector-cv --sounds DIR: how the detector's design was chosen: each candidate recipe by
        source (the README's design table).
Writes reports/evaluation.{json,md} and PNGs, reports/cv.json and a row of reports/experiments.md,
reports/sounds.{json,md}, reports/events.{json,md}, reports/feedback.{json,md}, or
reports/detector_design.{json,md}.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from cry import runtime
from cry.files import UserError, run_main
from cry.params import (DEFAULT_AUDIO, DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_OTHER_CRIES, DEFAULT_REPORTS,
                        DEFAULT_SPECTROGRAMS)
from cry.pretrained import PRETRAINED_DIR
from cry.reason.metrics import N_BOOT
from cry.reason.params import TRAINING_OPTIONS, Training, add_training_arguments


def cross_validate(args) -> int:
    """Train and predict every fold with every seed, save the window probabilities, summarise."""
    from cry.reason import crossval, cv_summary
    from cry.reason.baselines import baseline_features
    from cry.reason.data import grouped_folds, index_spectrograms, read_settings

    data_dir = args.data_dir or DEFAULT_SPECTROGRAMS
    data_dir = data_dir.resolve() if args.ray else data_dir  # the PNG paths a worker on another node opens
    settings, windows = read_settings(data_dir), index_spectrograms(data_dir)
    params = Training().replace(**{name: getattr(args, name) for name in TRAINING_OPTIONS})
    folds = grouped_folds(windows, args.cv, args.fold_seed)
    crossval.save_folds(args.reports_dir, folds, args.fold_seed)
    if args.ray:  # each fold x seed training a Ray task: the same probabilities, sooner
        from cry.cluster import RayCluster, mapper

        cluster = RayCluster(args.ray)
        print(f"training the {args.cv * len(args.seeds)} runs on the Ray cluster at {args.ray} "
              f"({cluster.workers} CPUs)", file=sys.stderr)
        try:
            predictions = crossval.run_folds(windows, folds, settings, params, args.seeds, mapper(cluster))
        finally:
            cluster.shutdown()
    else:
        predictions = crossval.run_folds(windows, folds, settings, params, args.seeds)
    predictions.features = baseline_features(predictions.recordings, {}, args.audio_dir_for_baseline, settings,
                                             args.pretrained_dir)
    predictions.save(args.reports_dir)
    run = crossval.CvRun("python " + shlex.join(sys.argv), params, tuple(args.seeds), args.cv, args.fold_seed,
                         str(data_dir), settings, args.bootstrap if args.bootstrap != N_BOOT else None)
    cv_summary.write_summary(cv_summary.summarise(predictions, folds, run, args.bootstrap), args.reports_dir,
                             args.experiments_file)
    return 0


def rescore(args) -> int:
    """Summarise an earlier --cv run again from its saved probabilities (no training): for a
    change in how recordings are aggregated or scored, on exactly the same models."""
    import dataclasses

    from cry.reason import crossval, cv_summary
    from cry.reason.baselines import baseline_features

    predictions, run, folds = crossval.load_run(args.rescore)
    run = dataclasses.replace(run, rescored="python " + shlex.join(sys.argv),
                              bootstrap_resamples=args.bootstrap if args.bootstrap != N_BOOT else None)
    predictions.features = baseline_features(predictions.recordings, predictions.features,
                                             args.audio_dir_for_baseline, run.settings, args.pretrained_dir)
    cv_summary.write_summary(cv_summary.summarise(predictions, folds, run, args.bootstrap), args.rescore,
                             args.experiments_file)
    return 0


def sounds(args) -> int:
    """The real-room report through the live path of the model and detector files."""
    from cry.assemble import load_live_path
    from cry.detect import clip_report
    from cry.yamnet import YamnetModel

    clip_report.check_sounds_dir(args.sounds)
    detector = None if args.detector == "none" else Path(args.detector)
    path = load_live_path(args.model, detector, args.pretrained_dir)
    about = {"model": str(args.model), "detector": str(detector), "cry_threshold": path.scorer.cry_threshold,
             "detector_band_hz": None if detector is None else path.scorer.detector.band_hz}
    yamnet = path.scorer.detector.yamnet if detector is not None else YamnetModel.from_folder(args.pretrained_dir)
    report = clip_report.sounds_report(args.sounds, path, yamnet, args.reports_dir, about)
    print(clip_report.markdown(report))
    print(f"real-room report written to {args.reports_dir / 'sounds.json'} and {args.reports_dir / 'sounds.md'}")
    return 0


def events(args) -> int:
    """Long annotated recordings (a folder, e.g. make_nights.py's) through the live path."""
    from cry.assemble import load_live_path
    from cry.detect.events import annotated_recordings, events_report, markdown, read_annotations
    from cry.detect.nights import night_backgrounds

    for _, notes in annotated_recordings(args.events):  # a bad folder is said before the models load
        read_annotations(notes)
    detector = None if args.detector == "none" else Path(args.detector)
    path = load_live_path(args.model, detector, args.pretrained_dir)
    report = events_report(args.events, path, args.reports_dir, night_backgrounds(args.events),
                           {"model": str(args.model), "detector": str(detector), "folder": str(args.events)})
    print(markdown(report))
    print(f"events report written to {args.reports_dir / 'events.json'} and {args.reports_dir / 'events.md'}")
    return 0


def detector_trees(args, option: str, why: str) -> list[Path]:
    """What the shipped detector is trained on besides --sounds (the corpus with its uploads, the
    generated sounds, the other cries): --detector-cv and --feedback-check train their heads on it."""
    from cry.detect import synth
    from cry.detect.clip_report import check_sounds_dir
    from cry.detect.training import GENERATED_DIR

    if args.sounds is None:
        raise UserError(f"{option} needs --sounds DIR: {why}")
    check_sounds_dir(args.sounds)
    audio_dir = args.audio_dir or DEFAULT_AUDIO
    if not audio_dir.is_dir():
        raise UserError(f"{audio_dir}: no such folder (run prepare_data.py first)")
    other = [args.other_cries_dir] if args.other_cries_dir.is_dir() else []
    return [audio_dir, synth.generate(GENERATED_DIR, audio_dir), *other]


def feedback_check(args) -> int:
    """What marking K false alarms of a folder does to the rest of it, and to cries."""
    from cry.detect.feedback_check import feedback_report, markdown
    from cry.detect.training import CACHE_DIR
    from cry.yamnet import YamnetModel

    trees = detector_trees(args, "--feedback-check", "the sounds whose false alarms are marked")
    report = feedback_report(trees, args.sounds, YamnetModel.from_folder(args.pretrained_dir),
                             shipped_live_settings(args), args.reports_dir, cache_dir=CACHE_DIR)
    print(markdown(report))
    print(f"feedback report written to {args.reports_dir / 'feedback.json'} and {args.reports_dir / 'feedback.md'}")
    return 0


def detector_design(args) -> int:
    """Each candidate detector recipe by source: the README's design table."""
    from cry.detect import design
    from cry.detect.training import CACHE_DIR

    trees = detector_trees(args, "--detector-cv", "the real-room clips the recipes are measured on")
    report = design.design_report(trees, args.sounds, shipped_live_settings(args), args.reports_dir,
                                  args.pretrained_dir, CACHE_DIR)
    print(design.design_markdown(report))
    print(f"detector design table written to {args.reports_dir / 'detector_design.json'} and "
          f"{args.reports_dir / 'detector_design.md'} (nights in {report['nights']})")
    return 0


def shipped_live_settings(args):
    """The live settings of the shipped detector (what its recipes are measured under), else the defaults."""
    from cry.params import LiveSettings

    try:
        from cry.detect.detector import load_detector

        return load_detector(Path(args.detector), args.pretrained_dir).live
    except UserError:  # no detector yet, or one of another version: the defaults
        return LiveSettings()


def held_out(args) -> int:
    from cry.reason.evaluation import evaluate
    from cry.reason.model_files import read_model_info

    if args.audio_dir is not None and not args.audio_dir.is_dir():
        raise UserError(f"{args.audio_dir}: no such folder")
    _, text = evaluate(args.model, read_model_info(args.model), args.reports_dir, args.data_dir, args.audio_dir,
                       args.bootstrap)
    print(text)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--data-dir", type=Path, help=f"spectrograms (default: the model's, or {DEFAULT_SPECTROGRAMS})")
    parser.add_argument("--audio-dir", type=Path, help="evaluate the model on this <class>/*.wav folder instead "
                        f"(with --detector-cv: the corpus recordings, default {DEFAULT_AUDIO})")
    parser.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS, help="default: %(default)s")
    parser.add_argument("--bootstrap", type=int, default=N_BOOT, metavar="N",
                        help="resamples of babies behind each 95%% interval (default: %(default)s; fewer: faster, "
                             "rougher intervals, recorded in the report)")
    room = parser.add_argument_group("real-room report (--sounds DIR) and the detector's design (--detector-cv)")
    room.add_argument("--sounds", type=Path, metavar="DIR", help="a folder with cry/ and not_cry/ at its top")
    room.add_argument("--detector", default=str(DEFAULT_DETECTOR),
                      help="the crying detector, or 'none' for the reason model alone (default: %(default)s)")
    room.add_argument("--events", type=Path, metavar="DIR", help="long recordings with annotation files beside "
                      "them (<name>.txt: onset, offset, label), e.g. make_nights.py's: scored through the live path")
    room.add_argument("--detector-cv", action="store_true", help="measure each candidate detector recipe by source "
                      "(training folders by grouped 5-fold CV, --sounds held out)")
    room.add_argument("--feedback-check", action="store_true", help="with --sounds: for each not-crying folder, a head "
                      "that never heard it; its first 3 false alarms marked 'not a cry' (as a parent would); the rest "
                      "of that folder's alarms, and the cries caught, before and after")
    room.add_argument("--other-cries-dir", type=Path, default=DEFAULT_OTHER_CRIES,
                      help="--detector-cv, --feedback-check: prepare_data.py's uploads tagged with no class, "
                      "cries too, when there (default: %(default)s)")
    room.add_argument("--pretrained-dir", type=Path, help=f"YAMNet's folder, also for the --cv baseline on its "
                      f"embeddings (default: {PRETRAINED_DIR})")
    cv = parser.add_argument_group("cross-validation (--cv K)")
    cv.add_argument("--cv", type=int, metavar="K", help="grouped K-fold cross-validation by baby")
    add_training_arguments(cv)
    cv.add_argument("--seeds", type=int, nargs="+", default=[0], help="repeat every fold with these seeds")
    cv.add_argument("--ray", metavar="ADDRESS", help="train the fold x seed runs as tasks on the Ray cluster at "
                    "ADDRESS (host:port of its head, or 'auto' on a node of it); the spectrograms must be at the "
                    "same paths on every node")
    cv.add_argument("--fold-seed", type=int, default=2026, help="the folds, the same for every variant")
    cv.add_argument("--experiments-file", type=Path, default=DEFAULT_REPORTS / "experiments.md",
                    help="table the result is appended to (default: %(default)s)")
    cv.add_argument("--audio-dir-for-baseline", type=Path, default=DEFAULT_AUDIO,
                    help="source audio for the MFCC and YAMNet baselines (default: %(default)s)")
    cv.add_argument("--rescore", type=Path, metavar="DIR",
                    help="summarise the --cv run whose reports are in DIR again from its saved probabilities")
    args = parser.parse_args(argv)
    runtime.setup()
    if args.bootstrap < 1:
        raise UserError("--bootstrap must be at least 1")
    if args.detector_cv:
        return detector_design(args)
    if args.feedback_check:
        return feedback_check(args)
    if args.events is not None:
        return events(args)
    if args.sounds is not None:
        return sounds(args)
    if args.rescore is not None:
        return rescore(args)
    if args.cv is not None:
        if args.cv < 2:
            raise UserError("--cv needs at least 2 folds")
        return cross_validate(args)
    return held_out(args)


if __name__ == "__main__":
    run_main(main)
