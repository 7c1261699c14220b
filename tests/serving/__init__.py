"""Tests of the serving side: the contract, the config files, the exported version as TF Serving loads it, and the
local server in process (batcher, tensors, poller) and as a real process on 127.0.0.1 (`integration`: Predict,
metadata, status, REST, batching, lifecycle, and both TensorFlow paths giving identical answers)."""
