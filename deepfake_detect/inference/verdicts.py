"""From face scores to one score and a verdict per input (VIDEO_SCORE, THRESHOLD,
UNCERTAIN_MARGIN), and the sentences that say what a score means.

judge_faces is the one path from scored faces to an input's persons (tracks.py), fake segments
(segments.py), score and verdict; stage 04 (scoring.py) and stage 05 (evaluation/scores.py)
both call it, so a rule means the same everywhere.
"""

from dataclasses import dataclass, field

import numpy as np

from deepfake_detect.inference.results import UNCERTAIN, PersonScore
from deepfake_detect.inference.segments import find_segments, sample_interval
from deepfake_detect.inference.tracks import assign_persons


RULE_MEANINGS = {
    "mean": "mean of its face scores",
    "confident": "DFDC winner's confident-faces rule over its face scores",
    "person_max": "score of its most-fake person (each person: the mean of their faces)",
    "segment": "strongest fake segment of any person (FAKE when there is one; without one, its most-fake person)",
}


def confident_score(p_real, confident=0.8):
    """The DFDC winner's video score, in P(real) terms.

    Selim Seferbekov's `confident_strategy` (github.com/selimsef/dfdc_deepfake_challenge,
    kernel_utils.py) works on per-face P(fake) with t = 0.8:
        fakes = count(pred > t)
        if fakes > len(pred) // 2.5 and fakes > 11: mean(pred[pred > t])
        elif count(pred < 0.2) > 0.9 * len(pred):   mean(pred[pred < 0.2])
        else:                                       mean(pred)
    With P(real) = 1 - P(fake), "P(fake) > 0.8" is "P(real) < 0.2" and the means map over, so:
    more than 11 confidently fake faces making up over 40% of them decide alone; failing that,
    over 90% confidently real faces decide alone; otherwise the plain mean. He scored 32 frames
    per video; at one frame per second a 10-s clip has about 10 faces, too few for the fake
    branch (> 11), so on short clips only the confidently-real branch can differ from the mean.
    """
    p_real = np.asarray(p_real, dtype=np.float64)
    size = len(p_real)
    low = 1.0 - confident  # 0.2
    confidently_fake = np.count_nonzero(p_real < low)
    if confidently_fake > size // 2.5 and confidently_fake > 11:
        return float(np.mean(p_real[p_real < low]))
    if np.count_nonzero(p_real > confident) > 0.9 * size:
        return float(np.mean(p_real[p_real > confident]))
    return float(np.mean(p_real))


def combine_face_scores(p_real, rule, persons=None, segments=None):
    """One P(real) for a video or image from its faces' P(real); None when there is no face.

    rule: "mean" (every face counts alike), "confident" (confident_score), "person_max" (each
    person scored by the mean of their faces, the lowest P(real) of them: `persons` gives each
    face's person, None = one person) or "segment" (1 - the strongest of `segments`' P(fake);
    without a segment, as person_max).
    """
    if not len(p_real):
        return None
    if rule == "mean":
        return float(np.mean(p_real))
    if rule == "confident":
        return confident_score(p_real)
    if rule == "segment" and segments:
        return 1.0 - max(segment.p_fake for segment in segments)
    if rule in ("person_max", "segment"):
        persons = [1] * len(p_real) if persons is None else persons
        by_person = {}
        for person, value in zip(persons, p_real):
            by_person.setdefault(person, []).append(value)
        return float(min(np.mean(values) for values in by_person.values()))
    raise ValueError(f"VIDEO_SCORE = {rule!r}: choose mean, confident, person_max or segment")


def video_verdict(p_real, segments, cfg, rule=None):
    """The verdict of an input scored `p_real` by `rule` (default VIDEO_SCORE): under "segment" a
    video with a fake segment is FAKE, whatever the margin; otherwise verdict_of."""
    if (rule or cfg.VIDEO_SCORE) == "segment" and segments:
        return "FAKE"
    return verdict_of(p_real, cfg.THRESHOLD, cfg.UNCERTAIN_MARGIN)


@dataclass
class Judgement:
    """An input's faces judged: its score and verdict by one rule, its persons and fake segments."""

    p_real: float | None
    p_real_raw: float | None
    verdict: str | None
    persons: list = field(default_factory=list)   # PersonScore
    segments: list = field(default_factory=list)  # Segment
    by_rule: dict = field(default_factory=dict)   # {rule: P(real)} under every rule (RULE_MEANINGS), to compare


def judge_faces(faces, frame_indices, fps, cfg, rule=None):
    """Track `faces` (FaceScores with p_real set; their `person` is set here) into persons over
    `frame_indices` (every frame read), find each person's fake segments (timed by `fps`, None for
    an image) and score the input by `rule` (default VIDEO_SCORE). Returns a Judgement."""
    rule = rule or cfg.VIDEO_SCORE
    assign_persons(faces, frame_indices, cfg)
    interval = sample_interval(frame_indices, fps)
    segments = find_segments(faces, interval, fps, cfg)
    persons = [face.person for face in faces]
    by_rule = {name: combine_face_scores([face.p_real for face in faces], name, persons, segments)
               for name in RULE_MEANINGS}
    p_real = by_rule[rule]
    raw = [face.p_real_raw for face in faces]
    p_real_raw = None
    if faces and None not in raw:
        raw_segments = find_segments(faces, interval, fps, cfg, raw=True) if rule == "segment" else []
        p_real_raw = combine_face_scores(raw, rule, persons, raw_segments)
    return Judgement(p_real, p_real_raw, video_verdict(p_real, segments, cfg, rule),
                     person_scores(faces, fps, cfg), segments, by_rule)


def person_scores(faces, fps, cfg):
    """A PersonScore per person of `faces` (with `person` set), by person number."""
    by_person = {}
    for face in sorted(faces, key=lambda face: face.frame):
        by_person.setdefault(face.person, []).append(face)
    scores = []
    for person, track in sorted(by_person.items()):
        p_real = float(np.mean([face.p_real for face in track]))
        first, last = (track[0].frame / fps, track[-1].frame / fps) if fps else (None, None)
        scores.append(PersonScore(person, len(track), first, last, p_real,
                                  verdict_of(p_real, cfg.THRESHOLD, cfg.UNCERTAIN_MARGIN)))
    return scores


def score_meaning(cfg):
    """One sentence saying what the scores mean, shown under every table and on the web page."""
    return (f"P(real) = the model's probability that the faces are real (pristine); "
            f"P(fake) = 1 - P(real). An input's score is the {RULE_MEANINGS[cfg.VIDEO_SCORE]} "
            f"(VIDEO_SCORE={cfg.VIDEO_SCORE}); "
            f"verdict FAKE when P(real) < {cfg.THRESHOLD} (THRESHOLD)" + uncertain_meaning(cfg) + ".")


def uncertain_meaning(cfg):
    """The clause of score_meaning about the UNCERTAIN band; empty when the band is off."""
    if not cfg.UNCERTAIN_MARGIN:
        return ""
    low, high = cfg.THRESHOLD - cfg.UNCERTAIN_MARGIN, cfg.THRESHOLD + cfg.UNCERTAIN_MARGIN
    return (f", UNCERTAIN when {low:g} < P(real) < {high:g} (within UNCERTAIN_MARGIN={cfg.UNCERTAIN_MARGIN:g} "
            f"of it: too close to call)")


def verdict_of(p_real, threshold, margin=0.0):
    """"FAKE" when P(real) < threshold, else "REAL"; "UNCERTAIN" instead of either when P(real)
    lies strictly within `margin` of the threshold; None without a score."""
    if p_real is None:
        return None
    if margin and threshold - margin < p_real < threshold + margin:
        return UNCERTAIN
    return "FAKE" if p_real < threshold else "REAL"
