"""The captcha as a QR code drawn with text, for a terminal: segno (python3-segno) when installed."""

from __future__ import annotations

import io

__all__ = ["terminal_qr"]


def terminal_qr(payload: str) -> list[str]:
    """Lines that draw ``payload`` as a QR code with half-block characters; [] without segno.

    Two modules a character (upper and lower half blocks) and error level L (a screen is not a
    scuffed label; segno raises it when the size allows) keep a captcha of 400 characters within
    80 columns; the quiet zone is light on a dark terminal, which phone scanners read.
    """
    try:
        import segno
    except ImportError:
        return []
    matrix = [list(row) for row in segno.make(payload, error="l").matrix_iter(scale=1, border=2)]
    if len(matrix) % 2:
        matrix.append([0] * len(matrix[0]))
    out = io.StringIO()
    glyph = {(0, 0): "\u2588", (1, 0): "\u2584", (0, 1): "\u2580", (1, 1): " "}
    for top, bottom in zip(matrix[::2], matrix[1::2], strict=True):
        out.write("".join(glyph[(bool(t), bool(b))] for t, b in zip(top, bottom, strict=True)) + "\n")
    return out.getvalue().splitlines()
