"""From face scores to one score and a verdict per input (VIDEO_SCORE, THRESHOLD,
UNCERTAIN_MARGIN), and the sentences that say what a score means.
"""

import numpy as np

from deepfake_detect.inference.results import UNCERTAIN


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


def combine_face_scores(p_real, rule):
    """One P(real) for a video or image from its faces' P(real); None when there is no face.

    rule: "mean" (every face counts alike) or "confident" (confident_score).
    """
    if not len(p_real):
        return None
    if rule == "mean":
        return float(np.mean(p_real))
    if rule == "confident":
        return confident_score(p_real)
    raise ValueError(f"VIDEO_SCORE = {rule!r}: choose mean or confident")


def score_meaning(cfg):
    """One sentence saying what the scores mean, shown under every table and on the web page."""
    rule = ("mean of its face scores" if cfg.VIDEO_SCORE == "mean"
            else "DFDC winner's confident-faces rule over its face scores")
    return (f"P(real) = the model's probability that the faces are real (pristine); "
            f"P(fake) = 1 - P(real). An input's score is the {rule} (VIDEO_SCORE={cfg.VIDEO_SCORE}); "
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
