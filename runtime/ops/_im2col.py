"""Zero-point padding and patch extraction for the fast convolution paths.

The reference kernels skip taps outside the image. The fast path pads the raw
input with the input zero point instead (``(zp - zp) * w = 0`` in the centred
arithmetic; the GEMM's constant column removes ``zp * sum w``, see
:mod:`runtime.ops._gemm`). Padding is done per block of output rows into a small
scratch slab (cast to the GEMM's float type on the way), and patches are
``as_strided`` views of that slab: no full-size padded copy of the input exists.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def padded_rows(img: np.ndarray, row0: int, slab: np.ndarray, pad_top: int, pad_left: int,
                fill: float) -> None:
    """Fill ``slab`` [R, Wp, C] with rows ``row0 .. row0 + R`` (padded coordinates) of
    ``img`` [H, W, C] padded by ``pad_top`` rows and ``pad_left`` columns of ``fill``
    (and whatever the slab extends past the image on the bottom/right)."""
    h, w, _ = img.shape
    r, wp, _ = slab.shape
    i0 = row0 - pad_top                  # image row of slab row 0
    a = max(0, -i0)                      # first slab row inside the image
    b = min(r, h - i0)                   # one past the last
    if a > 0:
        slab[:a] = fill
    if b < r:
        slab[max(b, 0):] = fill
    if b > a:
        right = pad_left + w
        if pad_left:
            slab[a:b, :pad_left] = fill
        if right < wp:
            slab[a:b, right:] = fill
        slab[a:b, pad_left:right] = img[i0 + a:i0 + b]


def strided_view(base: np.ndarray, shape: tuple[int, ...], strides: tuple[int, ...],
                 offset: int = 0) -> np.ndarray:
    """Read-only view of ``base``'s memory with ``shape``/``strides`` (bytes) starting at
    byte ``offset``. For a C-contiguous ``base`` (the scratch slabs) this is the plain
    ``np.ndarray`` constructor, ~0.4 us instead of ``as_strided``'s ~2.5 us per call (it
    counts on the small models: one or two views per layer per invoke); NumPy checks
    that the view stays inside the buffer. Other bases: ``as_strided`` (offset 0 only)."""
    if base.flags.c_contiguous:
        v = np.ndarray(shape, base.dtype, buffer=base, offset=offset, strides=strides)
        v.flags.writeable = False
        return v
    if offset:
        raise ValueError("strided_view: an offset needs a C-contiguous base")
    return as_strided(base, shape=shape, strides=strides, writeable=False)


def patches(slab: np.ndarray, rows: int, out_w: int, kh: int, kw: int, stride: tuple[int, int],
            dilation: tuple[int, int], c0: int = 0, c1: int | None = None) -> np.ndarray:
    """View [rows, OW, KH, KW, C'] of the patches of ``slab`` (channels ``c0:c1``), slab row 0
    being the first input row of output row 0."""
    view = slab[:, :, c0:c1]
    s0, s1, s2 = view.strides
    sh, sw = stride
    dh, dw = dilation
    shape = (rows, out_w, kh, kw, view.shape[2])
    strides = (sh * s0, sw * s1, dh * s0, dw * s1, s2)
    if slab.flags.c_contiguous:
        return strided_view(slab, shape, strides, (c0 or 0) * slab.itemsize)
    return as_strided(view, shape=shape, strides=strides, writeable=False)


def tap(slab: np.ndarray, rows: int, out_w: int, fy: int, fx: int, stride: tuple[int, int],
        dilation: tuple[int, int]) -> np.ndarray:
    """The input window of tap (fy, fx) for ``rows`` output rows: [rows, OW, C] view."""
    sh, sw = stride
    dh, dw = dilation
    y0 = fy * dh
    x0 = fx * dw
    return slab[y0:y0 + (rows - 1) * sh + 1:sh, x0:x0 + (out_w - 1) * sw + 1:sw]
