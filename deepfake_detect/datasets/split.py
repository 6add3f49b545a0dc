"""Stage 02's algorithm: face crops -> a balanced real/fake set -> a leak-free train/val/test split.

In the order stage 02 runs it: the labelled videos and their crops (`labelled_videos`,
`collect_crops`); the larger class down-sampled to the smaller (`balance_classes`); the split
by source group, so that a real video and the fakes made from it stay in one split
(`assign_splits`), or, when the dataset comes with official split lists (FaceForensics++'s
pair lists, Celeb-DF's test list), those splits with the rest split over the others and the
classes balanced within each split (`assign_official_splits`, `balance_per_split`); the split list and its checks (`split_rows`, `split_table`,
`describe_leaks`); then both output folders, checked first (`check_output_folders`), filled with
hard links or copies (`FilePlacer`) in hidden partial folders and renamed into place when
complete (`build_outputs`). Nothing here parses arguments or prints a summary: that is the
script's part, 02-prepare_fake_real_dataset.py.
"""

import os
import random
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from deepfake_detect import settings
from deepfake_detect.datasets.common import SPLITS
from deepfake_detect.datasets.discovery import LABELS, read_dataset, source_group  # noqa: F401 (source_group: re-exported)
from deepfake_detect.files import PARTIAL_MARK, completed_names, start_partial_folder, write_csv
from deepfake_detect.jobs.console import warn
from deepfake_detect.jobs.outcome import SKIPPED, Outcome

CROP_SUFFIX = ".png"
SPLIT_CSV = "split.csv"
SPLIT_CSV_COLUMNS = ("file", "split", "class", "video", "group")
# What each output folder holds when stage 02 made it; --replace deletes nothing else.
PREPARED_ENTRIES = {"real", "fake"}
SPLIT_ENTRIES = set(SPLITS) | {SPLIT_CSV, "settings-02.json"}


class StageError(Exception):
    """The stage cannot run; the message says why and what to do."""


# ------------------------------------------------------------------ the crops

def labelled_videos(cfg):
    """VIDEOS_DIR's dataset.Listing with its REAL/FAKE videos only, its problems warned. Raises
    StageError if none."""
    listing = read_dataset(cfg)
    for problem in listing.problems:
        warn(problem)
    listing.videos = [v for v in listing.videos if v.label in LABELS]
    if listing.videos:
        return listing
    if listing.layout not in ("DFDC (metadata.json)", "plain folder (no labels)"):
        why = f"{listing.layout} in {cfg.VIDEOS_DIR} gives none (see the lines above)"
    elif not Path(cfg.METADATA_FILE).is_file():
        why = f"{cfg.METADATA_FILE} is missing"
    else:
        why = f"{cfg.METADATA_FILE} labels no video of {cfg.VIDEOS_DIR} as REAL or FAKE"
    raise StageError(f"no labelled videos: {why}; stage 02 needs DFDC metadata.json labels (see METADATA_FILE), "
                     "a dataset as downloaded (FaceForensics++, Celeb-DF, DFDC test or preview: docs/datasets-*.md) "
                     "or real/ and fake/ subfolders in VIDEOS_DIR")


@dataclass(frozen=True)
class Crop:
    """One face crop. `group` is its source group: the real video it comes from or was faked from."""

    path: Path
    label: str   # "REAL" or "FAKE"
    video: str
    group: str
    split: str | None = None  # the official split of its video, when a list gives one

    @property
    def name(self):
        return self.path.name

    @property
    def class_folder(self):
        return self.label.lower()


def list_crops(folder):
    """The crop files of one video folder, by name; hidden and empty files left out."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries
                      if e.name.lower().endswith(CROP_SUFFIX) and not e.name.startswith(".")
                      and e.is_file() and e.stat().st_size > 0)


def collect_crops(videos, faces_dir):
    """The crops of every labelled video. Returns (crops, outcomes): one Outcome per video and
    per crop folder left out, saying why."""
    crops, outcomes, seen_names = [], [], set()
    folders = completed_names(faces_dir)
    for video in tqdm(videos, desc="stage 02 crops", unit="video", dynamic_ncols=True):
        if video.name not in folders:
            outcomes.append(Outcome(video.name, SKIPPED, f"no crops folder in {faces_dir} "
                                                         "(did stage 01a/01b run on it?)"))
            continue
        found = list_crops(Path(faces_dir) / video.name)
        if not found:
            outcomes.append(Outcome(video.name, SKIPPED, f"no {CROP_SUFFIX} face crops in its folder "
                                                         "(no face was found in its frames)"))
            continue
        kept = [path for path in found if path.name not in seen_names]
        if len(kept) < len(found):  # outputs are flat folders, so a crop name can appear once only
            warn(f"{video.name}: {len(found) - len(kept)} crop names already used by another video, skipped")
        seen_names.update(path.name for path in kept)
        group = source_group(video)
        crops += [Crop(path, video.label, video.name, group, video.split) for path in kept]
        outcomes.append(Outcome(video.name, counts={"crops": len(kept)}))
    labelled = {video.name for video in videos}
    for name in sorted(folders - labelled):
        outcomes.append(Outcome(name, SKIPPED, "crops but no REAL/FAKE label in VIDEOS_DIR "
                                               "(is the video still there and in metadata.json?)"))
    return crops, outcomes


def missing_label(crops):
    """The first of REAL, FAKE that no crop has, or None: a training set needs both classes."""
    found = Counter(c.label for c in crops)
    return next((label for label in LABELS if not found[label]), None)


# ------------------------------------------------------------------ balancing and the split

def balance_classes(crops, seed):
    """Down-sample the larger class at random to the size of the smaller one (crops, not videos).

    Returns (kept crops in their input order, a sentence saying what was done).
    """
    by_label = {label: [c for c in crops if c.label == label] for label in LABELS}
    real, fake = len(by_label["REAL"]), len(by_label["FAKE"])
    if real == fake:
        return list(crops), f"the classes are equal already: {real:,} crops each"
    larger, smaller = ("FAKE", "REAL") if fake > real else ("REAL", "FAKE")
    target = len(by_label[smaller])
    chosen = set(random.Random(seed).sample(by_label[larger], target))
    kept = [c for c in crops if c.label == smaller or c in chosen]
    message = f"{larger} down-sampled at random from {len(by_label[larger]):,} to {target:,} crops"
    if larger == "REAL":
        message = f"fewer FAKE crops than REAL: {message} instead"
    return kept, message


def split_by_file(crops, ratios, seed):
    """{crop name: split}: the original's per-file split, the rule of split-folders 0.6.1's ratio():
    per class, names sorted, shuffled by random.seed(seed), cut at int(ratio * count)."""
    assignment = {}
    for label in LABELS:
        names = sorted(c.name for c in crops if c.label == label)
        random.Random(seed).shuffle(names)
        train_end = int(ratios[0] * len(names))
        val_end = train_end + int(ratios[1] * len(names))
        for index, name in enumerate(names):
            assignment[name] = SPLITS[0] if index < train_end else SPLITS[1] if index < val_end else SPLITS[2]
    return assignment


def split_by_group(crops, ratios, seed):
    """{crop name: split} with every source group whole in one split. Returns (assignment, warnings).

    split-folders cannot do this: its ratio() splits each class folder on its own, so a fake in
    fake/ and its original in real/ are placed independently, and its `group=` callable only groups
    files within one class folder. Hence this: groups are shuffled by `seed`; first each split
    (with a ratio above 0) is given one group holding real crops and one holding fake crops, then
    every other group goes to the split whose real and fake crop counts are furthest below their
    targets (ratio x class total), so the ratios hold per class in crops, not just in groups.
    """
    counts = defaultdict(Counter)  # group -> {label: crops}
    for crop in crops:
        counts[crop.group][crop.label] += 1
    totals = Counter(crop.label for crop in crops)
    splits = [split for split, ratio in zip(SPLITS, ratios) if ratio > 0]
    target = {(split, label): ratio * totals[label] for split, ratio in zip(SPLITS, ratios) for label in LABELS}
    groups = sorted(counts)
    random.Random(seed).shuffle(groups)
    have = Counter()
    group_split = {}

    def place(group, split):
        group_split[group] = split
        for label, count in counts[group].items():
            have[split, label] += count

    def cost_increase(group, split):
        """Growth of the squared shortfall/excess, relative to each class's total."""
        return sum(count * (2 * (have[split, label] - target[split, label]) + count) / totals[label] ** 2
                   for label, count in counts[group].items())

    for split in splits:
        for label in LABELS:
            if not have[split, label]:
                group = next((g for g in groups if g not in group_split and counts[g][label]), None)
                if group is not None:
                    place(group, split)
    for group in groups:
        if group not in group_split:
            place(group, min(splits, key=lambda split: cost_increase(group, split)))
    warnings = []
    for split in splits:
        for label in LABELS:
            if not have[split, label]:
                holding = sum(1 for g in counts if counts[g][label])
                warnings.append(f"the {split} split has no {label} crops: only {holding} source "
                                f"group(s) have {label} crops; add videos or change SPLIT_RATIOS")
    return {crop.name: group_split[crop.group] for crop in crops}, warnings


def assign_splits(crops, cfg, ratios=None):
    """{crop name: split} by cfg.SPLIT_MODE, at `ratios` (default SPLIT_RATIOS). Returns (assignment, warnings)."""
    ratios = ratios or cfg.SPLIT_RATIOS
    if cfg.SPLIT_MODE == "file":
        return split_by_file(crops, ratios, cfg.SPLIT_SEED), []
    return split_by_group(crops, ratios, cfg.SPLIT_SEED)


# ------------------------------------------------------------------ official splits

def has_official_split(crops):
    """Whether an official list (FF++'s pair lists, Celeb-DF's test list, ...) names any crop's video."""
    return any(crop.split for crop in crops)


def open_ratios(ratios, official):
    """SPLIT_RATIOS with the official splits' shares set to 0 and the others scaled to sum to 1;
    None when the lists give every split with a share."""
    shares = [0 if split in official else ratio for split, ratio in zip(SPLITS, ratios)]
    return tuple(share / sum(shares) for share in shares) if sum(shares) else None


def _some_videos(crops):
    """'12 videos (e.g. a, b, c)' of the crops' videos."""
    names = sorted({c.video for c in crops})
    return f"{len(names):,} videos (e.g. {', '.join(names[:3])})"


def assign_official_splits(crops, official, cfg):
    """Honour the official splits: every crop of a listed video goes to its split; the others are
    split by SPLIT_MODE over the splits no list gives, at SPLIT_RATIOS scaled to those splits.
    `official`: the splits the lists give ({split: source}). An unlisted video whose source group
    has a listed video is left out, so that no group spans two splits and an official test set stays
    unseen. Returns (kept crops, {crop name: split}, warnings)."""
    listed = [c for c in crops if c.split]
    listed_groups = {c.group for c in listed}
    rest = [c for c in crops if not c.split and c.group not in listed_groups]
    shared = [c for c in crops if not c.split and c.group in listed_groups]
    assignment, warnings = {c.name: c.split for c in listed}, []
    if shared:
        warnings.append(f"{_some_videos(shared)} in no split list share a source group with listed videos: "
                        "left out, so that no source group spans two splits")
    ratios = open_ratios(cfg.SPLIT_RATIOS, official)
    if rest and ratios is None:
        warnings.append(f"{_some_videos(rest)} are in no split list: left out, as the lists give every split")
        rest = []
    elif rest:
        rest_assignment, rest_warnings = assign_splits(rest, cfg, ratios)
        assignment.update(rest_assignment)
        warnings += rest_warnings
    return listed + rest, assignment, warnings


def balance_per_split(crops, assignment, seed):
    """balance_classes within each split (an official split fixes which videos are where, so the
    classes cannot be balanced before splitting). A split missing a class is left as it is.
    Returns (kept crops, a sentence per split, warnings)."""
    kept, notes, warnings = [], [], []
    for split in SPLITS:
        in_split = [c for c in crops if assignment[c.name] == split]
        missing = missing_label(in_split)
        if in_split and missing:
            warnings.append(f"the {split} split has no {missing} crops: left unbalanced")
            kept += in_split
        elif in_split:
            chosen, note = balance_classes(in_split, seed)
            kept += chosen
            notes.append(f"{split}: {note}")
    return kept, "; ".join(notes) or "nothing to balance", warnings


def describe_official_split(official, rows):
    """The summary's line on the official splits: which lists gave which split, and how the rest went."""
    given = ", ".join(f"{split} from {source}" for split, source in official.items())
    videos = {split: len({r["video"] for r in rows if r["split"] == split}) for split in SPLITS}
    others = [split for split in SPLITS if split not in official and videos[split]]
    rest = (f"; {' and '.join(others)} ({sum(videos[s] for s in others):,} videos) split by SPLIT_RATIOS "
            "from the unlisted videos, source groups kept together" if others else "")
    return (f"official split: {given} ({sum(videos[s] for s in official):,} videos, "
            f"each listed video in its split){rest}")


# ------------------------------------------------------------------ the split list and its checks

def split_rows(crops, assignment):
    """The split CSV's rows, sorted by split, class and file name."""
    order = {split: index for index, split in enumerate(SPLITS)}
    rows = [{"file": f"{assignment[c.name]}/{c.class_folder}/{c.name}", "split": assignment[c.name],
             "class": c.class_folder, "video": c.video, "group": c.group} for c in crops]
    return sorted(rows, key=lambda row: (order[row["split"]], row["class"] != "real", row["file"]))


def split_table(rows):
    """The table of crops, videos and groups per class per split, as text."""
    header = ("split", "real crops", "real videos", "fake crops", "fake videos", "groups")
    lines = [f"{header[0]:<6}" + "".join(f"{h:>13}" for h in header[1:])]
    for split in SPLITS + ("total",):
        chosen = [r for r in rows if split in (r["split"], "total")]
        cells = []
        for folder in ("real", "fake"):
            of_class = [r for r in chosen if r["class"] == folder]
            cells += [len(of_class), len({r["video"] for r in of_class})]
        cells.append(len({r["group"] for r in chosen}))
        lines.append(f"{split:<6}" + "".join(f"{cell:>13,}" for cell in cells))
    return "\n".join(lines)


def groups_spanning_splits(rows):
    """How many source groups have crops in more than one split (0 means no leakage)."""
    splits_of = defaultdict(set)
    for row in rows:
        splits_of[row["group"]].add(row["split"])
    return sum(1 for found in splits_of.values() if len(found) > 1)


def describe_leaks(rows, split_mode):
    """The summary's leak check line: how many source groups span two or more splits."""
    leaking = groups_spanning_splits(rows)
    note = f"leak check: {leaking:,} of {len({r['group'] for r in rows}):,} source groups span two or more splits"
    if split_mode == "file":
        note += " (SPLIT_MODE = \"file\": test scores are inflated)"
    return note


# ------------------------------------------------------------------ the output folders

def check_output_folders(cfg, replace):
    """Raise StageError when an output folder would overlap the crops or each other, or is not
    empty without --replace, or holds files stage 02 did not make."""
    faces = Path(cfg.FACES_DIR).resolve()
    outputs = {"PREPARED_DIR": (Path(cfg.PREPARED_DIR), PREPARED_ENTRIES),
               "SPLIT_DIR": (Path(cfg.SPLIT_DIR), SPLIT_ENTRIES)}
    resolved = {name: folder.resolve() for name, (folder, _) in outputs.items()}
    for name, folder in resolved.items():
        if folder == faces or folder in faces.parents or faces in folder.parents:
            raise StageError(f"{name} {folder} overlaps FACES_DIR {faces}: choose separate folders, "
                             "stage 02 must never write among the crops it reads")
    prepared, split = resolved["PREPARED_DIR"], resolved["SPLIT_DIR"]
    if prepared == split or prepared in split.parents or split in prepared.parents:
        raise StageError(f"PREPARED_DIR {prepared} and SPLIT_DIR {split} overlap: choose separate folders")
    for name, (folder, expected) in outputs.items():
        if folder.exists() and not folder.is_dir():
            raise StageError(f"{name} {folder} is a file, not a folder: move it away or choose another path")
        entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        if not entries:
            continue
        if not replace:
            raise StageError(f"{name} {folder} is not empty: pass --replace to rebuild it")
        foreign = [entry for entry in entries if entry not in expected and not entry.startswith(".")]
        if foreign:
            raise StageError(f"{name} {folder} holds {foreign[0]!r}, which stage 02 did not make: "
                             "move it away yourself or choose another folder")


class FilePlacer:
    """Puts a crop at a new path as a hard link, or as a copy once the filesystem refuses links
    (then every later file is copied too, rather than trying and failing a million times)."""

    def __init__(self, use_links=True):
        self.use_links = use_links
        self.links = 0
        self.copies = 0

    def place(self, source, target):
        if self.use_links:
            try:
                os.link(source, target)
                self.links += 1
                return
            except (FileExistsError, FileNotFoundError):
                raise
            except OSError as error:  # another drive, or links unsupported / not permitted
                self.use_links = False
                warn(f"hard links refused ({error.strerror or error}): copying the crops instead")
        shutil.copyfile(source, target)
        self.copies += 1

    def describe(self):
        """The files placed so far, as the summary says it: "240 hard links", or "none"."""
        made = ((self.links, "hard links"), (self.copies, "copies"))
        return ", ".join(f"{count:,} {kind}" for count, kind in made if count) or "none"


def write_files(placements, placer, desc):
    """Place every (source, target) pair, creating target folders as needed."""
    made = set()
    for source, target in tqdm(placements, desc=desc, unit="file", dynamic_ncols=True, mininterval=1):
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        placer.place(source, target)


def remove_stale_builds(final_dir):
    """Delete the partial folders of `final_dir` that a killed run left; return how many."""
    final_dir = Path(final_dir)
    if not final_dir.parent.is_dir():
        return 0
    stale = list(final_dir.parent.glob(f".{final_dir.name}{PARTIAL_MARK}*"))
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def install_folder(partial, final_dir):
    """Rename the finished `partial` to `final_dir`, deleting what was there (already allowed
    by check_output_folders). The old folder is first renamed aside, so that at every moment
    `final_dir` is either the old complete output or the new one."""
    final_dir = Path(final_dir)
    aside = None
    if final_dir.exists():
        aside = final_dir.with_name(f".{final_dir.name}{PARTIAL_MARK}old-{os.getpid()}")
        os.replace(final_dir, aside)
    os.replace(partial, final_dir)
    if aside is not None:
        shutil.rmtree(aside)


def build_outputs(crops, assignment, cfg, placer):
    """Write the balanced set and the split into partial folders, then rename both into place.
    Returns the split CSV rows."""
    for final_dir in (cfg.PREPARED_DIR, cfg.SPLIT_DIR):
        if remove_stale_builds(final_dir):
            print(f"cleared the unfinished {Path(final_dir).name} of an interrupted earlier run")
    prepared = start_partial_folder(cfg.PREPARED_DIR)
    split_dir = start_partial_folder(cfg.SPLIT_DIR)
    try:
        for folder in PREPARED_ENTRIES:
            (prepared / folder).mkdir()
        for split in SPLITS:  # every folder exists, as split-folders makes them, even if empty
            for folder in PREPARED_ENTRIES:
                (split_dir / split / folder).mkdir(parents=True)
        write_files([(c.path, prepared / c.class_folder / c.name) for c in crops], placer,
                    desc="stage 02 balanced set")
        rows = split_rows(crops, assignment)
        by_name = {c.name: c for c in crops}
        write_files([(by_name[Path(r["file"]).name].path, split_dir / r["file"]) for r in rows], placer,
                    desc="stage 02 split")
        write_csv(split_dir / SPLIT_CSV, rows, SPLIT_CSV_COLUMNS)
        settings.save_settings(cfg, split_dir, "02")
        install_folder(prepared, cfg.PREPARED_DIR)
        install_folder(split_dir, cfg.SPLIT_DIR)  # last: a complete SPLIT_DIR means a complete run
    except BaseException:
        # Ctrl-C included: a half-built output must not survive to look like a finished one.
        shutil.rmtree(prepared, ignore_errors=True)
        shutil.rmtree(split_dir, ignore_errors=True)
        raise
    return rows


def decide_splits(crops, split_sources, cfg):
    """Stage 02's decision: the dataset's official split when these crops' videos have one
    (split_sources; then real and fake are balanced within each split), else real and fake
    balanced first, then split by SPLIT_RATIOS and SPLIT_MODE.
    Returns (crops, assignment, balance note, warnings, the official split used or {})."""
    official = split_sources if has_official_split(crops) else {}
    if official:
        crops, assignment, warnings = assign_official_splits(crops, official, cfg)
        crops, balance_note, balance_warnings = balance_per_split(crops, assignment, cfg.SPLIT_SEED)
        warnings += balance_warnings
    else:
        crops, balance_note = balance_classes(crops, cfg.SPLIT_SEED)
        assignment, warnings = assign_splits(crops, cfg)
    return crops, assignment, balance_note, warnings, official
