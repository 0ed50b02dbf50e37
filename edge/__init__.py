"""edge: the on-device daemon. Classifies camera frames with a TFLite model and publishes to MQTT.

Nothing in this package imports TensorFlow: it installs on a Raspberry Pi with only the LiteRT runtime.
"""

import os

__version__ = "0.1.0"

# OpenCV reads its decode limit once, when it loads: set ours (edge.frames.images.MAX_PIXELS, 64 megapixels) before any
# module of this package imports cv2, so an image file claiming more is refused from its header, not decoded.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(64 * 1024 * 1024))
