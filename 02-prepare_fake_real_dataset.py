"""Stage 02: face crops -> a balanced real/fake set -> a leak-free train/val/test split.

    FACES_DIR/<video>/<video>-NNN-NN.png   (labels from VIDEOS_DIR: metadata.json, or real/ fake/)
      ->  PREPARED_DIR/{real,fake}/<video>-NNN-NN.png                  the balanced set
      ->  SPLIT_DIR/{train,val,test}/{real,fake}/<video>-NNN-NN.png    what stage 03 trains on
          SPLIT_DIR/split.csv        every file: file, split, class, video, group
          SPLIT_DIR/settings-02.json

    python 02-prepare_fake_real_dataset.py [--config configs/my_dataset.py] [--replace] [--split-lists FOLDER]

1. Labels: every video labelled REAL or FAKE by metadata.json (or a real/ fake/ subfolder).
   Other labels, videos without crops and crop folders without a label are reported and left out.
2. Balance, as the original: the larger class is down-sampled at random, crop by crop, to the
   number of crops of the smaller one (normally the fakes to the reals). SPLIT_SEED fixes the draw.
3. Split SPLIT_RATIOS (80:10:10) by source group, so that nothing leaks between splits: all crops
   of a video stay together, and a fake stays with the real video it was made from (DFDC's
   `original`). A group is a real video plus every fake made from it; fakes whose original is not
   in the dataset are grouped by that original's name all the same. Every split gets both classes
   when there are enough groups. SPLIT_MODE = "file" restores the original's per-file split
   (split-folders' rule), for comparison only: near-identical frames of one video then sit in both
   train and test, and test scores come out too high.
   Official splits win: with FaceForensics++'s train/val/test.json (SPLIT_LISTS_DIR or
   --split-lists; every video of a listed pair, both originals and every method's fakes, goes to
   that split) or Celeb-DF's List_of_testing_videos.txt (the test split), the lists decide, the
   unlisted videos are split over the remaining splits by SPLIT_RATIOS, and the classes are
   balanced within each split. The summary then says which list gave which split
   ("official split: test from .../test.json (...)"); see docs/datasets-ffpp.md and
   docs/datasets-celeb-df.md.

Files are hard links to the crops (os.link), so the two output sets cost almost no disk even for
a million crops; where the filesystem refuses links (another drive, FAT/exFAT), they are copied.
A hard link is the same file as the crop: never edit the output files in place. The crops are
never changed. Both outputs are built in hidden partial folders and renamed when complete, so a
killed run leaves no output that looks finished; the next run clears the leftovers. An output
folder that is not empty is replaced only with --replace, and only when it holds nothing but
stage 02 output. Ends with a table and a summary:

    split    real crops  real videos   fake crops  fake videos       groups
    train            48            8           48            8            8
    val               6            1            6            1            1
    test              6            1            6            1            1
    total            60           10           60           10           10
    stage 02 finished in 0.1 s: 20 videos (20 done)
      crops: 120
      balanced: the classes are equal already: 60 crops each
      leak check: 0 of 10 source groups span two or more splits
      files: 240 hard links
      split list: data/sample/split_dataset/split.csv
      balanced set: data/sample/prepared_dataset
      output: data/sample/split_dataset
"""

import sys
from pathlib import Path

from deepfake_detect import arguments, settings
from deepfake_detect.datasets import split
from deepfake_detect.datasets.discovery import detect_layout
from deepfake_detect.jobs.console import Timer, summarize, warn
from deepfake_detect.jobs.outcome import SKIPPED


def parse_args(argv=None):
    parser = arguments.new_parser(__doc__)
    parser.add_argument("--replace", action="store_true",
                        help="delete and rebuild PREPARED_DIR and SPLIT_DIR if they are not empty")
    parser.add_argument("--split-lists", type=Path, default=None, metavar="FOLDER",
                        help="folder of official split lists (FF++ train/val/test.json, Celeb-DF "
                             "List_of_testing_videos.txt); default: config SPLIT_LISTS_DIR, else VIDEOS_DIR")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    timer = Timer()
    try:
        cfg = settings.load_config(args.config)
        if args.split_lists is not None:
            if not args.split_lists.is_dir():
                raise split.StageError(f"--split-lists {args.split_lists} is not a folder")
            cfg.SPLIT_LISTS_DIR = args.split_lists
        print(settings.describe_settings(cfg, ["VIDEOS_DIR", "FACES_DIR", "PREPARED_DIR", "SPLIT_DIR",
                                               "SPLIT_RATIOS", "SPLIT_SEED", "SPLIT_MODE", "SPLIT_LISTS_DIR"])
              + f", layout: {detect_layout(cfg)}")
        split.check_output_folders(cfg, args.replace)
        listing = split.labelled_videos(cfg)
        if not Path(cfg.FACES_DIR).is_dir():
            raise split.StageError(f"no face crops: {cfg.FACES_DIR} does not exist; "
                                   "run 01a-crop_faces_with_mtcnn.py first")
    except (settings.ConfigError, FileNotFoundError, split.StageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if cfg.SPLIT_LISTS_DIR and not listing.split_sources:
        warn(f"no official split list for {listing.layout} in {cfg.SPLIT_LISTS_DIR}: splitting by SPLIT_RATIOS")
    crops, outcomes = split.collect_crops(listing.videos, cfg.FACES_DIR)
    for outcome in outcomes:
        if outcome.status == SKIPPED:
            warn(f"{outcome.name}: {outcome.reason}")
    missing = split.missing_label(crops)
    if missing:
        print(f"error: no {missing} face crops in {cfg.FACES_DIR}: both classes are needed to build "
              "a training set", file=sys.stderr)
        return 1
    crops, assignment, balance_note, split_warnings, official = split.decide_splits(crops, listing.split_sources, cfg)
    print(f"balanced: {balance_note}")
    for message in split_warnings:
        warn(message)

    placer = split.FilePlacer()
    rows = split.build_outputs(crops, assignment, cfg, placer)
    print(split.split_table(rows))
    official_line = [split.describe_official_split(official, rows)] if official else []
    summarize("stage 02", outcomes, timer.seconds, cfg.SPLIT_DIR, extra=official_line + [
        f"balanced: {balance_note}", split.describe_leaks(rows, cfg.SPLIT_MODE), f"files: {placer.describe()}",
        f"split list: {cfg.SPLIT_DIR / split.SPLIT_CSV}", f"balanced set: {cfg.PREPARED_DIR}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
