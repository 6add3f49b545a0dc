"""DeeperForensics-1.0's seven perturbations at levels 1-5, for stage 05's robustness sweep.

Where they are applied is where they happen in the wild: the six frame types change each frame
stage 00 extracts, before face detection (`Perturbation.apply`); video compression re-encodes
the whole video before stage 00 reads it (`Perturbation.reencode`). Level 0 is the clean input,
returned unchanged, so a level-0 sweep point is the ordinary evaluation.

Every number comes from DeeperForensics-1.0's released perturbation code (Jiang et al., CVPR 2020;
github.com/EndlessSora/DeeperForensics-1.0, `perturbation/add_distortion_to_video.py`,
`get_distortion_parameter`, and the functions in `perturbation/distortions.py`):

| kind       | DF-1.0 | parameter, levels 1..5        | what it does (as DF-1.0's function)          |
|------------|--------|-------------------------------|----------------------------------------------|
| saturation | CS     | 0.4, 0.3, 0.2, 0.1, 0.0       | Cb, Cr scaled by it about neutral grey       |
| contrast   | CC     | 0.85, 0.725, 0.6, 0.475, 0.35 | every pixel value multiplied by it           |
| block      | BW     | 16, 32, 48, 64, 80            | that many x (short side // 256) grey 8x8     |
|            |        |                               | blocks (value 128) at random places          |
| noise      | GNC    | 0.001, 0.002, 0.005, 0.01,    | white Gaussian noise of that variance on Y,  |
|            |        | 0.05                          | Cb, Cr scaled to [0, 1] (studio swing)       |
| blur       | GB     | 7, 9, 13, 17, 21              | Gaussian blur, k x k kernel, sigma k / 6     |
| jpeg       | JPEG   | 2, 3, 4, 5, 6                 | down-scaled by it and back up (bilinear):    |
|            |        |                               | how DF-1.0's code makes "JPEG compression"   |
| video      | VC     | CRF 30, 32, 35, 38, 40        | H.264 re-encode (libx264, default preset)    |

Differences from DF-1.0's code, each so a sweep is reproducible and degrades steadily:
values are rounded, not truncated, to uint8 (truncation darkens every image by half a grey level
on average); random draws come from a NumPy generator seeded by (seed, kind, video, frame index)
through zlib.crc32, not from the global `random` state, and do not depend on the level, so level 4's
noise is level 3's scaled up and level 4's blocks include level 3's; frames shorter than 256 px
on their short side still get one unit of blocks (DF-1.0's rule gives them none). The
re-encode needs ffmpeg with libx264; `imageio-ffmpeg` ships one (IMAGEIO_FFMPEG_EXE overrides it).
"""

import math
import os
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from deepfake_detect.media.budget import VideoError

PERTURBATION_TYPES = ("saturation", "contrast", "block", "noise", "blur", "jpeg", "video")
FRAME_TYPES = PERTURBATION_TYPES[:6]  # applied to each extracted frame, before face detection
VIDEO_TYPES = ("video",)              # applied to the video file, before frame extraction
SEVERITY_LEVELS = (1, 2, 3, 4, 5)

# DeeperForensics-1.0's get_distortion_parameter(), level 1..5 (see the module docstring).
PARAMETERS = {
    "saturation": (0.4, 0.3, 0.2, 0.1, 0.0),
    "contrast": (0.85, 0.725, 0.6, 0.475, 0.35),
    "block": (16, 32, 48, 64, 80),
    "noise": (0.001, 0.002, 0.005, 0.01, 0.05),
    "blur": (7, 9, 13, 17, 21),
    "jpeg": (2, 3, 4, 5, 6),
    "video": (30, 32, 35, 38, 40),
}

# For plots and reports.
TYPE_NAMES = {
    "saturation": "colour saturation",
    "contrast": "colour contrast",
    "block": "local block-wise",
    "noise": "white Gaussian noise",
    "blur": "Gaussian blur",
    "jpeg": "JPEG compression (down/up-scale)",
    "video": "video compression (H.264 CRF)",
}

BLOCK_SIZE = 8       # DF-1.0's block_wise(): 8x8 blocks of grey 128
BLOCK_GREY = 128
BLOCK_UNIT_PIXELS = 256  # DF-1.0: the block count is multiplied by (short side // 256)

# BT.601 luma weights in BGR order, as OpenCV's BGR<->YCrCb conversion (which DF-1.0 uses).
LUMA_WEIGHTS_BGR = np.array([0.114, 0.587, 0.299], np.float32)
# Noise in (Y, Cr, Cb) -> change in (B, G, R): OpenCV's YCrCb -> BGR matrix.
YCRCB_TO_BGR = np.array([[1.0, 0.0, 1.773],     # B = Y + 1.773 Cb
                         [1.0, -0.714, -0.344],  # G = Y - 0.714 Cr - 0.344 Cb
                         [1.0, 1.403, 0.0]],     # R = Y + 1.403 Cr
                        np.float32)
# DF-1.0 adds the noise to Y scaled to [16, 235] / 255 and Cb, Cr to [16, 240] / 255, so in
# 0-255 full-range units its standard deviation is 255 * sqrt(variance) * 255 / 219 (or / 224).
NOISE_SCALE_YCRCB = np.array([255 * 255 / 219, 255 * 255 / 224, 255 * 255 / 224], np.float32)

FFMPEG_ENV = "IMAGEIO_FFMPEG_EXE"
VIDEO_ENCODER = "libx264"
INSTALL_HINT = (f"pip install imageio-ffmpeg (it ships an ffmpeg with {VIDEO_ENCODER}), "
                f"or set {FFMPEG_ENV} to an ffmpeg built with {VIDEO_ENCODER}")


def check_sweep(types=None, levels=None):
    """(types, levels) of a robustness sweep as tuples: names from PERTURBATION_TYPES (None: all
    seven) and levels 0-5 (None: 1-5). Raises ValueError naming the bad type or level."""
    types = PERTURBATION_TYPES if types is None else tuple(types)
    levels = SEVERITY_LEVELS if levels is None else tuple(levels)
    unknown = [kind for kind in types if kind not in PERTURBATION_TYPES]
    if unknown:
        raise ValueError(f"unknown perturbation type {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(PERTURBATION_TYPES)}")
    bad = [level for level in levels if level not in (0, *SEVERITY_LEVELS)]
    if bad:
        raise ValueError(f"perturbation levels are 1-5, got {', '.join(map(repr, bad))}")
    return types, levels


class CodecError(RuntimeError):
    """The H.264 re-encode cannot run here; the message names what to install."""


@dataclass(frozen=True)
class Perturbation:
    """One point of the sweep: a DeeperForensics-1.0 perturbation `kind` at `level` 0-5.

    Deterministic: the same (kind, level, seed) gives the same output for the same video name
    and frame index, in any process and any order.
    """

    kind: str
    level: int
    seed: int = 0

    def __post_init__(self):
        if self.kind not in PERTURBATION_TYPES:
            raise ValueError(f"unknown perturbation type {self.kind!r}; "
                             f"choose from {', '.join(PERTURBATION_TYPES)}")
        if isinstance(self.level, bool) or not isinstance(self.level, int) or not 0 <= self.level <= 5:
            raise ValueError(f"perturbation level must be an integer 0-5, got {self.level!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"perturbation seed must be an integer, got {self.seed!r}")

    @property
    def parameter(self):
        """DeeperForensics-1.0's parameter for this level (see PARAMETERS); None at level 0."""
        return PARAMETERS[self.kind][self.level - 1] if self.level else None

    @property
    def cache_tag(self):
        """Folder-safe name of this perturbation for caches, e.g. "noise-3-s0"; None at level 0."""
        return f"{self.kind}-{self.level}-s{self.seed}" if self.level else None

    @property
    def applies_to_video(self):
        """True when this perturbs the video file (reencode), False when it perturbs frames (apply)."""
        return self.kind in VIDEO_TYPES

    def apply(self, frame_bgr, frame_index, video_name):
        """The perturbed copy of one frame (H, W, 3) BGR uint8; the frame itself at level 0.

        `frame_index` (the frame's index in its video, as frames.iter_kept_frames yields it) and
        `video_name` seed the random types (block, noise), so each frame gets its own draw and a
        rerun gets the same one.
        """
        if self.applies_to_video:
            raise ValueError(f"{self.kind} perturbs the video file: use reencode(), not apply()")
        if self.level == 0:
            return frame_bgr
        frame = np.asarray(frame_bgr)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        rng = np.random.default_rng(self.rng_seed(frame_index, video_name))
        return FRAME_FUNCTIONS[self.kind](frame, self.parameter, rng)

    def rng_seed(self, frame_index, video_name):
        """A stable 32-bit seed for (seed, kind, video, frame index); the same in every process."""
        return zlib.crc32(f"{self.seed}/{self.kind}/{video_name}/{int(frame_index)}".encode("utf-8"))

    def reencode(self, src_path, dst_path):
        """Write the perturbed video to `dst_path`: H.264 at this level's CRF; a copy at level 0.

        Written under a temporary name and renamed, so `dst_path` exists only once complete.
        Raises CodecError when no usable ffmpeg/libx264 is found, VideoError when ffmpeg cannot
        read `src_path` (the message is ffmpeg's last line).
        """
        if not self.applies_to_video:
            raise ValueError(f"{self.kind} perturbs frames: use apply(), not reencode()")
        src_path, dst_path = Path(src_path), Path(dst_path)
        if not src_path.is_file():
            raise VideoError(f"file not found: {src_path}")
        tmp_path = dst_path.with_name(f".{dst_path.stem}.tmp-{os.getpid()}{dst_path.suffix}")
        try:
            if self.level == 0:
                shutil.copyfile(src_path, tmp_path)
            else:
                encode_h264(src_path, tmp_path, crf=self.parameter)
            os.replace(tmp_path, dst_path)
        finally:
            tmp_path.unlink(missing_ok=True)
        return dst_path


def change_saturation(frame, factor, rng=None):
    """DF-1.0 CS: scale Cb and Cr about neutral by `factor` (0: grey), keeping luma.

    YCbCr is linear in BGR, so this is pixel' = Y + factor * (pixel - Y) with BT.601 luma Y.
    """
    image = frame.astype(np.float32)
    luma = image @ LUMA_WEIGHTS_BGR
    image = luma[..., None] + factor * (image - luma[..., None])
    return to_uint8(image)


def change_contrast(frame, factor, rng=None):
    """DF-1.0 CC: every value multiplied by `factor` (< 1: flatter and darker)."""
    return to_uint8(frame.astype(np.float32) * factor)


def add_blocks(frame, count_per_unit, rng):
    """DF-1.0 BW: `count_per_unit` x (short side // 256, at least 1) grey 8x8 blocks at random places.

    Positions are drawn for the largest level first and the first ones used, so a higher level's
    blocks include a lower level's.
    """
    height, width = frame.shape[:2]
    if height <= BLOCK_SIZE or width <= BLOCK_SIZE:
        return frame.copy()
    units = max(1, min(height, width) // BLOCK_UNIT_PIXELS)
    most = units * max(PARAMETERS["block"])
    # DF-1.0's random.randint(0, side - 1 - 8) includes both ends.
    tops = rng.integers(0, height - BLOCK_SIZE, size=most)
    lefts = rng.integers(0, width - BLOCK_SIZE, size=most)
    out = frame.copy()
    for top, left in zip(tops[:units * count_per_unit], lefts[:units * count_per_unit]):
        out[top:top + BLOCK_SIZE, left:left + BLOCK_SIZE] = BLOCK_GREY
    return out


def add_noise(frame, variance, rng):
    """DF-1.0 GNC: white Gaussian noise of `variance` in Y, Cb and Cr, each scaled to [0, 1]."""
    noise_ycrcb = rng.standard_normal(frame.shape, dtype=np.float32)
    noise_ycrcb *= NOISE_SCALE_YCRCB * np.float32(math.sqrt(variance))
    return to_uint8(frame.astype(np.float32) + noise_ycrcb @ YCRCB_TO_BGR.T)


def blur(frame, kernel, rng=None):
    """DF-1.0 GB: Gaussian blur with a kernel x kernel window and sigma kernel / 6."""
    return cv2.GaussianBlur(frame, (kernel, kernel), kernel / 6)


def rescale(frame, factor, rng=None):
    """DF-1.0 "JPEG": resize to 1/factor of the size and back up, bilinear both ways."""
    height, width = frame.shape[:2]
    small = cv2.resize(frame, (max(1, width // factor), max(1, height // factor)))
    return cv2.resize(small, (width, height))


FRAME_FUNCTIONS = {
    "saturation": change_saturation,
    "contrast": change_contrast,
    "block": add_blocks,
    "noise": add_noise,
    "blur": blur,
    "jpeg": rescale,
}


def to_uint8(image):
    """Round and clip a float image to uint8."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def psnr(clean, degraded):
    """Peak signal-to-noise ratio in dB of `degraded` against `clean` (uint8); inf when equal."""
    error = np.mean((clean.astype(np.float64) - degraded.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255.0 ** 2 / error)


def ffmpeg_executable():
    """Path of an ffmpeg that has libx264: $IMAGEIO_FFMPEG_EXE, else imageio-ffmpeg's own binary.

    Raises CodecError naming what to install when there is none.
    """
    executable = os.environ.get(FFMPEG_ENV)
    if not executable:
        try:
            import imageio_ffmpeg
            executable = imageio_ffmpeg.get_ffmpeg_exe()
        except ImportError:
            raise CodecError(f"video compression needs ffmpeg with {VIDEO_ENCODER}: {INSTALL_HINT}") from None
        except RuntimeError as error:  # imageio-ffmpeg found no binary for this platform
            raise CodecError(f"no ffmpeg found ({error}): {INSTALL_HINT}") from None
    if VIDEO_ENCODER not in ffmpeg_encoders(executable):
        raise CodecError(f"the ffmpeg at {executable} has no {VIDEO_ENCODER} encoder: {INSTALL_HINT}")
    return executable


@lru_cache(maxsize=None)
def ffmpeg_encoders(executable):
    """The encoder names `executable -encoders` lists; CodecError when it does not run."""
    try:
        result = subprocess.run([executable, "-hide_banner", "-encoders"], capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        raise CodecError(f"cannot run ffmpeg at {executable} ({error.__class__.__name__}): "
                         f"{INSTALL_HINT}") from None
    # Encoder lines look like " V....D libx264   libx264 H.264 / AVC ...".
    return frozenset(line.split()[1] for line in result.stdout.splitlines()
                     if len(line.split()) > 1 and len(line.split()[0]) == 6)


def encode_h264(src_path, dst_path, crf):
    """Re-encode `src_path` to `dst_path` with libx264 at `crf` (video only, yuv420p).

    Like DF-1.0's `ffmpeg -i in -crf N out`: default preset, frame rate and size kept (odd sizes
    rounded down to even, which yuv420p needs); audio dropped, since the detector never reads it.
    The container is MP4 whatever `dst_path`'s extension, so the re-encoded video can keep its
    source's file name (which metadata.json names); OpenCV finds the format from the content.
    """
    command = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-i", str(src_path), "-map", "0:v:0", "-an",
               "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",
               "-c:v", VIDEO_ENCODER, "-crf", str(crf), "-pix_fmt", "yuv420p", "-f", "mp4", str(dst_path)]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        reason = lines[-1] if lines else f"exit code {result.returncode}"
        raise VideoError(f"ffmpeg could not re-encode it: {reason}")
