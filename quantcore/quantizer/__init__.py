"""Post-training quantization of float .tflite models (see :func:`quantize`)."""
from .calibrate import calibrate
from .core import MODES, QuantizationReport, quantize, quantize_weights_symmetric

__all__ = ["MODES", "QuantizationReport", "calibrate", "quantize", "quantize_weights_symmetric"]
