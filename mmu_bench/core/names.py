"""Names that end up in paths."""

from __future__ import annotations

import re


def safe_name(name: str) -> str:
    """A single safe path component: letters, digits, '.', '_' and '-' (others become '_');
    never empty, never '.' or '..'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".")
    return cleaned or "_"
