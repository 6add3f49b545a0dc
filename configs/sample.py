# Settings for the built-in sample that `make demo` generates (python -m deepfake_detect.sample).
# Only what differs from config.py; see config.py for every setting.
VIDEOS_DIR = Path("data/sample/videos")
OUTPUT_DIR = Path("data/sample")
RUNS_DIR = Path("runs")
RUN_NAME = "sample"
WEIGHTS = None          # the demo must run offline; real training wants "imagenet"
EPOCHS = 5              # a demo, not a detector: enough to see every output
