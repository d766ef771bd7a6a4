#!/usr/bin/env bash
# Make the Fashion-MNIST IDX files (Debian package dataset-fashion-mnist, MIT) available.
# As root: apt-get install. Without root but with apt: apt-get download + dpkg-deb -x into
# ~/.cache/deit_plugin/fmnist (no root needed). Otherwise: say how, and fail.
set -euo pipefail
SYS=/usr/share/datasets/fashion-mnist
CACHE="${DEIT_PLUGIN_CACHE:-$HOME/.cache/deit_plugin}/fmnist"
have() { [[ -f "$1/train-images-idx3-ubyte.gz" && -f "$1/t10k-labels-idx1-ubyte.gz" ]]; }

if [[ -n "${DEIT_FASHION_MNIST_DIR:-}" ]] && have "$DEIT_FASHION_MNIST_DIR"; then exit 0; fi
if have "$SYS" || have "$CACHE/usr/share/datasets/fashion-mnist"; then exit 0; fi
if command -v apt-get >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "[fashion-mnist] installing the Debian package dataset-fashion-mnist"
        apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
        have "$SYS" && exit 0
    else
        echo "[fashion-mnist] no root: unpacking dataset-fashion-mnist into $CACHE"
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null) \
            && mkdir -p "$CACHE" && dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$CACHE"
        rm -rf "$tmp"
        have "$CACHE/usr/share/datasets/fashion-mnist" && exit 0
    fi
fi
cat >&2 <<'MSG'
[fashion-mnist] ERROR: Fashion-MNIST is not installed and could not be installed here.
  Debian/Ubuntu, as root:   apt-get install dataset-fashion-mnist
  elsewhere: put the four *-ubyte.gz files of https://github.com/zalandoresearch/fashion-mnist
  in a folder and export DEIT_FASHION_MNIST_DIR=that/folder
MSG
exit 1
