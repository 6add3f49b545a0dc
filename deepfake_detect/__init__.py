"""DeepFake-Detect: the code the numbered scripts share, and a Python API.

    from deepfake_detect import Detector    # api.py: load a trained model, score images and videos

Each module is small and imports nothing heavy at import time, so every script and test can
import what it needs without loading TensorFlow unless it uses it. `Detector` too is imported
only when first used (PEP 562), so `import deepfake_detect` stays quick.
"""

__all__ = ["Detector"]


def __getattr__(name):
    """`deepfake_detect.Detector`, imported from api.py on first use."""
    if name == "Detector":
        from deepfake_detect.api import Detector

        return Detector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
