"""Code the numbered scripts share: settings, dataset layouts, frames, faces, the model.

Each module is small and imports nothing heavy at import time, so every script and test can
import what it needs without loading TensorFlow unless it uses it.
"""
