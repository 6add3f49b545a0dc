"""Take docs/web-page.png: the stage 04 web page in headless Chromium after scoring a video,
with the P(fake) timeline and a Grad-CAM heatmap beside each face crop.

    python docs/make_web_screenshot.py [--out docs/web-page.png] [--run runs/sample/model.keras]

Needs Debian's chromium and chromium-driver (as tests/test_04_web.py). Everything is made
here, offline: a 12-s clip of the built-in sample's astronaut portrait (4 s as filmed, 2 s of
an empty wall, 6 s with Grace Hopper's face swapped in, by deepfake_detect.sample's own code)
and an untrained EfficientNet-B0 at 128 px whose last layer is rescaled so its scores spread
(tests/test_03_export.spread_model), whose scores and heatmaps are those of random weights; or,
with --run, a trained model such as `make demo`'s (docs/web-page.png was taken with that one,
on a clip of the sample's two people, whom it was trained on: it shows the page, not a benchmark).
"""

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(REPO_DIR / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
MAX_BYTES = 300_000


def write_clip(path, fps=15):
    """The 12-s demo clip: real for 4 s, an empty wall for 2 s, face-swapped for 6 s."""
    import numpy as np

    from deepfake_detect import sample

    portraits = sample.portrait_images()
    swapped = sample.swap_face(portraits["astronaut"], sample.LANDMARKS["astronaut"],
                               portraits["hopper"], sample.LANDMARKS["hopper"])
    # One take filmed twice, as the sample films a real video and its fake twin.
    take = sample.draw_take(np.random.default_rng(3), 12 * fps)
    landmarks = sample.LANDMARKS["astronaut"]
    real, fake = (sample.film(portrait, landmarks, take, seed=3) for portrait in (portraits["astronaut"], swapped))
    wall = np.full((sample.FRAME_SIZE[1], sample.FRAME_SIZE[0], 3), 150, np.uint8)
    frames = [real[index] if index < 4 * fps else wall if index < 6 * fps else fake[index]
              for index in range(12 * fps)]
    sample.write_video(path, frames, fps)
    return path


def compress_png(png_bytes, width=900):
    """The screenshot scaled to `width` px and cut to a 256-colour palette (Pillow)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_DIR / "docs" / "web-page.png")
    parser.add_argument("--run", type=Path, default=None, help="a trained model.keras (default: an untrained one)")
    args = parser.parse_args(argv)

    import keras
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from deepfake_detect.inference import web
    from deepfake_detect.inference.scoring import Scorer
    from deepfake_detect.files import write_bytes_atomic
    from deepfake_detect.models.network import build_model, prepare_faces
    from deepfake_detect.settings import load_config
    from test_03_export import parity_crops, spread_model
    from test_04_web import chromium_on

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip = write_clip(folder / "astronaut-then-swapped.mp4")
        model_path = args.run
        if model_path is None:
            keras.utils.set_random_seed(7)
            model = spread_model(build_model(input_size=128, weights=None), prepare_faces(parity_crops(), 128))
            model_path = folder / "model.keras"
            model.save(model_path)
        (folder / "config.py").write_text(f"RUNS_DIR = {str(folder)!r}\n")
        scorer = Scorer(model_path)
        app = web.create_app(scorer, load_config(folder / "config.py"))
        with chromium_on(app, folder) as (driver, url):
            driver.set_window_size(1000, 900)
            driver.get(url)
            driver.find_element(By.ID, "file").send_keys(str(clip))
            driver.find_element(By.ID, "submit").click()
            WebDriverWait(driver, 120).until(expected_conditions.presence_of_element_located((By.ID, "verdict")))
            height = driver.execute_script("return document.documentElement.scrollHeight")
            # the whole page, not just the window (a headless window is capped at the screen's height)
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": 1000, "height": min(height + 20, 2400), "deviceScaleFactor": 1, "mobile": False})
            png = compress_png(driver.get_screenshot_as_png())
    if len(png) > MAX_BYTES:
        png = compress_png(png, width=760)
    write_bytes_atomic(args.out, png)
    print(f"wrote {args.out} ({len(png) / 1000:.0f} KB)")


if __name__ == "__main__":
    main()
