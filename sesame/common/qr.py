"""Read a QR code's text from an image file with zxing-cpp (for `sesame badges verify`).

The gate has its own camera decoder; this one serves the organiser's tools and must not
pull in gate hardware code.
"""

from __future__ import annotations

from pathlib import Path

# Refuse decompression bombs rather than exhaust memory; a 48-megapixel phone photo passes.
# One limit for every image Sesame reads (badges verify here, `gate scan` in gate/decode.py).
MAX_PIXELS = 50_000_000


def decode_file(path: str | Path) -> str | None:
    """Text of the first QR code found, or None. Raises OSError (unreadable file) or
    ValueError (not an image)."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"image too large ({im.width}x{im.height})")
            gray = im.convert("L")
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise ValueError(str(e)) from None
    results = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)
    for r in results:
        if r.valid and r.text:
            return r.text
    return None
