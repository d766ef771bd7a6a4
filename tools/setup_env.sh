#!/usr/bin/env bash
# Create ./.venv with the pinned OpenMMLab stack and the plugin installed editable.
#
# Idempotent: does nothing when .venv already matches requirements/pinned.txt and this script
# (a stamp file holds their hash). mmcv 2.1.0 has no wheel on PyPI, only an sdist, and its ops
# must be compiled; the wheel is built once per machine and cached in $DEIT_PLUGIN_CACHE
# (default ~/.cache/deit_plugin), outside the clone, so a fresh clone re-uses it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
CACHE="${DEIT_PLUGIN_CACHE:-$HOME/.cache/deit_plugin}"
WHEELS="$CACHE/wheels"
REQ="$ROOT/requirements/pinned.txt"
MMCV_VERSION=2.1.0

log() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

stamp_value=$(cat "$REQ" "$ROOT/tools/setup_env.sh" "$ROOT/setup.cfg" | sha256sum | cut -d' ' -f1)
if [[ -f "$VENV/.deit_plugin_stamp" && "$(cat "$VENV/.deit_plugin_stamp")" == "$stamp_value" ]]; then
    exit 0
fi

start=$(date +%s)
command -v "$PY_BOOT" >/dev/null || die "no $PY_BOOT on PATH: install Python 3.11 (set PYTHON=... to pick another)."
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV"
    "$PY_BOOT" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
# pip warns about every extra index location that lacks a package: noise, not errors.
quiet_pip() { "${PIP[@]}" "$@" 2> >(grep -v 'is ignored: it is neither' >&2); }

log "installing the pinned stack from requirements/pinned.txt (torch is large: a few minutes the first time)"
# --no-compile: byte-compiling all of torch & co. up front cost ~40 s here; Python compiles the
# modules it actually imports on first use instead.
quiet_pip install --progress-bar off -q "setuptools>=77.0.3,<81" wheel
quiet_pip install --progress-bar off --no-compile -r "$REQ" \
    | grep -E '^(Collecting|Successfully)' | sed 's/^/[setup_env]   /' || true
"$PY" - <<'EOF' || die "the pinned stack did not install (see pip output above)."
import torch, torchvision, mmengine, timm, numpy  # noqa: F401  (mmpretrain/mmdet need mmcv)
EOF

mkdir -p "$WHEELS"
mmcv_wheel=$(ls "$WHEELS"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z "$mmcv_wheel" ]]; then
    log "building mmcv ${MMCV_VERSION} with ops (once per machine, about 7 minutes on 2 cores)"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    # Fetch the sdist. pip prepares its metadata by running setup.py, which imports torch and
    # pkg_resources: do it inside the venv, without build isolation (an isolated env would pull
    # setuptools>=81, which has no pkg_resources).
    quiet_pip download --no-deps --no-build-isolation --no-binary mmcv \
        "mmcv==${MMCV_VERSION}" -d "$build" -q || die "could not download the mmcv ${MMCV_VERSION} sdist from PyPI."
    tar -xzf "$build"/mmcv-${MMCV_VERSION}.tar.gz -C "$build"
    src="$build/mmcv-${MMCV_VERSION}"
    # Upstream bug workaround: mmcv 2.1.0 setup.py (line ~207, get_extensions) hard-codes
    # '-std=c++17'; torch>=2.10 headers stop with "#error C++20 or later compatible compiler is
    # required to use ATen". Build with c++20 instead.
    grep -q -- '-std=c++17' "$src/setup.py" || die "mmcv setup.py no longer has -std=c++17: re-check the c++20 patch."
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    logf="$build/build.log"
    (
        cd "$src"
        # -g0: no debug info (6m49s and a 2 MB wheel instead of 27 min and 32 MB).
        CFLAGS="-g0" CXXFLAGS="-g0" MMCV_WITH_OPS=1 MAX_JOBS=2 FORCE_CUDA=0 \
            "$PY" -m pip wheel --no-deps --no-build-isolation -v . -w "$build/dist" >"$logf" 2>&1
    ) &
    pid=$!
    # CPU-only build: the sources under csrc/pytorch and csrc/pytorch/cpu
    total=$(find "$src/mmcv/ops/csrc/pytorch" -maxdepth 2 -name '*.cpp' -not -path '*/cuda/*' \
        -not -path '*/npu/*' -not -path '*/mlu/*' -not -path '*/mps/*' | wc -l)
    while kill -0 "$pid" 2>/dev/null; do
        done_n=$(grep -c -E '(g\+\+|c\+\+|gcc).* -c .*\.cpp' "$logf" 2>/dev/null || true)
        log "  mmcv build: ${done_n} of ~${total} C++ sources compiled, $(( $(date +%s) - start ))s elapsed"
        sleep 30
    done
    if ! wait "$pid"; then
        tail -n 40 "$logf" >&2
        die "building mmcv ${MMCV_VERSION} failed (last lines above). It needs gcc/g++ >= 10 and the Python headers."
    fi
    cp "$build"/dist/mmcv-${MMCV_VERSION}-*.whl "$WHEELS"/
    mmcv_wheel=$(ls "$WHEELS"/mmcv-${MMCV_VERSION}-*.whl | head -n 1)
    log "cached $mmcv_wheel"
fi
log "installing $(basename "$mmcv_wheel")"
quiet_pip install --progress-bar off -q "$mmcv_wheel" -c "$REQ"
quiet_pip install --progress-bar off -q --no-deps --no-build-isolation -e "$ROOT"
"$PY" - <<'EOF' || die "the environment is incomplete (see the traceback above)."
import mmcv, mmcv.ops, mmdet, mmpretrain.models, deit_plugin  # noqa: F401
assert mmcv.__version__ == '2.1.0', mmcv.__version__
EOF
echo "$stamp_value" >"$VENV/.deit_plugin_stamp"
log "environment ready in $(( $(date +%s) - start ))s: $VENV"
