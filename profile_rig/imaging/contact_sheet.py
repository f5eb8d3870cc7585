"""A labelled grid of package views, drawn with numpy only (works inside Blender's Python)."""

from __future__ import annotations

import math

import numpy as np

# 5x7 bitmap glyphs, one string of 7 rows of 5 bits each ('#' = ink).
_GLYPHS: dict[str, tuple[str, ...]] = {
    "a": (".....", ".....", ".###.", "....#", ".####", "#...#", ".####"),
    "b": ("#....", "#....", "####.", "#...#", "#...#", "#...#", "####."),
    "c": (".....", ".....", ".####", "#....", "#....", "#....", ".####"),
    "d": ("....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"),
    "e": (".....", ".....", ".###.", "#...#", "#####", "#....", ".###."),
    "f": ("..##.", ".#...", "####.", ".#...", ".#...", ".#...", ".#..."),
    "g": (".....", ".####", "#...#", "#...#", ".####", "....#", ".###."),
    "h": ("#....", "#....", "####.", "#...#", "#...#", "#...#", "#...#"),
    "i": ("..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."),
    "j": ("...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."),
    "k": ("#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."),
    "l": (".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "m": (".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#"),
    "n": (".....", ".....", "####.", "#...#", "#...#", "#...#", "#...#"),
    "o": (".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."),
    "p": (".....", "####.", "#...#", "#...#", "####.", "#....", "#...."),
    "q": (".....", ".####", "#...#", "#...#", ".####", "....#", "....#"),
    "r": (".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."),
    "s": (".....", ".....", ".####", "#....", ".###.", "....#", "####."),
    "t": (".#...", ".#...", "####.", ".#...", ".#...", ".#..#", "..##."),
    "u": (".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"),
    "v": (".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "w": (".....", ".....", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "x": (".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"),
    "y": (".....", "#...#", "#...#", "#...#", ".####", "....#", ".###."),
    "z": (".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"),
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("####.", "....#", "....#", ".###.", "....#", "....#", "####."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    "-": (".....", ".....", ".....", ".###.", ".....", ".....", "....."),
    "+": (".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    "_": (".....", ".....", ".....", ".....", ".....", ".....", "#####"),
    "/": ("....#", "...#.", "...#.", "..#..", ".#...", ".#...", "#...."),
    "(": ("...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."),
    ")": (".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."),
    "=": (".....", ".....", "#####", ".....", "#####", ".....", "....."),
    " ": (".....",) * 7,
}
_UNKNOWN = ("#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####")


def draw_text(canvas: np.ndarray, text: str, x: int, y: int, scale: int = 2, color=(0, 0, 0)) -> None:
    """Draw ``text`` (lower-cased) into an HxWx3 uint8 canvas, clipped at the edges."""
    height, width = canvas.shape[:2]
    for index, char in enumerate(text.lower()):
        glyph = _GLYPHS.get(char, _UNKNOWN)
        gx = x + index * 6 * scale
        for row, bits in enumerate(glyph):
            for col, bit in enumerate(bits):
                if bit != "#":
                    continue
                x0, y0 = gx + col * scale, y + row * scale
                x1, y1 = min(x0 + scale, width), min(y0 + scale, height)
                if x0 < width and y0 < height and x1 > 0 and y1 > 0:
                    canvas[max(y0, 0) : y1, max(x0, 0) : x1] = color


def text_width(text: str, scale: int = 2) -> int:
    return len(text) * 6 * scale


def resize_area(image: np.ndarray, size: int) -> np.ndarray:
    """Box-filter resize to size x size (square input expected; pads non-square with white)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(image.astype(np.float64) / (65535.0 if image.dtype == np.uint16 else 1.0) * 255 + 0.5, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    side = max(h, w)
    if h != w:
        padded = np.full((side, side, 3), 255, np.uint8)
        padded[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = image
        image = padded
    # sample at the target grid with area averaging via integral image
    edges = np.linspace(0, side, size + 1)
    idx = np.clip(np.round(edges).astype(int), 0, side)
    integral = np.zeros((side + 1, side + 1, 3), np.float64)
    integral[1:, 1:] = image.astype(np.float64).cumsum(0).cumsum(1)
    start = np.minimum(idx[:-1], side - 1)
    stop = np.minimum(np.maximum(idx[1:], start + 1), side)
    y0, y1 = start[:, None], stop[:, None]
    x0, x1 = start[None, :], stop[None, :]
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = ((y1 - y0) * (x1 - x0))[..., None]
    return np.clip(total / area + 0.5, 0, 255).astype(np.uint8)


MAX_LABEL_LINES = 2


def label_lines(label: str, max_chars: int) -> list[str]:
    """Break a tile label into at most two lines that fit (at a space when there is one), so the
    end of a long view name and its angles are not cut off; what still does not fit ends in '..'."""
    lines: list[str] = []
    rest = label.strip()
    while rest and len(lines) < MAX_LABEL_LINES:
        if len(rest) <= max_chars:
            lines.append(rest)
            rest = ""
            break
        cut = rest.rfind(" ", 1, max_chars + 1)
        cut = cut if cut > 0 else max_chars
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    if rest and max_chars > 2:
        lines[-1] = lines[-1][: max_chars - 2] + ".."
    return lines or [""]


def make_contact_sheet(
    images: list[np.ndarray], labels: list[str], *, tile: int = 240, title: str = "", columns: int | None = None
) -> np.ndarray:
    """Tiles of every view with a label under each; returns an HxWx3 uint8 image."""
    if len(images) != len(labels):
        raise ValueError("one label per image")
    if not images:
        raise ValueError("no images for a contact sheet")
    columns = columns or min(len(images), max(1, math.ceil(math.sqrt(len(images) * 1.5))))
    rows = math.ceil(len(images) / columns)
    scale = 2 if tile >= 200 else 1
    max_chars = max(1, tile // (6 * scale))
    wrapped = [label_lines(label, max_chars) for label in labels]
    label_h = max(len(lines) for lines in wrapped) * 9 * scale + 8 - scale
    title_h = (8 * scale + 12) if title else 0
    gap = 6
    sheet = np.full(
        (title_h + rows * (tile + label_h + gap) + gap, columns * (tile + gap) + gap, 3), 235, np.uint8
    )
    if title:
        draw_text(sheet, title, gap, 6, scale)
    for i, (image, lines) in enumerate(zip(images, wrapped, strict=True)):
        r, c = divmod(i, columns)
        x = gap + c * (tile + gap)
        y = title_h + gap + r * (tile + label_h + gap)
        sheet[y : y + tile, x : x + tile] = resize_area(image, tile)
        for line_index, line in enumerate(lines):
            draw_text(sheet, line, x + 2, y + tile + 4 + line_index * 9 * scale, scale)
    return sheet
