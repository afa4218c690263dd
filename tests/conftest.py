import os

# Before any test module imports torch: the package sets MKL's reproducibility mode on import, and MKL
# reads it only once, when torch loads it (ddpg_cli/reproducibility.py).
import ddpg_cli  # noqa: F401

# Headless rendering everywhere in the tests: pygame's dummy video driver, MuJoCo's EGL.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MUJOCO_GL", "egl")
