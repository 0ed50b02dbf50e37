"""The networks: the Keras classifier around a backbone, EfficientNet-Lite built exactly, and the reader of
PyTorch checkpoints (a safe unpickler; no PyTorch dependency)."""
