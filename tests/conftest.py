import os

# Headless rendering everywhere in the tests: pygame's dummy video driver, MuJoCo's EGL.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MUJOCO_GL", "egl")
