# Settings for the built-in sample that `make demo` generates (python -m deepfake_detect.sample).
# Only what differs from config.py; see config.py for every setting.
VIDEOS_DIR = Path("data/sample/videos")
OUTPUT_DIR = Path("data/sample")
RUNS_DIR = Path("runs")
RUN_NAME = "sample"
# The demo must run offline, so the backbone starts from random weights; 5 epochs on ~100 crops
# then teach it nothing (scores stay near 0.5). It shows every stage and output working; real
# training starts from WEIGHTS = "imagenet" (downloaded once), as config.py does.
WEIGHTS = None
EPOCHS = 5
