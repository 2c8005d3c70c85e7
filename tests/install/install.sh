#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs a program
# that finds it with find_package(magpage) and one that uses pkg-config.
#   install.sh BUILD_DIR SOURCE_DIR SCRATCH
set -euo pipefail
build=$1 src=$2 scratch=$3
rm -rf "$scratch" && mkdir -p "$scratch"
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
for f in lib/libmagpage.so.0 include/magpage.h lib/pkgconfig/magpage.pc \
         lib/cmake/magpage/magpageConfig.cmake bin/magpage-conf bin/magpage-top; do
	[ -e "$scratch/prefix/$f" ] || { echo "install: missing $f"; exit 1; }
done
cmake -S "$src/consumer" -B "$scratch/consumer" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/consumer" >/dev/null
LD_LIBRARY_PATH="$scratch/prefix/lib" "$scratch/consumer/consumer"
flags=$(PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig" pkg-config --cflags --libs magpage)
cc $flags -o "$scratch/pc-consumer" "$src/consumer/consumer.c" $flags
LD_LIBRARY_PATH="$scratch/prefix/lib" "$scratch/pc-consumer"
# The installed magpage-top runs on its own (no library path needed).
"$scratch/prefix/bin/magpage-top" --help | grep -q "live:1" || { echo "install: magpage-top --help"; exit 1; }
echo "install: find_package and pkg-config consumers work"
