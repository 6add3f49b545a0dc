"""Stage 03: the split's files, the input pipeline and augmentation, the crop cache, the training loop, epoch-end bookkeeping, the machines, the run folder, calibration, the model card, export."""
