# ddpg-cli in a container: `docker run --rm -v "$PWD/runs:/runs" ddpg-cli train configs/smoke.yaml`
#
#   docker build -t ddpg-cli .                                   # CPU PyTorch (the default)
#   docker build -t ddpg-cli:cu130 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 .   # a CUDA build of torch
#
# The working directory /opt/ddpg-cli holds the shipped configs/ and a link `runs -> /runs`, so the
# relative paths of the README work unchanged in the container and every run lands on the /runs volume.
# tests/test_dockerfile.py checks this file statically (and runs hadolint on it when it is installed).

# Pinned by tag; to pin the exact bytes too, append the digest that
# `docker buildx imagetools inspect python:3.11.16-slim-bookworm` prints (FROM python:3.11.16-slim-bookworm@sha256:...).
FROM python:3.11.16-slim-bookworm

# Which wheel index torch comes from: .../whl/cpu (small, the default) or a CUDA one such as .../whl/cu130.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Must satisfy the pin in pyproject.toml (torch>=2.13.0,<2.13.1).
ARG TORCH_VERSION=2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    SDL_VIDEODRIVER=dummy \
    SDL_AUDIODRIVER=dummy

# torch first, from the chosen index, in its own layer (the largest and the least often changed);
# installing the package next keeps it, because any 2.13.0 build satisfies the pin.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# The package with the extras `ddpg render` and `ddpg export` need (configs/ installs as its presets);
# the sources are removed again.
COPY pyproject.toml README.md /tmp/ddpg-cli/
COPY ddpg_cli/ /tmp/ddpg-cli/ddpg_cli/
COPY configs/ /tmp/ddpg-cli/configs/
RUN pip install --no-cache-dir "/tmp/ddpg-cli[render,export]" \
    && rm -rf /tmp/ddpg-cli \
    && ddpg --version

# An unprivileged user (uid 10001, numeric below so that runAsNonRoot can verify it) owns the runs
# volume and nothing else.
RUN useradd --create-home --no-log-init --uid 10001 --user-group --shell /usr/sbin/nologin ddpg \
    && mkdir -p /runs /opt/ddpg-cli \
    && chown ddpg:ddpg /runs \
    && ln -s /runs /opt/ddpg-cli/runs
COPY configs/ /opt/ddpg-cli/configs/

WORKDIR /opt/ddpg-cli
VOLUME /runs
USER 10001:10001

# Exec form: `ddpg` is PID 1 and receives docker stop's SIGTERM itself, saves a checkpoint and exits 143.
ENTRYPOINT ["ddpg"]
CMD ["--help"]
