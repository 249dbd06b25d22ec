"""Quantization, one module per step: calibration data, BatchNorm folding, post-training int8 for
TFLite, quantization-aware training, and the int8 ONNX converter (onnx_from_tflite).

Exporters (edge_mnist.export) call these; every module imports TensorFlow or onnx only when
its functions run.
"""
