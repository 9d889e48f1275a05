"""TensorRT: engine build, cache, INT8 calibration and runner (imports tensorrt lazily)."""
