"""Choosing MuJoCo's OpenGL backend on a machine without a display."""

import os
import subprocess
import sys

import pytest

from forethought.envs.headless import choose_headless_gl


def libraries(*found):
    return lambda name: f"lib{name}.so.1" if name in found else None


def test_no_display_picks_egl_then_osmesa():
    environ = {}
    assert choose_headless_gl(environ, "linux", libraries("EGL", "OSMesa")) == "egl" and environ == {"MUJOCO_GL": "egl"}
    environ = {}
    assert choose_headless_gl(environ, "linux", libraries("OSMesa")) == "osmesa" and environ["MUJOCO_GL"] == "osmesa"
    environ = {}
    assert choose_headless_gl(environ, "linux", libraries()) is None and environ == {}


@pytest.mark.parametrize("environ", [{"MUJOCO_GL": "glfw"}, {"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}])
def test_a_display_or_a_chosen_backend_is_left_alone(environ):
    before = dict(environ)
    assert choose_headless_gl(environ, "linux", libraries("EGL")) is None and environ == before


def test_other_systems_are_left_alone():
    environ = {}
    assert choose_headless_gl(environ, "darwin", libraries("EGL")) is None and environ == {}


def test_a_mujoco_frame_renders_headless_without_glfw_warnings():
    """In a fresh process with no display: importing forethought.envs picks the backend before
    MuJoCo loads, and a MuJoCo task and a DeepMind Control task render a frame."""
    code = ("from forethought.envs import make\n"
            "import os\n"
            "for name, kw in (('InvertedPendulum-v5', {'width': 32, 'height': 32}),"
            " ('dm_control/cartpole-swingup-v0', {'render_kwargs': {'width': 32, 'height': 32}})):\n"
            "    env = make(name, render_mode='rgb_array', **kw); env.reset(seed=0)\n"
            "    frame = env.render(); assert frame.shape == (32, 32, 3) and frame.std() > 0, name\n"
            "print(os.environ['MUJOCO_GL'])\n")
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL",
                                                                 "PYOPENGL_PLATFORM")}
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "cannot be imported" in done.stderr and "shimmy" in done.stderr:
        pytest.skip("DeepMind Control is not installed")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("egl", "osmesa") and "GLFW" not in done.stderr
