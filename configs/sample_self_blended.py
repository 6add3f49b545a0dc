# The built-in sample trained on its real videos only, with self-blended fakes (TRAIN_FAKES,
# docs/sample.md#trained-on-real-videos-only): configs/sample.py's settings, then what differs.
# Stages 00 and 01a are make demo's (the same frames, faces and landmarks); stage 02 writes its own
# split (the same 6 held-out pairs), stage 03 its own run.
exec(compile(Path(__file__).with_name("sample.py").read_text(encoding="utf-8"), "configs/sample.py", "exec"))
TRAIN_FAKES = "self_blended"    # train and val: real crops and their self-blended fakes; test: the swapped takes
# From random weights the paper's subtle blends kept EfficientNet-B0 at chance for 500 steps;
# "strong" ones (a full blend of a softened or sharpened copy) are learned within 4-6 epochs.
SELF_BLEND_RECIPE = "strong"
# 20 epochs, every one run: the held-out swaps' video AUC was 0.78 after 12 epochs, 0.92 after 20
# (the val fakes keep getting harder to miss); while BatchNorm's averages catch up, val loss jumps
# (0.1 to 20 between epochs) and early stopping would keep an early chance-level model.
EPOCHS = 20
EARLY_STOPPING_PATIENCE = EPOCHS
PREPARED_DIR = Path("data/sample/prepared_self_blended")
SPLIT_DIR = Path("data/sample/split_self_blended")
RUN_NAME = "sample-self-blended"
