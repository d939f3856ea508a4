"""Display-size previews, so notebooks stay small while full images stay in Python."""

from __future__ import annotations

import io
import logging

from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

PREVIEW_WIDTH = 512
PREVIEW_QUALITY = 80


def make_preview(data: bytes, width: int = PREVIEW_WIDTH) -> bytes:
    """Return a JPEG no wider than ``width`` pixels made from image ``data``.

    Raises `ValueError` if ``data`` is not an image Pillow can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (width, width))
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not an image ({len(data)} bytes)") from exc
    if picture.width > width:
        height = max(1, round(picture.height * width / picture.width))
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=PREVIEW_QUALITY, optimize=True)
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """The pixel size of image ``data``."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size
