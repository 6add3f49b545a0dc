"""The built-in sample: a small DFDC-layout dataset made offline from two real portraits.

    python -m deepfake_detect.sample data/sample/videos [--videos-per-person 5] [--seconds 6] [--seed 0]

writes 20 short videos (10 REAL, 10 FAKE; about 6 s each at 15 fps, 400x300) and a DFDC-style
metadata.json into the folder, in a few seconds. The portraits ship inside installed packages:
scikit-image's astronaut (Eileen Collins) and matplotlib's Grace Hopper. A REAL video films one
portrait with a slowly moving, zooming camera and changing light. Its FAKE twin films the same
portrait with the same camera and light, but with the other person's face swapped in (aligned
on the eyes, nose and mouth, then blended with OpenCV's seamlessClone), and names the REAL video
as its `original`, exactly as DFDC does. It is a demo, not a benchmark: two identities only.
"""

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (400, 300)  # width, height: inside the x1 resize rule, so frames keep this size
FPS = 15
SECONDS = 6
VIDEOS_PER_PERSON = 5
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


def face_mask(shape, landmarks):
    """A filled ellipse (uint8, 255 inside) covering brows to chin around the five landmarks."""
    points = np.array(landmarks, np.float32)
    eye_distance = np.linalg.norm(points[1] - points[0])
    center = points.mean(axis=0)
    axes = (int(eye_distance * 1.1), int(eye_distance * 1.4))
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


def camera_path(rng, frame_count):
    """Per-frame (zoom, shift x, shift y, brightness gain, flip) for one take: a slow drift."""
    zoom = np.linspace(rng.uniform(1.0, 1.15), rng.uniform(1.0, 1.25), frame_count)
    shift_x = np.linspace(0, rng.uniform(-0.08, 0.08), frame_count)
    shift_y = np.linspace(0, rng.uniform(-0.06, 0.06), frame_count)
    phase = rng.uniform(0, 2 * np.pi)
    gain = 1 + rng.uniform(0.05, 0.2) * np.sin(np.linspace(0, 2 * np.pi, frame_count) + phase)
    flip = bool(rng.integers(2))
    return [(zoom[i], shift_x[i], shift_y[i], gain[i], flip) for i in range(frame_count)]


def film_frame(portrait_rgb, zoom, shift_x, shift_y, gain, flip, size=FRAME_SIZE):
    """One BGR video frame of `portrait_rgb` seen through the camera state."""
    height, width = portrait_rgb.shape[:2]
    out_w, out_h = size
    scale = zoom * min(out_w / width, out_h / height) * 1.3  # frame the face, not the whole photo
    center_x, center_y = width / 2 * (1 + shift_x), height * 0.4 * (1 + shift_y)
    matrix = np.float32([[scale, 0, out_w / 2 - scale * center_x],
                         [0, scale, out_h / 2 - scale * center_y]])
    frame = cv2.warpAffine(portrait_rgb, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    if flip:
        frame = frame[:, ::-1]
    frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


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


def make_sample(out_dir, videos_per_person=VIDEOS_PER_PERSON, seconds=SECONDS, fps=FPS, seed=0):
    """Write the sample videos and metadata.json into `out_dir`; return the metadata dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    portraits = portrait_images()
    people = sorted(portraits)
    metadata = {}
    for person in people:
        other = next(p for p in people if p != person)
        swapped = swap_face(portraits[person], LANDMARKS[person], portraits[other], LANDMARKS[other])
        for _ in range(videos_per_person):
            path = camera_path(rng, seconds * fps)
            real_name, fake_name = video_name(rng) + ".mp4", video_name(rng) + ".mp4"
            write_video(out_dir / real_name, [film_frame(portraits[person], *state) for state in path], fps)
            write_video(out_dir / fake_name, [film_frame(swapped, *state) for state in path], fps)
            metadata[real_name] = {"label": "REAL", "split": "train", "original": None}
            metadata[fake_name] = {"label": "FAKE", "split": "train", "original": real_name}
    # metadata.json last: its presence tells `make demo` that the sample is complete.
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return metadata


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder for the videos and metadata.json")
    parser.add_argument("--videos-per-person", type=int, default=VIDEOS_PER_PERSON)
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument("--seed", type=int, default=0,
                        help="another seed gives other videos (camera paths, light, names) of the same two people")
    args = parser.parse_args(argv)
    if (args.out_dir / "metadata.json").exists():
        print(f"{args.out_dir}/metadata.json exists: the sample is already there, nothing written")
        return 0
    metadata = make_sample(args.out_dir, args.videos_per_person, args.seconds, seed=args.seed)
    reals = sum(entry["label"] == "REAL" for entry in metadata.values())
    print(f"sample written to {args.out_dir}: {len(metadata)} videos ({reals} REAL, "
          f"{len(metadata) - reals} FAKE) and metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
