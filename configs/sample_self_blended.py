# The built-in sample trained on its real videos only, with self-blended fakes (TRAIN_FAKES,
# docs/sample.md#trained-on-real-videos-only): configs/sample.py's settings, then what differs.
# Stages 00 and 01a are make demo's (the same frames, faces and landmarks); stage 02 writes its own
# split (the same test videos), stage 03 its own run.
exec(compile(Path(__file__).with_name("sample.py").read_text(encoding="utf-8"), "configs/sample.py", "exec"))
TRAIN_FAKES = "self_blended"    # train and val: real crops and their self-blended fakes; test: the swapped takes
# From random weights the paper's subtle blends kept EfficientNet-B0 at chance for 500 steps (64 px);
# "strong" blends are learned within 3 epochs.
SELF_BLEND_RECIPE = "strong"
# 128 px, not the demo's 64: the swaps are rendered at half resolution, a softness that 64 px
# crops (from ~220-px faces) no longer show; the self-blended model has only such cues to go by.
INPUT_SIZE = 128
PREPARED_DIR = Path("data/sample/prepared_self_blended")
SPLIT_DIR = Path("data/sample/split_self_blended")
RUN_NAME = "sample-self-blended"
