"""MuJoCo's OpenGL backend on a machine without a display.

MuJoCo (and DeepMind Control) pick their OpenGL backend from ``MUJOCO_GL`` when first imported,
and default to GLFW, which needs a display: without one, rendering fails and GLFW warns. So
before anything imports MuJoCo, a Linux machine with neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``
nor ``MUJOCO_GL`` set gets ``MUJOCO_GL=egl`` where an EGL library is installed (Mesa's
``libegl1``, or a GPU driver's), else ``osmesa`` where OSMesa is (``libosmesa6``). A backend the
user set is never changed.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from typing import MutableMapping

# Backends in order of preference, each with the shared library it loads.
HEADLESS_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))


def choose_headless_gl(environ: MutableMapping[str, str] = os.environ, platform: str = sys.platform,
                       find_library=ctypes.util.find_library) -> str | None:
    """Set ``environ["MUJOCO_GL"]`` to a headless backend when there is no display and none was
    chosen; returns the backend set, or None when nothing was changed (a display, a backend the
    user chose, not Linux, or no headless library found)."""
    if not platform.startswith("linux") or any(environ.get(k) for k in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")):
        return None
    for backend, library in HEADLESS_BACKENDS:
        if find_library(library):
            environ["MUJOCO_GL"] = backend
            return backend
    return None
