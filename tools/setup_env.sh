#!/usr/bin/env bash
# Create ./.venv with the pinned OpenMMLab stack and the plugin installed editable.
#
#   bash tools/setup_env.sh [lite|ops]
#     lite  mmcv-lite 2.1.0: pure Python, no compiled ops, all classification needs (mmpretrain
#           1.2.0 imports nothing from mmcv.ops); installs in seconds (make env, make demo).
#     ops   mmcv 2.1.0 with its compiled ops, which mmdet needs (make env-det, make test,
#           make demo-det). PyPI has only its sdist: the wheel is built once per machine and
#           cached in $DEIT_PLUGIN_CACHE (default ~/.cache/deit_plugin), outside the clone.
#     (no argument) keep the flavour .venv has; lite when it has none.
# Both provide the import package mmcv; switching replaces one by the other.
#
# Idempotent: does nothing when .venv already matches requirements/pinned.txt, this script and
# setup.cfg (a stamp file holds their hash and the mmcv flavour). VENV=path sets up another
# environment than ./.venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
CACHE="${DEIT_PLUGIN_CACHE:-$HOME/.cache/deit_plugin}"
WHEELS="$CACHE/wheels"
REQ="$ROOT/requirements/pinned.txt"
MMCV_VERSION=2.1.0
STAMP="$VENV/.deit_plugin_stamp"

log() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

want="${1:-}"
case "$want" in
    ''|lite|ops) ;;
    *) die "unknown argument '$want': lite (mmcv-lite, classification), ops (mmcv with" \
           "its compiled ops, detection), or none (keep what .venv has)." ;;
esac

stamp_value=$(cat "$REQ" "$ROOT/tools/setup_env.sh" "$ROOT/setup.cfg" | sha256sum | cut -d' ' -f1)
stamp_hash='' stamp_flavour=''
if [[ -f "$STAMP" ]]; then
    read -r stamp_hash stamp_flavour <"$STAMP" || true
fi
if [[ "$stamp_hash" == "$stamp_value" && -n "$stamp_flavour" \
      && ( -z "$want" || "$want" == "$stamp_flavour" ) ]]; then
    exit 0
fi

start=$(date +%s)
command -v "$PY_BOOT" >/dev/null \
    || die "no $PY_BOOT on PATH: install Python 3.11 (set PYTHON=... to pick another)."
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV"
    "$PY_BOOT" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
# pip warns about every extra index location that lacks a package: noise, not errors.
quiet_pip() { "${PIP[@]}" "$@" 2> >(grep -v 'is ignored: it is neither' >&2); }
pip_has() { "${PIP[@]}" show -q "$1" >/dev/null 2>&1; }

# The flavour: the one asked for, else the one .venv has (its stamp, else pip), else lite.
flavour="${want:-$stamp_flavour}"
if [[ -z "$flavour" ]] && pip_has mmcv; then
    flavour=ops
fi
flavour="${flavour:-lite}"

mmcv_wheel=$(ls "$WHEELS"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n 1 || true)
if [[ "$flavour" == ops && -z "$mmcv_wheel" ]]; then
    cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
    if [[ -f "$CACHE/mmcv-build-seconds" ]]; then
        took="about $(( $(cat "$CACHE/mmcv-build-seconds") / 60 + 1 )) min (as here before)"
    else
        took="7-15 min on 2 cores (6.8 min on an AMD EPYC Zen 4, 14.7 min on an AMD EPYC"
        took+=" with AVX2 only), less on more cores"
    fi
    log "detection needs mmcv ${MMCV_VERSION} with its compiled ops, not built on this machine yet."
    log "  Building it takes $took; this CPU: ${cpu:-unknown}, $(nproc) cores."
    log "  It happens once: the wheel is cached in $WHEELS and installs in seconds afterwards."
fi

if [[ "$stamp_hash" != "$stamp_value" ]]; then
    log "installing the pinned stack from requirements/pinned.txt" \
        "(torch is large: a few minutes the first time)"
    # --no-compile: byte-compiling all of torch & co. up front cost ~40 s here; Python compiles
    # the modules it actually imports on first use instead.
    quiet_pip install --progress-bar off -q "setuptools>=77.0.3,<81" wheel
    quiet_pip install --progress-bar off --no-compile -r "$REQ" \
        | grep -E '^(Collecting|Successfully)' | sed 's/^/[setup_env]   /' || true
    "$PY" - <<'EOF' || die "the pinned stack did not install (see pip output above)."
import torch, torchvision, mmengine, timm, numpy  # noqa: F401  (mmpretrain/mmdet need mmcv)
EOF
fi

if [[ "$flavour" == lite ]]; then
    # mmcv and mmcv-lite both install site-packages/mmcv: remove the other one first
    if pip_has mmcv; then
        log "removing mmcv with ops (switching to mmcv-lite; \`make env-det\` switches back)"
        "${PIP[@]}" uninstall -y -q mmcv
    fi
    if ! pip_has mmcv-lite; then
        log "installing mmcv-lite ${MMCV_VERSION} (no compiled ops: classification only)"
        quiet_pip install --progress-bar off -q "mmcv-lite==${MMCV_VERSION}" -c "$REQ" \
            || die "could not install mmcv-lite ${MMCV_VERSION} from the package index."
    fi
else
    mkdir -p "$WHEELS"
    if [[ -z "$mmcv_wheel" ]]; then
        log "building mmcv ${MMCV_VERSION} with ops"
        build_start=$(date +%s)
        build=$(mktemp -d)
        trap 'rm -rf "$build"' EXIT
        # Fetch the sdist. pip prepares its metadata by running setup.py, which imports torch
        # and pkg_resources: do it inside the venv, without build isolation (an isolated env
        # would pull setuptools>=81, which has no pkg_resources).
        quiet_pip download --no-deps --no-build-isolation --no-binary mmcv \
            "mmcv==${MMCV_VERSION}" -d "$build" -q \
            || die "could not download the mmcv ${MMCV_VERSION} sdist from PyPI."
        tar -xzf "$build"/mmcv-${MMCV_VERSION}.tar.gz -C "$build"
        src="$build/mmcv-${MMCV_VERSION}"
        # Upstream bug workaround: mmcv 2.1.0 setup.py (line ~207, get_extensions) hard-codes
        # '-std=c++17'; torch>=2.10 headers stop with "#error C++20 or later compatible
        # compiler is required to use ATen". Build with c++20 instead.
        grep -q -- '-std=c++17' "$src/setup.py" \
            || die "mmcv setup.py no longer has -std=c++17: re-check the c++20 patch."
        sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
        logf="$build/build.log"
        (
            cd "$src"
            # -g0: no debug info (6m49s and a 2 MB wheel instead of 27 min and 32 MB).
            CFLAGS="-g0" CXXFLAGS="-g0" MMCV_WITH_OPS=1 MAX_JOBS=2 FORCE_CUDA=0 \
                "$PY" -m pip wheel --no-deps --no-build-isolation -v . -w "$build/dist" \
                >"$logf" 2>&1
        ) &
        pid=$!
        # CPU-only build: the sources under csrc/pytorch and csrc/pytorch/cpu
        total=$(find "$src/mmcv/ops/csrc/pytorch" -maxdepth 2 -name '*.cpp' -not -path '*/cuda/*' \
            -not -path '*/npu/*' -not -path '*/mlu/*' -not -path '*/mps/*' | wc -l)
        while kill -0 "$pid" 2>/dev/null; do
            done_n=$(grep -c -E '(g\+\+|c\+\+|gcc).* -c .*\.cpp' "$logf" 2>/dev/null || true)
            log "  mmcv build: ${done_n} of ~${total} C++ sources compiled," \
                "$(( $(date +%s) - build_start ))s elapsed"
            sleep 30
        done
        if ! wait "$pid"; then
            tail -n 40 "$logf" >&2
            die "building mmcv ${MMCV_VERSION} failed (last lines above). It needs gcc/g++ >= 10" \
                "and the Python headers."
        fi
        cp "$build"/dist/mmcv-${MMCV_VERSION}-*.whl "$WHEELS"/
        echo $(( $(date +%s) - build_start )) >"$CACHE/mmcv-build-seconds"
        mmcv_wheel=$(ls "$WHEELS"/mmcv-${MMCV_VERSION}-*.whl | head -n 1)
        log "cached $mmcv_wheel (built in $(( $(date +%s) - build_start ))s)"
    fi
    if pip_has mmcv-lite; then
        log "removing mmcv-lite (switching to mmcv with ops)"
        "${PIP[@]}" uninstall -y -q mmcv-lite
    fi
    log "installing $(basename "$mmcv_wheel")"
    quiet_pip install --progress-bar off -q "$mmcv_wheel" -c "$REQ"
fi
if [[ "$stamp_hash" != "$stamp_value" ]]; then
    quiet_pip install --progress-bar off -q --no-deps --no-build-isolation -e "$ROOT"
fi
"$PY" - "$flavour" <<'EOF' || die "the environment is incomplete (see the traceback above)."
import importlib.util
import sys

import mmcv, mmdet, mmpretrain.models, deit_plugin  # noqa: F401,E401
assert mmcv.__version__ == '2.1.0', mmcv.__version__
has_ops = importlib.util.find_spec('mmcv._ext') is not None
assert has_ops == (sys.argv[1] == 'ops'), f'mmcv with compiled ops: {has_ops}, wanted {sys.argv[1]}'
if has_ops:
    import mmcv.ops  # noqa: F401
EOF
echo "$stamp_value $flavour" >"$STAMP"
log "environment ready in $(( $(date +%s) - start ))s: $VENV (mmcv: $flavour)"
