"""The closing table of `make demo`: stage 04's verdicts on the sample videos, each marked with
the split stage 02 put it in, so that the videos held out of training (test) stand apart.

    python -m deepfake_detect.demo held-out data/sample/split_dataset/split.csv data/sample/videos
    python -m deepfake_detect.demo table runs/sample/held-out-videos.json data/sample/videos/metadata.json \\
                                         data/sample/split_dataset/split.csv

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
"""

import argparse
import csv
import json
import sys
from pathlib import Path

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
    args = parser.parse_args(argv)
    if args.command == "held-out":
        print("\n".join(str(path) for path in held_out_videos(args.split_csv, args.videos_dir)))
        return 0
    detections = json.loads(args.detect_json.read_text(encoding="utf-8"))
    labels = {name: entry["label"] for name, entry in json.loads(args.metadata.read_text(encoding="utf-8")).items()}
    print(demo_table(demo_rows(detections, labels, video_splits(args.split_csv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
