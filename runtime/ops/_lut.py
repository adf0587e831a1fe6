"""Lookup tables of LiteRT's quantized elementwise kernels and the float32 math
functions they are built from.

Mirrors ``LUTPopulateInt8``, ``LUTPopulateInt16`` and the two ``LUTLookup``
overloads of ``tflite/kernels/internal/common.h`` (google-ai-edge/LiteRT), used by
LOGISTIC, TANH, ELU and EXP (int8/uint8: 256 entries) and by EXP, RSQRT and SOFTMAX
(int16: 513 entries with linear interpolation).

int8/uint8 table, one entry per input code ``v`` (every step in float32, as the C++)::

    inverse_scale = f32(1 / s_out)
    y = transform(f32(s_in * f32(v - zp_in)))
    entry = clamp(int32(f32(roundf(f32(y * inverse_scale)) + f32(zp_out))), qmin, qmax)

``int32(...)`` is a float-to-int conversion that saturates: measured on the wheel,
EXP codes whose ``expf(x) / s_out`` is 2^31 or more (finite or inf) give qmax, not
the INT32_MIN that a plain x86 ``cvttss2si`` would give and the clamp would turn into
qmin (the C++ cast is undefined behaviour there; the compiled code clamps).

libm. The C++ transforms call glibc's float functions (``expf``, ``tanhf``,
``expm1f``). Measured on glibc 2.36 over 200k random float32 arguments in [-20, 20]:
NumPy's own float32 ``exp``/``tanh``/``expm1`` differ from glibc in 39%/20%/14% of
cases, and even the correctly rounded value (float64 evaluation rounded to float32)
differs from glibc in 0.07% (expf), 2.8% (tanhf) and 5.9% (expm1f) of cases: glibc's
``tanhf`` and ``expm1f`` are not correctly rounded. A one-ulp difference rarely moves
a table entry, but it does: among 20000 random (scale, zero point) tables, 3 TANH and
1 ELU tables had an entry that differs between glibc and the correctly rounded value
(the scaled value sits on or next to a .5 tie), and LiteRT's tables followed glibc in
all 4 (tests/ops/test_activations.py, ``LIBM_SENSITIVE``). Tables are therefore built
with the platform's C library through ctypes when it is available (:func:`libm_f32`),
which reproduces LiteRT's tables exactly on the machine LiteRT runs on, and with the
correctly rounded float64 evaluation otherwise. Float tensors (no tables) use the
vectorized float64 evaluation (:func:`approx_f32`), within one ulp of glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import numpy as np

from quantcore.fixedpoint import round_half_away, wrap_int32

_F32 = np.float32


def _load_libm():
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:  # pragma: no cover
        return None
    funcs = {}
    for fname, ctype in (("expf", ctypes.c_float), ("tanhf", ctypes.c_float),
                         ("expm1f", ctypes.c_float), ("logf", ctypes.c_float),
                         ("sqrtf", ctypes.c_float), ("exp", ctypes.c_double),
                         ("log", ctypes.c_double)):
        f = getattr(lib, fname, None)
        if f is None:  # pragma: no cover
            return None
        f.restype = ctype
        f.argtypes = [ctype]
        funcs[fname] = f
    return funcs


_LIBM = _load_libm()
_NUMPY_F64 = {"expf": np.exp, "tanhf": np.tanh, "expm1f": np.expm1, "logf": np.log,
              "sqrtf": np.sqrt, "exp": np.exp, "log": np.log}


def libm_f32(name: str, x: np.ndarray) -> np.ndarray:
    """The C library's float function ``name`` (``"expf"``, ``"tanhf"``, ``"expm1f"``,
    ``"logf"``, ``"sqrtf"``) applied to float32 ``x``, element by element.

    Uses the platform libm through ctypes (bit-identical to what LiteRT computes on
    this machine); meant for tables of a few hundred entries. Without a loadable
    libm, the float64 NumPy function rounded to float32 (correctly rounded in
    practice) is used instead.
    """
    x = np.asarray(x, _F32)
    if _LIBM is None:
        with np.errstate(all="ignore"):
            return _NUMPY_F64[name](x.astype(np.float64)).astype(_F32)
    f = _LIBM[name]
    flat = [f(float(v)) for v in x.reshape(-1)]
    return np.array(flat, _F32).reshape(x.shape)


def libm_f64(name: str, x: np.ndarray) -> np.ndarray:
    """The C library's double function ``name`` (``"exp"``, ``"log"``) on float64 ``x``."""
    x = np.asarray(x, np.float64)
    if _LIBM is None:
        with np.errstate(all="ignore"):
            return _NUMPY_F64[name](x)
    f = _LIBM[name]
    return np.array([f(float(v)) for v in x.reshape(-1)], np.float64).reshape(x.shape)


def approx_f32(name: str, x: np.ndarray) -> np.ndarray:
    """Vectorized float32 ``name`` for whole float tensors: float64 NumPy rounded to
    float32 (within one ulp of glibc; see the module docstring)."""
    x = np.asarray(x, _F32)
    with np.errstate(all="ignore"):
        return _NUMPY_F64[name](x.astype(np.float64)).astype(_F32)


# ---------------------------------------------------------------------------
# 8-bit tables
# ---------------------------------------------------------------------------
def _saturating_float_to_int32(x: np.ndarray) -> np.ndarray:
    """Truncate toward zero, saturating to the int32 range (NaN gives INT32_MIN, as x86)."""
    x = np.asarray(x, np.float64)
    nan = np.isnan(x)
    clipped = np.clip(np.where(nan, 0.0, x), -(2.0**31), 2.0**31 - 1)
    return np.where(nan, -(2**31), np.trunc(clipped).astype(np.int64))


def lut_populate_int8(input_scale: float, input_zero_point: int, output_scale: float,
                      output_zero_point: int, transform: Callable[[np.ndarray], np.ndarray],
                      qmin: int, qmax: int) -> np.ndarray:
    """``LUTPopulateInt8``: the 256 outputs for input codes ``qmin..qmax`` in that order
    (int64 array; index with ``x - qmin``). ``transform`` maps a float32 array to a
    float32 array (the C++ lambda)."""
    codes = np.arange(qmin, qmax + 1, dtype=np.int64)
    with np.errstate(all="ignore"):  # extreme scales give inf / NaN, saturated below as in C
        inverse_scale = _F32(1) / _F32(output_scale)
        dequantized = _F32(input_scale) * (codes - int(input_zero_point)).astype(_F32)
        transformed = np.asarray(transform(dequantized.astype(_F32)), _F32)
        rescaled = round_half_away((transformed * inverse_scale).astype(_F32))
        shifted = (rescaled + _F32(output_zero_point)).astype(_F32)
    quantized = _saturating_float_to_int32(shifted)
    return np.clip(quantized, qmin, qmax)


def lut_lookup_int8(x: np.ndarray, table: np.ndarray, qmin: int, dtype) -> np.ndarray:
    """Apply a table from :func:`lut_populate_int8` to an int8/uint8 array."""
    return table[np.asarray(x, np.int64) - qmin].astype(dtype)


# ---------------------------------------------------------------------------
# 16-bit tables
# ---------------------------------------------------------------------------
def lut_populate_int16(input_scale: float, input_zero_point: int, output_scale: float,
                       output_zero_point: int, transform: Callable[[np.ndarray], np.ndarray],
                       float_type=np.float32) -> np.ndarray:
    """``LUTPopulateInt16<FloatT>``: 513 int16 entries sampling ``transform`` at 512 equal
    steps over the input range plus its end point.

    Each entry is ``round(f(x_i) * inv)`` corrected by half the error the linear
    interpolation would make at the step's midpoint::

        inv = 65536 / (output_max - output_min)
        interp = round((f(x_{i+1}) * inv + round(f(x_i) * inv)) / 2)
        bias = round((interp - round(f(x_i + step/2) * inv)) / 2)
        lut[i] = clamp(round(f(x_i) * inv) - bias, -32768, 32767)

    All arithmetic in ``float_type`` (float32 for most ops, float64 for SOFTMAX's
    legacy tables), ``round`` = C round (ties away from zero).
    """
    ft = np.dtype(float_type).type
    input_scale = ft(input_scale)
    output_scale = ft(output_scale)
    with np.errstate(all="ignore"):  # extreme scales give inf / NaN, as in C
        input_min = ft(input_scale * ft(-32768 - int(input_zero_point)))
        input_max = ft(input_scale * ft(32767 - int(input_zero_point)))
        output_min = ft(output_scale * ft(-32768 - int(output_zero_point)))
        output_max = ft(output_scale * ft(32767 - int(output_zero_point)))
        step = ft((input_max - input_min) / ft(512))
        half_step = ft(step / ft(2))
        output_scaling_inv = ft(ft(65536) / ft(output_max - output_min))
    i = np.arange(512).astype(ft)
    with np.errstate(all="ignore"):
        x_i = (input_min + (i * step).astype(ft)).astype(ft)
        x_mid = (x_i + half_step).astype(ft)
        x_next = (input_min + ((i + ft(1)) * step).astype(ft)).astype(ft)
        val = np.asarray(transform(x_i), ft)
        val_midpoint = np.asarray(transform(x_mid), ft)
        val_next = np.asarray(transform(x_next), ft)
        sample_val = round_half_away((val * output_scaling_inv).astype(ft))
        midpoint_interp_val = round_half_away(
            (((val_next * output_scaling_inv).astype(ft) + sample_val).astype(ft) / ft(2)).astype(ft))
        midpoint_val = round_half_away((val_midpoint * output_scaling_inv).astype(ft))
        midpoint_err = (midpoint_interp_val - midpoint_val).astype(ft)
        bias = round_half_away((midpoint_err / ft(2)).astype(ft))
        entries = np.clip((sample_val - bias).astype(ft), -32768, 32767)
        last = np.asarray(transform(np.array([input_max], ft)), ft)
        last = np.clip(round_half_away((last * output_scaling_inv).astype(ft)), -32768, 32767)
    values = np.concatenate([entries, last])
    # static_cast<int16_t>(NaN) (inf - inf in the bias of overflowing samples): x86
    # converts to the int32 INT32_MIN, whose low 16 bits are 0
    return np.where(np.isnan(values), 0, np.nan_to_num(values)).astype(np.int64)


def lut_lookup_int16(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``LUTLookup(int16_t, const int16_t*)``: the top 9 bits index the table, the low 7
    bits interpolate linearly: ``base + ((slope * offset + 64) >> 7)``, int16 wrap."""
    v = np.asarray(x, np.int64)
    index = 256 + (v >> 7)
    offset = v & 0x7F
    base = lut[index]
    slope = ((lut[index + 1] - base + 2**15) & 0xFFFF) - 2**15
    delta = (slope * offset + 64) >> 7
    return ((base + delta + 2**15) & 0xFFFF) - 2**15


# ---------------------------------------------------------------------------
# int16 LOGISTIC / TANH
# ---------------------------------------------------------------------------
# ``sigmoid_table_uint16`` of tflite/kernels/internal/common.h: sigmoid(i / 24) in
# Q0.16 for i = 0..255, as LiteRT tabulates it (the values are LiteRT's constants;
# they are not plain roundings of the formula, so they are reproduced verbatim).
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535], np.int64)


def checked_log2(x: float) -> tuple[bool, int]:
    """``CheckedLog2`` (quantization_util.cc): (is x a power of two within 1e-3 in log2,
    round(log2 x)), computed in float32 as ``logf(x) * (1.0f / logf(2.0f))``."""
    c = _F32(1) / libm_f32("logf", np.array([2.0], _F32))[0]
    x_log2 = _F32(libm_f32("logf", np.array([x], _F32))[0] * c)
    rounded = _F32(round_half_away(x_log2))
    frac = _F32(x_log2 - rounded)
    return bool(abs(frac) < _F32(1e-3)), int(rounded)


def int16_input_rescale(input_scale: float, pot_shifts: tuple[int, ...]) -> tuple[int, int]:
    """Input multiplier and left shift of the int16 LOGISTIC/TANH kernels (``TanhPrepare``,
    ``SigmoidPrepare``), with 3 integer bits: (0, shift) for a power-of-two scale giving
    a shift in ``pot_shifts``, else the scale times 3 * 4096 doubled until it exceeds
    32767 / 2 (at most 31 times) and truncated to an integer multiplier."""
    pot, log2 = checked_log2(input_scale)
    shift = 12 + log2
    if pot and shift in pot_shifts:
        return 0, shift
    multiplier = float(input_scale) * 4096.0 * 3.0
    shift = 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    return int(multiplier), shift


def int16_input_fixed(x: np.ndarray, input_multiplier: int, input_left_shift: int) -> np.ndarray:
    """``(x * input_multiplier + round) >> input_left_shift`` of the int16 LOGISTIC/TANH
    kernels (power-of-two case: multiplier ``3 << shift``, no shift), int32 wrap."""
    if input_multiplier == 0:
        input_multiplier, input_left_shift = 3 << input_left_shift, 0
    rnd = (1 << (input_left_shift - 1)) if input_left_shift > 0 else 0
    return wrap_int32(np.asarray(x, np.int64) * input_multiplier + rnd) >> input_left_shift
