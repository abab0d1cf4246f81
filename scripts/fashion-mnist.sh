#!/bin/sh
# Make sure Fashion-MNIST (IDX files) is on this machine; never downloads it ourselves.
# Looks where lifelong.data.fashion_mnist() looks; installs Debian's package when root with apt.
set -e
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
for dir in "${LIFELONG_DATA:+$LIFELONG_DATA/fashion-mnist}" "$HOME/.cache/lifelong/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  [ -n "$dir" ] || continue
  ok=1
  for f in $files; do
    [ -f "$dir/$f" ] || [ -f "$dir/${f%.gz}" ] || ok=0
  done
  if [ "$ok" = 1 ]; then echo "Fashion-MNIST found in $dir"; exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Fashion-MNIST not found: installing Debian's dataset-fashion-mnist"
  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
  exit 0
fi
echo "Fashion-MNIST not found. Install it with: sudo apt-get install dataset-fashion-mnist" >&2
echo "or put the four IDX files ($files) in \$LIFELONG_DATA/fashion-mnist or ~/.cache/lifelong/fashion-mnist" >&2
exit 1
