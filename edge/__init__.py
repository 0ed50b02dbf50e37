"""edge: the on-device daemon. Classifies camera frames with a TFLite model and publishes to MQTT.

Nothing in this package imports TensorFlow: it installs on a Raspberry Pi with only the LiteRT runtime.
"""

__version__ = "0.1.0"
