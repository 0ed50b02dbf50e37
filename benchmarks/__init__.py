"""The benchmark suite behind BENCHMARKS.md: `python -m benchmarks.suite --help` (run from the repo root).

Modules: `procstat` (RSS/CPU from /proc), `inputs` (models, the 640x480 clip, the machine), `limit` (bare
invoke loop), `subscriber` (the separate MQTT receiver), `naive` (the tutorial loop), `pipeline` (runs a
publishing process against mosquitto and measures it), `report` (figures, targets, the table), `suite` (CLI),
`classify_overhead` (issue 2: one 224x224 image through `Classifier.classify` vs bare invoke).
"""
