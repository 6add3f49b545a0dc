"""The built-in sample: a small DFDC-layout dataset made from portraits that ship inside
installed packages (scikit-image's astronaut, matplotlib's Grace Hopper), so the whole
pipeline can run offline.

    python -m deepfake_detect.sample data/sample/videos

(Generator in progress: only portrait_images() is available yet.)
"""

import cv2
import numpy as np


def portrait_images():
    """The two real portraits as RGB uint8 arrays: {"astronaut": (512, 512, 3), "hopper": (H, W, 3)}."""
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper_bgr = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR)
    return {"astronaut": skimage.data.astronaut(), "hopper": cv2.cvtColor(hopper_bgr, cv2.COLOR_BGR2RGB)}
