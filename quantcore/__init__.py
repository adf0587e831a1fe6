"""quantcore: affine quantization engine and integer reference runtime for TFLite models.

Public API (imported lazily, so ``import quantcore`` stays light)::

    quantcore.quantize(model, representative_dataset=..., mode="int8") -> bytes
    quantcore.compare(model, inputs=None, numerics="reference") -> CompareResult
    quantcore.Interpreter(model_path=...)         # the tf.lite.Interpreter interface
    quantcore.read_model(path) / quantcore.write_model(model)
    quantcore.fake_quant(x, min, max, num_bits=8)  # TensorFlow's FakeQuant, bit for bit
    quantcore.prune(model, sparsity=0.5) / quantcore.cluster(model, clusters=16) -> bytes
"""
from quantcore.errors import (CalibrationError, InputError, LoopLimitError, ModelFormatError,
                              NumericsPathError, QuantcoreError, ResourceLimitError,
                              UnsupportedOpError)

__version__ = "0.1.0"

_LAZY = {
    "quantize": ("quantcore.quantizer", "quantize"),
    "compare": ("quantcore.compare", "compare"),
    "Interpreter": ("quantcore.runtime", "Interpreter"),
    "read_model": ("quantcore.schema", "read_model"),
    "write_model": ("quantcore.schema", "write_model"),
    "fake_quant": ("quantcore.qat", "fake_quant"),
    "prune": ("quantcore.compress", "prune"),
    "cluster": ("quantcore.compress", "cluster"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'quantcore' has no attribute {name!r}")


__all__ = ["CalibrationError", "InputError", "LoopLimitError", "ModelFormatError", "NumericsPathError",
           "QuantcoreError", "ResourceLimitError", "UnsupportedOpError", "__version__", *_LAZY]
