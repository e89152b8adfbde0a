"""Procedural images for MMU-Synth: a shape with colours and a texture on a background.

An entity's *visual identity* is a (shape, colour, background, texture) tuple; a *view* is
one rendering of it under a random augmentation (position, size, rotation, brightness,
noise). Training views and held-out views are drawn from the same augmentation family
with different random streams, like MLLMU-Bench's Test_Set holds other photos of a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
TEXTURES = ("solid", "stripes", "dots", "checks")
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 170, 60),
    "teal": (30, 160, 160),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "pink": (240, 130, 190),
    "brown": (130, 80, 40),
    "gray": (128, 128, 128),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
}


@dataclass(frozen=True)
class Identity:
    shape: str
    colour: str
    background: str
    texture: str

    def as_tuple(self) -> tuple[str, str, str, str]:
        return (self.shape, self.colour, self.background, self.texture)


def _shape_mask(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inside-test on coordinates scaled so that the shape's radius is 1 (y points up)."""
    rho = np.hypot(x, y)
    if shape == "circle":
        return rho <= 1.0
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= 0.85
    if shape == "diamond":
        return np.abs(x) + np.abs(y) <= 1.1
    if shape == "triangle":
        return (y >= -0.6) & (np.abs(x) <= (0.95 - y) / np.sqrt(3.0))
    if shape == "star":
        theta = np.arctan2(y, x) - np.pi / 2
        return rho <= 0.55 + 0.45 * np.cos(5 * theta)
    if shape == "cross":
        return ((np.abs(x) <= 0.33) & (np.abs(y) <= 1.0)) | ((np.abs(y) <= 0.33) & (np.abs(x) <= 1.0))
    if shape == "ring":
        return (rho <= 1.0) & (rho >= 0.55)
    if shape == "hexagon":
        h = np.sqrt(3.0) / 2
        return (np.abs(y) <= h) & (h * np.abs(x) + 0.5 * np.abs(y) <= h)
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def _texture_mask(texture: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where the darker texture colour replaces the shape colour."""
    if texture == "solid":
        return np.zeros_like(x, dtype=bool)
    if texture == "stripes":
        return np.floor((y + 2.0) * 2.5).astype(int) % 2 == 0
    if texture == "dots":
        gx = (x + 2.0) * 2.0
        gy = (y + 2.0) * 2.0
        return np.hypot(gx - np.floor(gx) - 0.5, gy - np.floor(gy) - 0.5) <= 0.28
    if texture == "checks":
        return (np.floor((x + 2.0) * 2.0).astype(int) + np.floor((y + 2.0) * 2.0).astype(int)) % 2 == 0
    raise ValueError(f"unknown texture {texture!r}; known: {', '.join(TEXTURES)}")


def render(identity: Identity, rng: np.random.Generator | None, size: int = 32) -> Image.Image:
    """Draw one view. ``rng=None`` gives the canonical, unaugmented view."""
    if rng is None:
        dx = dy = angle = 0.0
        scale, brightness, noise = 0.9, 1.0, 0.0
    else:
        dx, dy = rng.uniform(-0.18, 0.18, size=2)
        scale = rng.uniform(0.72, 1.0)
        angle = rng.uniform(-0.35, 0.35)
        brightness = rng.uniform(0.85, 1.15)
        noise = 6.0
    # Pixel centres in [-1, 1], y up; then the inverse of the view transform.
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    gx, gy = np.meshgrid(coords, -coords)
    gx, gy = gx - dx, gy - dy
    cos, sin = np.cos(angle), np.sin(angle)
    x = (cos * gx + sin * gy) / (0.8 * scale)
    y = (-sin * gx + cos * gy) / (0.8 * scale)

    img = np.empty((size, size, 3), dtype=np.float64)
    img[:] = COLOURS[identity.background]
    fg = np.asarray(COLOURS[identity.colour], dtype=np.float64)
    inside = _shape_mask(identity.shape, x, y)
    img[inside] = fg
    img[inside & _texture_mask(identity.texture, x, y)] = fg * 0.45
    img *= brightness
    if noise:
        img += rng.normal(0.0, noise, size=img.shape)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), mode="RGB")
