"""Deterministic pictures for simulated jobs, drawn with Pillow.

The same prompt and mode always give the same JPEG bytes: a sea-blue gradient
whose hues come from a hash of the prompt, some bubbles, a shark fin and the
prompt itself.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import random
import textwrap

from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = ["SIZES", "render_jpeg"]

SIZES: dict[str, int] = {"1k": 1024, "2k": 2048}
"""Edge length in pixels of the square image for each mode."""

_QUALITY = 85


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


@functools.lru_cache(maxsize=16)
def render_jpeg(prompt: str, mode: str) -> bytes:
    """The JPEG for ``prompt`` in ``mode`` ("1k" or "2k"), deterministic."""
    size = SIZES[mode]
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    rng = random.Random(digest)
    hue = 0.47 + 0.15 * digest[0] / 255
    top = _rgb(hue, 0.45, 0.9)
    bottom = _rgb((hue + 0.04 * (digest[1] / 255 - 0.5)) % 1.0, 0.9, 0.22)

    gradient = Image.linear_gradient("L").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    image = ImageOps.colorize(gradient, black=top, white=bottom)
    draw = ImageDraw.Draw(image)

    for _ in range(14):
        radius = size * rng.uniform(0.006, 0.03)
        x, y = rng.uniform(0, size), rng.uniform(0, size * 0.85)
        shade = _rgb(hue, 0.15, rng.uniform(0.8, 1.0))
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius),
            outline=shade,
            width=max(2, size // 400),
        )

    fin_x, fin_y, unit = size * rng.uniform(0.25, 0.65), size * 0.8, size / 10
    fin = [
        (fin_x, fin_y),
        (fin_x + unit * 0.9, fin_y - unit * 1.6),
        (fin_x + unit * 1.05, fin_y - unit * 1.5),
        (fin_x + unit * 1.4, fin_y),
    ]
    draw.polygon(fin, fill=_rgb(hue, 0.6, 0.15))
    draw.rectangle((0, fin_y, size, size), fill=_rgb(hue, 0.7, 0.12))

    font = _font(size // 22)
    lines = textwrap.wrap(prompt, width=30, max_lines=6, placeholder=" …") or [""]
    spacing = size // 80
    text = "\n".join(lines)
    box = draw.multiline_textbbox((0, 0), text, font=font, spacing=spacing)
    left = (size - (box[2] - box[0])) / 2
    upper = size * 0.42 - (box[3] - box[1]) / 2
    shadow = max(2, size // 300)
    for offset, colour in ((shadow, (0, 0, 0)), (0, (255, 255, 255))):
        draw.multiline_text(
            (left + offset, upper + offset),
            text,
            font=font,
            fill=colour,
            spacing=spacing,
            align="center",
        )
    draw.text(
        (size * 0.03, size * 0.95),
        f"SharkAPI simulator · {mode}",
        font=_font(size // 48),
        fill=_rgb(hue, 0.2, 0.85),
    )

    out = io.BytesIO()
    image.save(out, format="JPEG", quality=_QUALITY)
    return out.getvalue()
