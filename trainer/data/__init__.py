"""The trainer's images: the dataset folder (scan, split, decode as the device does), the offline datasets from
Debian's and scikit-learn's packages, and the demo clip."""
