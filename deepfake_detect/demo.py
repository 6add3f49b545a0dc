"""The closing table of `make demo`: stage 04's verdicts on the sample videos, each marked with
the split stage 02 put it in, so that the videos held out of training (test) stand apart.

    python -m deepfake_detect.demo runs/sample/detect.json data/sample/videos/metadata.json \\
                                   data/sample/split_dataset/split.csv

Reads stage 04's --json output, the sample's DFDC metadata (true labels) and stage 02's
split.csv (video -> split); prints one row per held-out video and a line per split:

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
    parser.add_argument("detect_json", type=Path, help="stage 04's --json output")
    parser.add_argument("metadata", type=Path, help="the sample's metadata.json (true labels)")
    parser.add_argument("split_csv", type=Path, help="stage 02's split.csv")
    args = parser.parse_args(argv)
    detections = json.loads(args.detect_json.read_text(encoding="utf-8"))
    labels = {name: entry["label"] for name, entry in json.loads(args.metadata.read_text(encoding="utf-8")).items()}
    print(demo_table(demo_rows(detections, labels, video_splits(args.split_csv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
