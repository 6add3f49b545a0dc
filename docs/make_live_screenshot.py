"""Take docs/img/live-page.png: the page's live view (/live) in headless Chromium, its fake camera
playing the built-in sample's spliced hopper take (real, then swapped from 4 s), once the banner
says the person looks fake.

    python docs/make_live_screenshot.py --run runs/sample --config configs/sample.py [--out docs/img/live-page.png]

Needs Debian's chromium and chromium-driver (as tests/test_04_live_web.py) and a trained model
(`make demo`'s). Frames are scored in this process (the page's in-process runner), as in the tests.
"""

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder or model (the demo's: runs/sample)")
    parser.add_argument("--config", default=None, help="settings (the demo's: configs/sample.py)")
    parser.add_argument("--out", type=Path, default=REPO_DIR / "docs" / "img" / "live-page.png")
    args = parser.parse_args(argv)

    import imageio_ffmpeg
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from deepfake_detect.inference import web
    from deepfake_detect.inference.scoring import Scorer, find_run_model
    from deepfake_detect.sample import make_partial_sample
    from deepfake_detect.settings import load_config

    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory(prefix="live-shot-") as folder:
        folder = Path(folder)
        make_partial_sample(folder / "partial")
        y4m = folder / "hopper.y4m"  # what Chromium's fake camera plays
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i",
                        str(folder / "partial" / "spliced-hopper.mp4"), "-pix_fmt", "yuv420p", str(y4m)], check=True)
        app = web.create_app(Scorer(find_run_model(cfg.RUNS_DIR, args.run)), cfg)
        server = web.make_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,1000",
                     "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                     f"--use-file-for-fake-video-capture={y4m}", f"--user-data-dir={folder / 'profile'}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(f"http://127.0.0.1:{server.server_port}/live")
            driver.find_element(By.ID, "camera").click()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not driver.find_element(By.ID, "banner").is_displayed():
                time.sleep(0.5)
            time.sleep(1.5)  # a few more frames on the timeline
            print(f"banner: {driver.find_element(By.ID, 'banner').text}; {driver.find_element(By.ID, 'status').text}")
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
            server.shutdown()
    print(f"  output: {args.out}")


if __name__ == "__main__":
    main()
