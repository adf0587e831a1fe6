"""quantcore's integer reference runtime (installed as ``quantcore.runtime``)."""
from .interpreter import Interpreter, SignatureRunner
from .ops import KERNELS, get_kernel, supported_ops

__all__ = ["Interpreter", "KERNELS", "SignatureRunner", "get_kernel", "supported_ops"]
