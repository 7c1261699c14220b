"""Our own wire-compatible subset of TensorFlow Serving's protos (package deepfake_detector.tfs); see tfs.proto."""
