"""quantcore: affine quantization engine and integer reference runtime for TFLite models."""
from quantcore.errors import (CalibrationError, InputError, ModelFormatError, NumericsPathError,
                              QuantcoreError, UnsupportedOpError)

__version__ = "0.1.0"

__all__ = ["CalibrationError", "InputError", "ModelFormatError", "NumericsPathError",
           "QuantcoreError", "UnsupportedOpError", "__version__"]
