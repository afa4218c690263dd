#!/usr/bin/env bash
# The container image, built and run: builds the repository's Dockerfile and runs the README's Docker
# section through the image, as a user would. .ci/run runs it after the smoke gate.
#
#   tests/container/test-image.sh [OUTSIDE_RUN]   # OUTSIDE_RUN: a configs/smoke.yaml run trained
#                                                 # outside the container, whose final return the
#                                                 # container's must equal
#
# The engine is Podman, installed with apt-get where it is missing and we are root, or else a running
# Docker. Where the official base image cannot be pulled, stand-in-base.sh builds a stand-in under
# its name (once: an engine whose image store survives keeps it). Where PyTorch's CPU wheel index
# cannot be reached, the torch wheel the host's pip resolves is served to the build from 127.0.0.1.
# Every failure ends with one line saying what broke.
set -uo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
repo="$PWD"

image=ddpg-cli:ci
container=ddpg-ci-stop
volume=ddpg-ci-runs
torch_version="$(awk -F= '/^ARG TORCH_VERSION=/ {print $2}' Dockerfile)"
base="docker.io/library/$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)"

fail() { echo "container test FAILED: $*" >&2; exit 1; }

# --- an engine ---------------------------------------------------------------------------------------

if ! command -v podman >/dev/null && ! docker info >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    SECONDS=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap; } >/dev/null 2>&1 \
        && echo "installed Podman in ${SECONDS}s" || echo "could not install Podman with apt-get"
fi
if command -v podman >/dev/null && [ "$(id -u)" = 0 ]; then
    # Root Podman in a VM without systemd or its own network: runc, cgroupfs, the host's network, and
    # no default ulimits (the VM's limits are already the ceiling).
    export CONTAINERS_CONF="$(mktemp)"
    printf '[containers]\ndefault_ulimits = []\nnetns = "host"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' >"$CONTAINERS_CONF"
fi
if command -v podman >/dev/null && podman info >/dev/null 2>&1; then
    engine=podman
elif docker info >/dev/null 2>&1; then
    engine=docker
else
    echo "container test skipped: neither Podman nor Docker runs here (as root: apt-get install podman runc debootstrap; or start a Docker daemon)"
    exit 0
fi

work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    $engine rm -f "$container" >/dev/null 2>&1
    $engine volume rm -f "$volume" >/dev/null 2>&1
    rm -rf "$work" "${CONTAINERS_CONF:-}"
}
trap cleanup EXIT
echo "container test with $($engine --version)"

# --- the base and the image --------------------------------------------------------------------------

if ! $engine image inspect "$base" >/dev/null 2>&1 && ! $engine pull -q "$base" >/dev/null 2>&1; then
    echo "$base cannot be pulled: building the stand-in (tests/container/stand-in-base.sh)"
    SECONDS=0
    command -v debootstrap >/dev/null || fail "the stand-in base needs debootstrap (apt-get install debootstrap)"
    tests/container/stand-in-base.sh "$engine" || fail "the stand-in base did not build"
    echo "stand-in base built in ${SECONDS}s"
fi

build_args=(--network host)
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!name:-}" ] && build_args+=(--build-arg "$name=${!name}")
done
if ! python3 -c 'import urllib.request; urllib.request.urlopen("https://download.pytorch.org/whl/cpu/", timeout=10)' 2>/dev/null; then
    # A PEP 503 index of one project directory per wheel: torch and its dependencies.
    wheels="$work/wheels"
    python3 -m pip download -q "torch==$torch_version" --only-binary :all: -d "$wheels/dl" 2>"$work/download.log" \
        || fail "PyTorch's CPU index is unreachable and pip could not download torch==$torch_version here either"
    grep -q '+cpu' <<<"$(ls "$wheels/dl")" || fail "PyTorch's CPU index is unreachable and the torch pip downloads here is not a CPU build"
    for wheel in "$wheels"/dl/*.whl; do
        project="$(basename "$wheel" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')"
        mkdir -p "$wheels/simple/$project" && mv "$wheel" "$wheels/simple/$project/"
    done
    port="${WHEEL_PORT:-8765}"
    python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$port" >/dev/null 2>&1 &
    server=$!
    sleep 1
    kill -0 "$server" 2>/dev/null || fail "could not serve the torch wheel on 127.0.0.1:$port (set WHEEL_PORT to a free port)"
    build_args+=(--build-arg "TORCH_INDEX_URL=http://127.0.0.1:$port/simple")
    echo "torch from the local wheel $(ls "$wheels"/simple/torch/)"
fi

SECONDS=0
$engine build -q -t "$image" "${build_args[@]}" . >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log"; fail "the image did not build from the Dockerfile (the build's last lines are above)"; }
build_s=$SECONDS
size_mb=$(( $($engine image inspect --format '{{.Size}}' "$image") / 1000000 ))
echo "image $image built in ${build_s}s, ${size_mb} MB"

# --- the README's Docker section -----------------------------------------------------------------------

# run WHAT ARGS...: the engine's `run --rm ARGS`, its output in $out; fails with WHAT unless it exits 0.
run() {
    local what="$1"; shift
    out="$(timeout 600 $engine run --rm "$@" 2>&1)" || { echo "$out" | tail -n 20; fail "$what"; }
}

cd "$work"
mkdir -p runs

run "the default command (no arguments) failed" "$image"
grep -q "Usage: ddpg" <<<"$out" || fail "the default command is not --help: it printed no 'Usage: ddpg'"

run "ddpg configs failed" "$image" configs --json
presets="$(python3 -c 'import json, sys; print(" ".join(sorted(p["name"] for p in json.load(sys.stdin)["presets"])))' <<<"$out")"
expected="$(cd "$repo/configs" && ls *.yaml | sed 's/\.yaml$//' | sort | xargs)"
[ "$presets" = "$expected" ] || fail "image lacks the presets: ddpg configs listed '${presets:-none}', configs/ holds '$expected'"

# Smoke training into the mounted ./runs, as yourself (the README's command for a bind mount on Linux).
me=(--user "$(id -u):$(id -g)" -v "$PWD/runs:/runs")
run "smoke training into the mounted ./runs failed" "${me[@]}" "$image" train configs/smoke.yaml
smoke="$(ls -d runs/Pendulum-v1-seed0-* 2>/dev/null | head -n 1)"
[ -f "$smoke/summary.json" ] || fail "smoke training left no run with a summary.json in the mounted ./runs"
final() { python3 -c 'import json, sys; print("%.2f" % json.load(open(sys.argv[1]))["final_eval"]["mean"])' "$1/summary.json"; }
echo "smoke training in the container: final return $(final "$smoke")"
if [ -n "${1:-}" ]; then
    [ "$(final "$smoke")" = "$(final "$1")" ] || fail "the container's smoke run ends at $(final "$smoke"), the one outside at $(final "$1")"
fi

run "eval --min-return -400 failed on the smoke run" "${me[@]}" "$image" eval "$smoke" --min-return -400 --json
timeout 300 $engine run --rm "${me[@]}" "$image" eval "$smoke" --min-return 0 >/dev/null 2>&1
[ $? = 1 ] || fail "eval --min-return 0 did not fail the gate (exit 1) on the smoke run"

run "export --format onnx failed" "${me[@]}" "$image" export "$smoke" --format onnx
[ -s "$smoke/export/policy.onnx" ] || fail "export wrote no $smoke/export/policy.onnx"

run "render to a GIF failed" "${me[@]}" "$image" render "$smoke" --out "$smoke/pendulum.gif"
[ "$(head -c 4 "$smoke/pendulum.gif" 2>/dev/null)" = "GIF8" ] || fail "render wrote no GIF at $smoke/pendulum.gif"

# The default (unprivileged) user on a named volume: stop during training, then resume to the end.
$engine volume rm -f "$volume" >/dev/null 2>&1
# 20,000 steps rather than the smoke config's 5,000: the stop must land while training still runs, and
# on a loaded machine the 2,500 steps after the first evaluation took less time than the podman calls.
$engine run -d --name "$container" -v "$volume:/runs" "$image" train configs/smoke.yaml --run-dir runs/stopped --set train.total_steps=20000 >/dev/null \
    || fail "could not start training in a container on a named volume"
# Stop at the first evaluation (step 2,500), surely inside the training loop: before it, as PID 1,
# ddpg has no SIGTERM handler yet and would ignore the signal (the README says so).
for _ in $(seq 240); do
    $engine logs "$container" 2>&1 | grep "eval return" >/dev/null && break
    sleep 0.5
done
$engine logs "$container" 2>&1 | grep "eval return" >/dev/null \
    || { $engine logs "$container" 2>&1 | tail -n 5; fail "training on the named volume reached no evaluation within 120 s"; }
pid1="$($engine exec "$container" cat /proc/1/cmdline | tr '\0' ' ')"
[[ "$pid1" == *bin/ddpg\ train* ]] || fail "ddpg is not PID 1 in the container (PID 1 is: $pid1)"
$engine stop -t 60 "$container" >/dev/null
code="$($engine wait "$container")"
[ "$code" = 143 ] || { $engine logs "$container" 2>&1 | tail -n 10; fail "stop during training: exit $code, not 143"; }
for _ in $(seq 10); do  # the engine may hand over the last lines a moment after the exit
    $engine logs "$container" 2>&1 | grep "stopped by SIGTERM" >/dev/null && break
    sleep 0.5
done
$engine logs "$container" 2>&1 | grep "stopped by SIGTERM" >/dev/null \
    || { $engine logs "$container" 2>&1 | tail -n 5; fail "stop during training exited 143 without saying 'stopped by SIGTERM'"; }
$engine rm "$container" >/dev/null
run "no checkpoints/last.pt on the named volume after stop" -v "$volume:/runs" --entrypoint test "$image" -f runs/stopped/checkpoints/last.pt
run "the named volume's run is not owned by the image's user (uid 10001)" -v "$volume:/runs" --entrypoint sh "$image" -c '[ "$(stat -c %u runs/stopped/checkpoints/last.pt)" = 10001 ]'
echo "stop: ddpg as PID 1 exited 143 with last.pt saved"

run "train --resume after stop failed" -v "$volume:/runs" "$image" train --resume runs/stopped --quiet
run "the resumed run has no summary.json of 20,000 steps" -v "$volume:/runs" --entrypoint grep "$image" -q '"steps": 20000' runs/stopped/summary.json
echo "resume: finished the stopped run on the named volume"

total_s=$(( $(date +%s) - started ))
echo "container test passed in ${total_s}s: image $image (${size_mb} MB, built in ${build_s}s) ran the README's Docker section"
