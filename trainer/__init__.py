"""The desktop trainer: a folder of images in, a full-int8 `.tflite` classifier with its labels out.

It imports `edge` for image decoding, preprocessing and inference, so that what it calibrates and
evaluates is exactly what the device runs. TensorFlow is imported only where a model is built or converted.
"""
