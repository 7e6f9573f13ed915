#!/bin/sh
# Makes BMv2's simple_switch_grpc from any image run on another distribution: bundles the binary with every
# shared library it loads, glibc and the dynamic loader included, and points the binary at them, so that it
# needs nothing of the base image's libraries (the official p4lang/behavioral-model image is built on a newer
# glibc than Debian bookworm's, so its binary cannot simply be copied).
#
#   bmv2-bundle.sh DEST          in the BMv2 image (only sh, ldd, cp, awk, readlink needed): copies
#                                simple_switch_grpc (from PATH) to DEST/bin and the libraries ldd resolves for it,
#                                the loader too, to DEST/lib; DEST/interpreter names the loader's file
#   bmv2-bundle.sh --patch DEST  in the final image, with patchelf, after the bundle is copied to the same DEST:
#                                sets the binary's loader to DEST/lib's and its DT_RPATH to DEST/lib, then checks
#                                that every library is taken from DEST/lib and that the binary runs
#
# The binary itself is patched rather than started through the loader (`ld.so --library-path ... binary`), so
# the process is still simple_switch_grpc in ps and /proc/PID/comm. DT_RPATH, not DT_RUNPATH: RPATH of the
# executable also applies to the libraries' own dependencies, RUNPATH would not. To list what the patched binary
# loads, run it with LD_TRACE_LOADED_OBJECTS=1: the base's `ldd` traces with the base's loader instead.
set -eu

die() {
    echo "bmv2-bundle: $*" >&2
    exit 1
}

BIN=simple_switch_grpc

collect() {
    dest=$1
    bin=$(command -v "$BIN") || die "$BIN is not on PATH in this image"
    bin=$(readlink -f "$bin")
    deps=$(ldd "$bin") || die "ldd cannot read $bin (not a dynamic executable?)"
    missing=$(echo "$deps" | awk '$2 == "=>" && $3 == "not" {printf "%s%s", sep, $1; sep = " "}')
    [ -z "$missing" ] || die "libraries of $bin not found by ldd: $missing"
    # ldd's line for the loader is the absolute path without "=>" (linux-vdso has no file and no slash).
    loader=$(echo "$deps" | awk '$2 != "=>" && $1 ~ /^\// {print $1}')
    [ -n "$loader" ] || die "ldd names no dynamic loader for $bin (is it statically linked?)"
    [ "$(echo "$loader" | wc -l)" -eq 1 ] || die "ldd names several loaders for $bin: $loader"
    mkdir -p "$dest/bin" "$dest/lib"
    cp -L "$bin" "$dest/bin/$BIN"
    # Each library under the name the binaries ask for (ldd's left column), the file behind any symlink.
    echo "$deps" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
        cp -L "$path" "$dest/lib/${name##*/}" || die "cannot copy $path"
    done
    cp -L "$loader" "$dest/lib/${loader##*/}" || die "cannot copy the loader $loader"
    echo "${loader##*/}" > "$dest/interpreter"
    count=$(($(ls "$dest/lib" | wc -l) - 1))
    size=$(du -sh "$dest" | awk '{print $1}')
    echo "bmv2-bundle: $BIN, $count libraries and the loader ${loader##*/} in $dest: $size"
}

relink() {
    dest=$1
    case "$dest" in /*) ;; *) die "DEST must be an absolute path (it becomes the binary's RPATH): $dest" ;; esac
    bin=$dest/bin/$BIN
    [ -f "$bin" ] || die "no bundle in $dest ($bin is missing)"
    [ -f "$dest/interpreter" ] || die "no bundle in $dest ($dest/interpreter is missing)"
    command -v patchelf >/dev/null || die "patchelf is not installed"
    loader=$dest/lib/$(cat "$dest/interpreter")
    [ -f "$loader" ] || die "the bundled loader $loader is missing"
    patchelf --set-interpreter "$loader" --force-rpath --set-rpath "$dest/lib" "$bin"
    # A library with its own DT_RUNPATH would ignore the binary's RPATH for its dependencies: point it at the
    # bundle too (the loader and libraries without a search path are left as they are).
    for lib in "$dest"/lib/*; do
        [ "$lib" = "$loader" ] && continue
        if [ -n "$(patchelf --print-rpath "$lib" 2>/dev/null)" ]; then
            patchelf --force-rpath --set-rpath "$dest/lib" "$lib"
        fi
    done
    # The bundled loader lists what it loads; anything from outside the bundle means the base leaks in.
    trace=$(LD_TRACE_LOADED_OBJECTS=1 "$bin") || die "$bin does not start with the bundled loader"
    outside=$(echo "$trace" | awk -v lib="$dest/lib/" '$2 == "=>" && index($3, lib) != 1 {printf "%s%s => %s", sep, $1, $3; sep = ", "}')
    [ -z "$outside" ] || die "$bin loads libraries from outside $dest/lib: $outside"
    "$bin" --version >/dev/null || die "$bin --version fails after patching"
    echo "bmv2-bundle: $bin uses $loader and $dest/lib"
}

case "${1:-}" in
    --patch)
        [ $# -eq 2 ] || die "usage: bmv2-bundle.sh [--patch] DEST"
        relink "$2"
        ;;
    ""|-*)
        die "usage: bmv2-bundle.sh [--patch] DEST"
        ;;
    *)
        [ $# -eq 1 ] || die "usage: bmv2-bundle.sh [--patch] DEST"
        collect "$1"
        ;;
esac
