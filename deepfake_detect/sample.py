"""The built-in sample: a small DFDC-layout dataset made offline from two real portraits.

    python -m deepfake_detect.sample data/sample/videos [--videos-per-person 5] [--seconds 6] [--seed 0]
    python -m deepfake_detect.sample data/sample/partial --partial

writes 60 short videos (30 REAL, 30 FAKE; 5 s each at 15 fps, 400x300) and a DFDC-style
metadata.json into the folder, in about fifteen seconds. The portraits ship inside installed
packages: scikit-image's astronaut (Eileen Collins) and matplotlib's Grace Hopper. Each REAL
video is one "take" of one portrait, with its own camera (path, zoom, tilt, mirror), light
(exposure, colour cast, gamma, flicker), background (a colour wash outside the head), sensor
noise and compression quality. Its FAKE twin is the same take of the same portrait with the
other person's face swapped in (aligned on the eyes, nose and mouth, rendered at half
resolution like an autoencoder deepfake, blended with OpenCV's seamlessClone), and names the
REAL video as its `original`, exactly as DFDC does. Since every take exists once real and once
fake, nothing about a clip but the swap tells the classes apart. It is a demo, not a
benchmark: two identities only.

With --partial it writes, into another folder so that none of it is trained on, five partly
manipulated videos (make_partial_sample): three with both people side by side (800x300; the
left, the right or neither swapped) and two 10-s spliced takes, real until a given second and
the same take swapped from then on, with LAV-DF-style `fake_periods` in their metadata.json.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (400, 300)  # width, height: inside the x1 resize rule, so frames keep this size
FPS = 15
SECONDS = 5
VIDEOS_PER_PERSON = 15   # REAL videos per portrait, each with its FAKE twin: 60 videos in all
NOISE_FIELDS = 5         # sensor-noise fields drawn per take and used in turn (drawing one per frame is slow)
# Five facial landmarks (left eye, right eye, nose, mouth left, mouth right) of each portrait, in
# pixels, as MTCNN 1.0.0 reports them; fixed here so building the sample needs no TensorFlow.
LANDMARKS = {
    "astronaut": [(204, 100), (245, 102), (224, 126), (202, 139), (244, 140)],
    "hopper": [(220, 190), (308, 186), (268, 237), (232, 277), (304, 273)],
}


def portrait_images():
    """The two real portraits as RGB uint8 arrays: {"astronaut": (512, 512, 3), "hopper": (600, 512, 3)}."""
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper_bgr = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR)
    return {"astronaut": skimage.data.astronaut(), "hopper": cv2.cvtColor(hopper_bgr, cv2.COLOR_BGR2RGB)}


def face_mask(shape, landmarks, scale=1.0):
    """A filled ellipse (uint8, 255 inside) covering brows to chin around the five landmarks;
    `scale` grows it (2.5: roughly the whole head)."""
    points = np.array(landmarks, np.float32)
    eye_distance = np.linalg.norm(points[1] - points[0])
    center = points.mean(axis=0)
    axes = (int(eye_distance * 1.1 * scale), int(eye_distance * 1.4 * scale))
    mask = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(mask, (int(center[0]), int(center[1])), axes, 0, 0, 360, 255, -1)
    return mask


def swap_face(target_rgb, target_landmarks, source_rgb, source_landmarks):
    """Paste the source person's face onto the target portrait, aligned and blended.

    Like an autoencoder deepfake, the pasted face is rendered at half resolution first, which
    leaves the slight softness and blending seams detectors learn to see.
    """
    matrix, _ = cv2.estimateAffinePartial2D(np.float32(source_landmarks), np.float32(target_landmarks))
    height, width = target_rgb.shape[:2]
    warped = cv2.warpAffine(source_rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
    small = cv2.resize(warped, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    warped = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    mask = face_mask(target_rgb.shape, target_landmarks)
    x, y, w, h = cv2.boundingRect(mask)
    center = (x + w // 2, y + h // 2)
    return cv2.seamlessClone(warped, target_rgb, mask, center, cv2.NORMAL_CLONE)


@dataclass
class Take:
    """Everything one video's filming varies, drawn once per REAL video and reused for its FAKE twin."""

    zoom: np.ndarray        # per frame, x the size that frames the face
    shift_x: np.ndarray     # per frame, fraction of the portrait's width
    shift_y: np.ndarray     # per frame, fraction of the portrait's height
    angle: np.ndarray       # per frame, degrees of camera tilt
    gain: np.ndarray        # per frame, exposure x flicker
    colour: np.ndarray      # (3,) RGB gains: the light's colour cast
    gamma: float
    flip: bool
    background: np.ndarray  # (2, 3) RGB colours of the wash's two ends
    wash: float             # 0..1: how much the background wash covers the photo's own background
    wash_angle: float       # radians: the direction of the wash's gradient
    noise: float            # sensor noise, standard deviation in grey levels
    quality: int            # JPEG quality each frame goes through before the video encoder


def draw_take(rng, frame_count):
    """A random Take of `frame_count` frames: slow drifts between random start and end states."""
    def drift(low, high):
        return np.linspace(rng.uniform(low, high), rng.uniform(low, high), frame_count)

    phase = rng.uniform(0, 2 * np.pi)
    flicker = rng.uniform(0.0, 0.12) * np.sin(np.linspace(0, 2 * np.pi, frame_count) + phase)
    return Take(zoom=drift(0.8, 1.35), shift_x=drift(-0.1, 0.1), shift_y=drift(-0.08, 0.08),
                angle=drift(-8, 8), gain=rng.uniform(0.7, 1.25) * (1 + flicker),
                colour=rng.uniform(0.8, 1.2, 3), gamma=float(rng.uniform(0.75, 1.3)),
                flip=bool(rng.integers(2)), background=rng.uniform(0, 255, (2, 3)),
                wash=float(rng.uniform(0.2, 0.9)), wash_angle=float(rng.uniform(0, 2 * np.pi)),
                noise=float(rng.uniform(0, 8)), quality=int(rng.integers(30, 96)))


def restage(portrait_rgb, landmarks, take):
    """The portrait with the take's background: a two-colour wash blended in outside the head."""
    height, width = portrait_rgb.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = (np.cos(take.wash_angle) * xs / width + np.sin(take.wash_angle) * ys / height)
    along = (along - along.min()) / max(1e-6, along.max() - along.min())
    wash = (1 - along)[..., None] * take.background[0] + along[..., None] * take.background[1]
    head = face_mask(portrait_rgb.shape, landmarks, scale=2.2).astype(np.float32) / 255
    head = cv2.GaussianBlur(head, (0, 0), 15)[..., None]
    alpha = take.wash * (1 - head)
    return (portrait_rgb * (1 - alpha) + wash * alpha).astype(np.uint8)


def film_frame(portrait_rgb, landmarks, take, index, noise, size=FRAME_SIZE):
    """Frame `index` of a take of `portrait_rgb`, as BGR uint8 of `size` (width, height);
    `noise`: a few int16 (height, width, 3) sensor-noise fields, used in turn."""
    out_w, out_h = size
    points = np.array(landmarks, np.float32)
    eye_distance = np.linalg.norm(points[1] - points[0])
    scale = take.zoom[index] * out_h * 0.17 / eye_distance  # eyes ~17% of the frame height apart
    center = points.mean(axis=0) + (take.shift_x[index] * out_w / scale, take.shift_y[index] * out_h / scale)
    matrix = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(take.angle[index]), float(scale))
    matrix[:, 2] += (out_w / 2 - center[0], out_h / 2 - center[1])
    frame = cv2.warpAffine(portrait_rgb, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    if take.flip:
        frame = np.ascontiguousarray(frame[:, ::-1])
    # Light as one lookup table per channel (gamma, colour cast, exposure): fast on every frame.
    levels = (np.arange(256, dtype=np.float32) / 255) ** take.gamma * 255
    tables = np.clip(levels[:, None] * take.colour * take.gain[index], 0, 255).astype(np.uint8)
    frame = cv2.LUT(frame, tables.reshape(256, 1, 3))
    frame = cv2.add(frame, noise[index % len(noise)], dtype=cv2.CV_8U)
    frame_bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    _, encoded = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, take.quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def film(portrait_rgb, landmarks, take, seed):
    """Every frame of a take (BGR). `seed` fixes the sensor noise, so twins differ only by the swap."""
    staged = restage(portrait_rgb, landmarks, take)
    noise = np.empty((NOISE_FIELDS, FRAME_SIZE[1], FRAME_SIZE[0], 3), np.int16)
    cv2.setRNGSeed(seed)
    for field in noise:
        cv2.randn(field, 0, take.noise)
    return [film_frame(staged, landmarks, take, index, noise) for index in range(len(take.zoom))]


def write_video(path, frames_bgr, fps=FPS):
    """Write BGR frames to an MPEG-4 file with OpenCV."""
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for frame in frames_bgr:
            writer.write(np.ascontiguousarray(frame))
    finally:
        writer.release()


def video_name(rng):
    """A DFDC-style name: ten lowercase letters."""
    return "".join(chr(ord("a") + int(i)) for i in rng.integers(0, 26, 10))


def portraits_and_swaps():
    """({person: portrait}, {person: the portrait with the other person's face swapped in}), RGB."""
    portraits = portrait_images()
    people = sorted(portraits)
    swapped = {person: swap_face(portraits[person], LANDMARKS[person], portraits[other], LANDMARKS[other])
               for person, other in zip(people, people[::-1])}
    return portraits, swapped


def make_sample(out_dir, videos_per_person=VIDEOS_PER_PERSON, seconds=SECONDS, fps=FPS, seed=0):
    """Write the sample videos and metadata.json into `out_dir`; return the metadata dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    portraits, swapped = portraits_and_swaps()
    people = sorted(portraits)
    metadata = {}
    for _ in range(videos_per_person):
        for person in people:  # alternating, so any number of videos holds both people
            take = draw_take(rng, seconds * fps)
            noise_seed = int(rng.integers(2 ** 31))
            real_name, fake_name = video_name(rng) + ".mp4", video_name(rng) + ".mp4"
            write_video(out_dir / real_name, film(portraits[person], LANDMARKS[person], take, noise_seed), fps)
            write_video(out_dir / fake_name, film(swapped[person], LANDMARKS[person], take, noise_seed), fps)
            metadata[real_name] = {"label": "REAL", "split": "train", "original": None}
            metadata[fake_name] = {"label": "FAKE", "split": "train", "original": real_name}
    # metadata.json last: its presence tells `make demo` that the sample is complete.
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return metadata


# Partly manipulated videos (--partial), written apart from the training sample so that no crop of
# them is trained on: two people side by side with one of them swapped, and spliced takes, real
# up to a given second and the same take swapped from there on (the case of docs/web-page.png).
PARTIAL_SECONDS = 10            # spliced takes: long enough for a real and a fake span of seconds
SPLICES = {"astronaut": 5.0, "hopper": 4.0}  # the second from which each portrait's spliced take is swapped
PAIRS = (("real", "fake"), ("fake", "real"), ("real", "real"))  # left and right person of each two-person video


def film_take(portraits, swapped, person, take, seed, fake):
    """Every frame of one take of `person`, real or with the face swapped (BGR)."""
    return film((swapped if fake else portraits)[person], LANDMARKS[person], take, seed)


def make_partial_sample(out_dir, seconds=SECONDS, seed=1):
    """Write the partly manipulated videos and their metadata.json (LAV-DF's `fake_periods`: [start,
    end] seconds, with a third item naming the swapped person, 1 = left, when only one person
    of two is) into `out_dir`; return the metadata dict."""
    portraits, swapped = portraits_and_swaps()
    people, rng, metadata = sorted(portraits), np.random.default_rng(seed), {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for number, sides in enumerate(PAIRS):
        halves = [film_take(portraits, swapped, person, draw_take(rng, seconds * FPS), int(rng.integers(2 ** 31)),
                            side == "fake") for person, side in zip(people, sides)]
        name = f"two-people-{number + 1}.mp4"
        write_video(out_dir / name, [np.hstack(pair) for pair in zip(*halves)])
        periods = [[0.0, float(seconds), position + 1] for position, side in enumerate(sides) if side == "fake"]
        metadata[name] = {"label": "FAKE" if periods else "REAL", "fake_periods": periods}
    for person, swap_from in SPLICES.items():
        take, noise_seed = draw_take(rng, PARTIAL_SECONDS * FPS), int(rng.integers(2 ** 31))
        real, fake = (film_take(portraits, swapped, person, take, noise_seed, is_fake) for is_fake in (False, True))
        cut = int(round(swap_from * FPS))
        name = f"spliced-{person}.mp4"
        write_video(out_dir / name, real[:cut] + fake[cut:])
        metadata[name] = {"label": "FAKE", "fake_periods": [[swap_from, float(PARTIAL_SECONDS)]]}
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return metadata


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder for the videos and metadata.json")
    parser.add_argument("--videos-per-person", type=int, default=VIDEOS_PER_PERSON)
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument("--seed", type=int, default=0,
                        help="another seed gives other videos (camera paths, light, names) of the same two people")
    parser.add_argument("--partial", action="store_true",
                        help="write the partly manipulated videos instead (two people, one swapped; spliced takes)")
    args = parser.parse_args(argv)
    if (args.out_dir / "metadata.json").exists():
        print(f"{args.out_dir}/metadata.json exists: the sample is already there, nothing written")
        return 0
    if args.partial:
        metadata = make_partial_sample(args.out_dir, args.seconds, seed=args.seed + 1)
        print(f"partly manipulated sample written to {args.out_dir}: {len(metadata)} videos "
              f"({', '.join(metadata)}) and metadata.json with their fake_periods")
        return 0
    metadata = make_sample(args.out_dir, args.videos_per_person, args.seconds, seed=args.seed)
    reals = sum(entry["label"] == "REAL" for entry in metadata.values())
    print(f"sample written to {args.out_dir}: {len(metadata)} videos ({reals} REAL, "
          f"{len(metadata) - reals} FAKE) and metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
