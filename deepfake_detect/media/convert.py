"""Stage 00's job: one video's kept frames written to FRAMES_DIR/<video>/ (run by the local pool or by Ray workers, imported by module name)."""

from deepfake_detect.files import discard_partial_folder, finish_partial_folder, start_partial_folder, write_png
from deepfake_detect.jobs.outcome import ALREADY_DONE, SKIPPED, Outcome
from deepfake_detect.media.budget import VideoError
from deepfake_detect.media.frames import frame_file_name, iter_kept_frames

# A header that promises many more frames than could be decoded means a truncated file.
TRUNCATION_WARNING_RATIO = 0.9


def convert_video(video, cfg):
    """Write the kept frames of one video to FRAMES_DIR/<video>/; return its Outcome."""
    final_dir = cfg.FRAMES_DIR / video.name
    if final_dir.is_dir():
        return Outcome(video.name, ALREADY_DONE)
    partial = start_partial_folder(final_dir)
    stats = {}
    try:
        kept = 0
        for _, frame in iter_kept_frames(video.path, cfg.RESIZE_RULES, cfg.FRAMES_PER_SECOND, stats):
            write_png(partial / frame_file_name(video.name, kept), frame)
            kept += 1
    except VideoError as error:
        discard_partial_folder(partial)
        return Outcome(video.name, SKIPPED, str(error))
    finish_partial_folder(partial, final_dir)
    outcome = Outcome(video.name, counts={"frames": kept})
    announced, decoded = stats.get("announced", 0), stats.get("decoded", 0)
    if announced and decoded < announced * TRUNCATION_WARNING_RATIO:
        outcome.reason = f"truncated? decoded {decoded} of the {announced} frames its header announces"
    return outcome

