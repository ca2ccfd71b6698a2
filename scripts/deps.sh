#!/usr/bin/env bash
# Installs what berth's build needs from Debian's packages; with --test,
# also what its tests need (qemu and the kernels the cgroup v2 VM test
# boots, etcd and the Kubernetes API server the bridge tests run).
# Idempotent: when everything is present it only runs dpkg-query, sees the
# VM test's kernels and the API server cached, and returns.
set -euo pipefail

tests=false
[ "${1:-}" = "--test" ] && tests=true

packages=(
	gcc                # cgo: libcontainer's nsenter is C
	libc6-dev
	pkg-config
	libseccomp-dev     # build tag seccomp (Docker's default profile)
	busybox-static     # the offline base of test and sample images
	iproute2           # ip netns / link checks in tests
	util-linux         # unshare, nsenter, mount
	ca-certificates
	make
)
if $tests; then
	packages+=(
		kmod               # depmod for the kernels the VM test boots,
		xz-utils           # and unxz and zstd to unpack them and their modules
		zstd
		qemu-system-x86    # boots Debian's kernels for the cgroup v2 test (tests/vm)
		etcd-server        # the store of the kube-apiserver the bridge tests run (tests/kube)
	)
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernels the cgroup v2 VM test boots, fetched once into a cache (the
# test refreshes them when Debian publishes new ones).
if $tests && [ "$(id -u)" -eq 0 ]; then
	bash "$(dirname "$0")/vmkernel.sh" --if-empty >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
	for d in /usr/local/go/bin /usr/lib/go/bin; do
		[ -x "$d/go" ] && { echo "deps: go is at $d; add it to PATH" >&2; break; }
	done
	echo "deps: go not found on PATH" >&2
	exit 1
fi

# The kube-apiserver and kube-controller-manager the bridge tests run, built
# once from the Go module proxy into a cache (several minutes the first time).
if $tests; then
	bash "$(dirname "$0")/kubeapiserver.sh" >/dev/null
fi
