"""Classification: preprocess and postprocess (pure), labels, backends (LiteRT, the Edge TPU delegate), the model,
the workers, the frame flow, smoothing and the stats window. Never imports `mqtt` or `http`."""
