"""The closing table of `make demo`: stage 04's verdicts on the sample videos, each marked with
the split stage 02 put it in, so that the videos held out of training (test) stand apart.

    python -m deepfake_detect.demo held-out data/sample/split_dataset/split.csv data/sample/videos
    python -m deepfake_detect.demo table runs/sample/held-out-videos.json data/sample/videos/metadata.json \\
                                         data/sample/split_dataset/split.csv
    python -m deepfake_detect.demo partial runs/sample/held-out-videos.json data/sample/partial/metadata.json

`held-out` prints the paths of the test split's videos, one per line, for stage 04 to score
(`make demo` scores only those: the others were trained on or chose the best epoch). `table`
reads stage 04's --json output, the sample's DFDC metadata (true labels) and stage 02's
split.csv (video -> split); prints one row per held-out video and a line per split scored:

    held-out test videos (never seen in training or model selection), scored by stage 04:
    video            truth  P(real)  verdict    right
    bfkzcnxyqa.mp4   FAKE     0.031  FAKE       yes
    ...
    test    12 videos: 12 right, 0 wrong, 0 uncertain or unscored   <- held out
    val     12 videos: ...   (chose the best epoch)
    train   36 videos: ...   (trained on)

`partial` reads the same --json output, which also holds the partly manipulated sample
(sample.py --partial), and their metadata.json; prints each video's P(fake) and verdict under the rules "mean",
"person_max" and "segment", its true fake periods and the segments found (partial_table).
"""

import argparse
import csv
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from deepfake_detect.inference.results import Segment
from deepfake_detect.inference.segments import describe_segment, format_seconds
from deepfake_detect.inference.verdicts import video_verdict
from deepfake_detect.metrics import temporal_iou

SPLIT_ROLES = {"test": "<- held out", "val": "(chose the best epoch)", "train": "(trained on)"}


def video_splits(split_csv):
    """{video name without extension: split} from stage 02's split.csv."""
    with open(split_csv, newline="", encoding="utf-8") as handle:
        return {row["video"]: row["split"] for row in csv.DictReader(handle)}


def held_out_videos(split_csv, videos_dir, split="test"):
    """Paths of the videos in `videos_dir` that stage 02 put in `split`, sorted by name."""
    chosen = {video for video, where in video_splits(split_csv).items() if where == split}
    return sorted(path for path in Path(videos_dir).iterdir() if path.is_file() and path.stem in chosen
                  and path.suffix.lower() != ".json")


def demo_rows(detections, labels, splits):
    """[{video, truth, split, p_real, verdict, right}] for every scored input of stage 04's JSON.

    `right` is "yes"/"no" for a REAL/FAKE verdict, "-" for UNCERTAIN or no verdict. Videos that
    stage 02 never placed (no face found) get split "-".
    """
    rows = []
    for record in detections["inputs"]:
        name = Path(record["input"]).name
        truth = labels.get(name)
        verdict = record["verdict"]
        right = "-" if verdict not in ("REAL", "FAKE") or truth is None else ("yes" if verdict == truth else "no")
        rows.append({"video": name, "truth": truth or "?", "split": splits.get(Path(name).stem, "-"),
                     "p_real": record["p_real"], "verdict": verdict or record["status"], "right": right})
    return rows


def demo_table(rows):
    """The closing text: the held-out videos one per line, then one summary line per split."""
    width = max([len("video")] + [len(row["video"]) for row in rows])
    lines = ["held-out test videos (never seen in training or model selection), scored by stage 04:",
             f"{'video':<{width}}  truth  P(real)  verdict    right"]
    for row in rows:
        if row["split"] == "test":
            score = "-" if row["p_real"] is None else f"{row['p_real']:.3f}"
            lines.append(f"{row['video']:<{width}}  {row['truth']:<5}  {score:>7}  {row['verdict']:<9}  {row['right']}")
    for split, role in SPLIT_ROLES.items():
        chosen = [row for row in rows if row["split"] == split]
        if chosen:
            counts = [sum(row["right"] == value for row in chosen) for value in ("yes", "no", "-")]
            lines.append(f"{split:<5}  {len(chosen):>3} videos: {counts[0]} right, {counts[1]} wrong, "
                         f"{counts[2]} uncertain or unscored   {role}")
    return "\n".join(lines)


PARTIAL_RULES = ("mean", "person_max", "segment")  # "confident" equals "mean" on 5-10-s clips (verdicts.py)


def truth_text(periods):
    """'person 2 fake 0:00.0-0:05.0', 'fake 0:05.0-0:10.0' or 'real' from metadata's fake_periods."""
    if not periods:
        return "real"
    return "; ".join((f"person {p[2]} " if len(p) > 2 else "") + f"fake {format_seconds(p[0])}-{format_seconds(p[1])}"
                     for p in periods)


def span_found(periods, segments):
    """'yes' when every true period has a segment (of its person, when named) overlapping it by
    IoU >= 0.5, else 'no' (a real video: 'yes'); ' (+N wrong)' for segments matching no period."""
    def matches(segment, period):
        return ((len(period) < 3 or segment["person"] == period[2])
                and temporal_iou((segment["start"], segment["end"]), period[:2]) >= 0.5)

    found = all(any(matches(s, p) for s in segments) for p in periods)
    wrong = sum(not any(matches(s, p) for p in periods) for s in segments)
    return ("yes" if found else "no") + (f" (+{wrong} wrong)" if wrong else "")


def partial_table(detections, metadata):
    """The closing text's second part: each partly manipulated video's P(fake) and verdict under the
    rules of PARTIAL_RULES, its true fake periods and the segments stage 04 found."""
    cfg = SimpleNamespace(THRESHOLD=detections["threshold"], UNCERTAIN_MARGIN=detections["uncertain_margin"])
    rows = []
    for record in detections["inputs"]:
        name = Path(record["input"]).name
        if name not in metadata:
            continue  # a held-out video of the training sample, in the other table
        periods = metadata[name].get("fake_periods") or []
        segments = [Segment(**s) for s in record["segments"]]
        cells = []
        for rule in PARTIAL_RULES:
            p_real = record["p_real_by_rule"].get(rule)
            verdict = video_verdict(p_real, segments, cfg, rule) or record["status"]
            cells.append("-" if p_real is None else f"{1 - p_real:.3f} {verdict}")
        found = "; ".join(describe_segment(s) for s in segments) or "no fake segment"
        rows.append((name, truth_text(periods), *cells, span_found(periods, record["segments"]), found))
    header = ("video", "truth", *(f"P(fake) {rule}" for rule in PARTIAL_RULES), "found", "segments found")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["partly manipulated videos (never trained on): P(fake) and verdict under each VIDEO_SCORE rule,",
             "and the fake segments found (found: each true span matched with IoU >= 0.5 by the right person;",
             "wrong: segments matching no true span):"]
    for row in [header, *rows]:
        lines.append("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)) + "  " + row[-1])
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    held_out = commands.add_parser("held-out", help="print the test split's video paths")
    held_out.add_argument("split_csv", type=Path, help="stage 02's split.csv")
    held_out.add_argument("videos_dir", type=Path, help="the sample's videos")
    table = commands.add_parser("table", help="print the closing table")
    table.add_argument("detect_json", type=Path, help="stage 04's --json output")
    table.add_argument("metadata", type=Path, help="the sample's metadata.json (true labels)")
    table.add_argument("split_csv", type=Path, help="stage 02's split.csv")
    partial = commands.add_parser("partial", help="print the table of the partly manipulated videos")
    partial.add_argument("detect_json", type=Path, help="stage 04's --json output, them included")
    partial.add_argument("metadata", type=Path, help="their metadata.json (fake_periods)")
    args = parser.parse_args(argv)
    if args.command == "partial":
        metadata = json.loads(args.metadata.read_text(encoding="utf-8"))
        print(partial_table(json.loads(args.detect_json.read_text(encoding="utf-8")), metadata))
        return 0
    if args.command == "held-out":
        print("\n".join(str(path) for path in held_out_videos(args.split_csv, args.videos_dir)))
        return 0
    detections = json.loads(args.detect_json.read_text(encoding="utf-8"))
    labels = {name: entry["label"] for name, entry in json.loads(args.metadata.read_text(encoding="utf-8")).items()}
    print(demo_table(demo_rows(detections, labels, video_splits(args.split_csv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
