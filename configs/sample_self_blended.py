# The built-in sample trained the self-blended way (TRAIN_FAKES, docs/sample.md#trained-on-real-videos-only):
# configs/sample.py's settings, then only what differs. Stages 00 and 01a are shared with make demo's
# (the same frames and faces); stage 02 writes its own split, stage 03 its own run.
exec(compile(Path(__file__).with_name("sample.py").read_text(encoding="utf-8"), "configs/sample.py", "exec"))
TRAIN_FAKES = "self_blended"    # train and val: real crops and their self-blended fakes; test: the swapped takes
PREPARED_DIR = Path("data/sample/prepared_self_blended")
SPLIT_DIR = Path("data/sample/split_self_blended")
RUN_NAME = "sample-self-blended"
