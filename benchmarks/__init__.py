"""The benchmark suite behind BENCHMARKS.md: `python -m benchmarks.suite --help` (run from the repo root).

Modules: `procstat` (RSS/CPU from /proc), `inputs` (models, the 640x480 clip, the machine), `limit` (bare
invoke loop, `litert-benchmark`), `subscriber` (the separate MQTT receiver), `naive` (the tutorial loop),
`pipeline` (runs a publishing process against mosquitto and measures it), `breakdown` (the daemon's frame path
stage by stage), `report` (figures, targets, the tables), `suite` (CLI), `classify_overhead` (issue 2: one
224x224 image through `Classifier.classify` vs bare invoke), `small_model` (the cached MobileNetV2 0.35/96),
`train_fashion_mnist` (the trainer's own benchmark).
"""
