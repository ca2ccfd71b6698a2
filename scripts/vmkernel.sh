#!/usr/bin/env bash
# Fetches the Debian kernels the cgroup v2 VM test boots (tests/vm) and
# extracts them into a cache shared by every checkout of this machine:
#   linux-image-amd64      Debian 12's kernel (6.1, with its security updates)
#   linux-image-6.12-amd64 the newest kernel Debian 12 ships (6.12)
# Nothing is installed on the host: the packages are fetched with
# `apt-get download` and unpacked with `dpkg -x`. A kernel already in the
# cache is not fetched again; one that apt no longer names is removed.
#
# Prints one line per kernel: "<meta package> <kernel release> <directory>",
# the directory holding boot/vmlinuz-<release>, boot/vmlinux-<release> (the
# same kernel uncompressed) and lib/modules/<release> with a modules.dep.
# BERTH_VM_CACHE overrides the cache directory. With --if-empty it does
# nothing (and prints nothing) when a kernel is cached already: deps.sh
# uses it so that a build does not ask apt every time; the test itself
# runs the full check.
set -euo pipefail

cache=${BERTH_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth/vm}
metas=(linux-image-amd64 linux-image-6.12-amd64)

if [ "${1:-}" = --if-empty ] && compgen -G "$cache/linux-image-*/lib/modules/*/modules.dep" >/dev/null; then
	exit 0
fi

# image_of prints the versioned image package a meta package depends on
# (linux-image-amd64 -> linux-image-6.1.0-57-amd64), from apt's lists.
image_of() {
	apt-cache depends --no-recommends --no-suggests "$1" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

updated=0
apt_update() {
	[ "$updated" -eq 1 ] && return 0
	updated=1
	echo "vmkernel: apt-get update" >&2
	apt-get update -qq >&2
}

# download fetches image package $1 into directory $2.
download() {
	echo "vmkernel: fetching $1" >&2
	(cd "$2" && apt-get download -qq -o APT::Sandbox::User=root "$1" >&2)
}

# unpack_vmlinux writes the ELF kernel that compressed kernel image $1
# (bzImage) carries to $2, as the kernel's scripts/extract-vmlinux does:
# qemu boots an ELF kernel directly (PVH), while the bzImage's own
# decompressor takes 15-20 s under software emulation.
unpack_vmlinux() {
	local bz=$1 out=$2 m tool off
	for m in 'xz:\xFD7zXZ\x00' 'zstd:\x28\xB5\x2F\xFD' 'gzip:\x1F\x8B\x08'; do
		tool=${m%%:*}
		for off in $(LC_ALL=C grep -obUaP "${m#*:}" "$bz" | cut -d: -f1); do
			# The stream is followed by the rest of the image: the
			# tools complain about it after writing the kernel.
			case $tool in
			xz) tail -c +$((off + 1)) "$bz" | xz -dc --single-stream >"$out" 2>/dev/null || true ;;
			zstd) tail -c +$((off + 1)) "$bz" | zstd -dcq >"$out" 2>/dev/null || true ;;
			gzip) tail -c +$((off + 1)) "$bz" | gzip -dc >"$out" 2>/dev/null || true ;;
			esac
			if [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
				return 0
			fi
		done
	done
	rm -f "$out"
	return 1
}

# extract unpacks the package downloaded into $2 into $cache/$1; the
# directory appears whole (rename) or not at all.
extract() {
	local pkg=$1 tmp=$2 release
	dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/root"
	# Only the kernel and its modules are needed; firmware and docs are not.
	mkdir -p "$tmp/out/lib"
	mv "$tmp/root/boot" "$tmp/out/boot"
	if [ -d "$tmp/root/lib/modules" ]; then
		mv "$tmp/root/lib/modules" "$tmp/out/lib/modules"
	else
		mv "$tmp/root/usr/lib/modules" "$tmp/out/lib/modules"
	fi
	# The package ships no modules.dep (depmod runs when it is installed);
	# busybox's modprobe in the VM needs one.
	release=$(basename "$(ls -d "$tmp"/out/lib/modules/*/ | head -n1)")
	/sbin/depmod -b "$tmp/out" "$release"
	unpack_vmlinux "$tmp/out/boot/vmlinuz-$release" "$tmp/out/boot/vmlinux-$release" ||
		echo "vmkernel: no ELF kernel found in vmlinuz-$release; the VM boots the bzImage" >&2
	rm -rf "${cache:?}/$pkg"
	mv "$tmp/out" "$cache/$pkg"
}

# cached says whether image package $1 is extracted, modules.dep included.
cached() {
	compgen -G "$cache/$1/lib/modules/*/modules.dep" >/dev/null
}

mkdir -p "$cache"
# One run at a time per cache: checkouts testing at once share it.
exec 9>"$cache/.lock"
flock 9
rm -rf "$cache"/.fetch.*
keep=()
for meta in "${metas[@]}"; do
	pkg=$(image_of "$meta")
	if [ -z "$pkg" ]; then
		apt_update
		pkg=$(image_of "$meta")
	fi
	if [ -z "$pkg" ]; then
		echo "vmkernel: apt knows no $meta; skipped" >&2
		continue
	fi
	if ! cached "$pkg"; then
		tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
		# Old lists may name a package the mirror has dropped: refresh once.
		if ! download "$pkg" "$tmp"; then
			apt_update
			pkg=$(image_of "$meta")
		fi
		if ! cached "$pkg"; then
			ls "$tmp"/"$pkg"_*.deb >/dev/null 2>&1 || download "$pkg" "$tmp"
			extract "$pkg" "$tmp"
		fi
		rm -rf "$tmp"
	fi
	keep+=("$pkg")
	release=$(basename "$(ls -d "$cache/$pkg"/lib/modules/*/ | head -n1)")
	boot=$cache/$pkg/boot
	if [ ! -e "$boot/vmlinux-$release" ] && unpack_vmlinux "$boot/vmlinuz-$release" "$boot/.vmlinux"; then
		mv "$boot/.vmlinux" "$boot/vmlinux-$release" # a cache made before the ELF kernel was kept
	fi
	echo "$meta $release $cache/$pkg"
done

for d in "$cache"/linux-image-*; do
	[ -d "$d" ] || continue
	case " ${keep[*]} " in
	*" $(basename "$d") "*) ;;
	*) echo "vmkernel: removing $(basename "$d")" >&2; rm -rf "$d" ;;
	esac
done
