#!/usr/bin/env bash
# A stand-in for the Dockerfile's base image (python:3.11.16-slim-bookworm), built from Debian's own
# packages for machines that reach Debian's mirror and PyPI but not Docker Hub, as our CI machines do.
# It is tagged with the official name, so the repository's Dockerfile builds unchanged on top of it.
#
#   tests/container/stand-in-base.sh podman      # needs root, debootstrap and http://deb.debian.org
#
# What is the same: Debian bookworm, Python 3.11 with `python`, `python3` and `pip` on PATH from
# /usr/local/bin and packages installed into /usr/local/lib/python3.11/site-packages, `useradd`,
# CMD python3, LANG=C.UTF-8.
# What differs from the official image:
#   - Python is bookworm's python3.11 (3.11.2) in a virtual environment at /usr/local, not 3.11.16
#     built from source, and pip is the one Debian bundles (23.0);
#   - the packages are debootstrap's minbase set (about what debian:bookworm-slim holds) plus
#     python3.11-venv, python3-distutils and ca-certificates;
#   - the CA bundle is the build machine's, and pip is pointed at it (PIP_CERT), so that pip works
#     behind a TLS-inspecting proxy; the official image's pip trusts only its own certifi bundle.
set -euo pipefail
cd "$(dirname "$0")/../.."

engine="${1:?usage: $0 podman|docker}"
name="docker.io/library/$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

root="$(mktemp -d)"
trap 'rm -rf "$root" "$root.log"' EXIT

# python3-distutils provides python3.11-venv's python3.11-distutils, which debootstrap does not resolve.
debootstrap --variant=minbase --include=python3.11-venv,python3-distutils,ca-certificates bookworm "$root" "$mirror" \
    >/dev/null 2>&1 || { tail -n 20 "$root/debootstrap/debootstrap.log" >&2; exit 1; }
chroot "$root" python3.11 -m venv /usr/local
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc "$root"/usr/share/man

tar -C "$root" -c . | "$engine" import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    - "$name" >/dev/null 2>"$root.log" || { cat "$root.log" >&2; exit 1; }
echo "built the stand-in base $name"
