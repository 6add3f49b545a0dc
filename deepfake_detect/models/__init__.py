"""Models: the network (EfficientNet-B0 + the original's head), TensorFlow devices, predictors for .keras / SavedModel / TFLite."""
