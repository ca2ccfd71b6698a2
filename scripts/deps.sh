#!/usr/bin/env bash
# Installs what berth's build needs from Debian's packages; with --test,
# also what its tests need (qemu and the kernels the cgroup v2 VM test
# boots, etcd and the Kubernetes API server the bridge tests run); with
# --bench, what `make bench` needs (the clients of the real-server
# benchmarks and debootstrap for their servers' image).
# Idempotent: when everything is present it only runs dpkg-query, sees the
# VM test's kernels, the API server (or pgbench) cached, and returns.
set -euo pipefail

tests=false
bench=false
case "${1:-}" in
--test) tests=true ;;
--bench) bench=true ;;
esac

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
		debootstrap        # Debian base images of build tests and benchmarks (tests/debian)
		etcd-server        # the store of the kube-apiserver the bridge tests run (tests/kube)
	)
fi
if $bench; then
	packages+=(
		debootstrap        # the servers' Debian image (tests/debian)
		redis-tools        # redis-benchmark
		wrk                # HTTP load against nginx
		libpq5             # pgbench's library (pgbench itself: below)
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

# pgbench ships in Debian 12's server package (postgresql-15), whose
# install would create and start a cluster on the host: unless a server
# package is installed already, the package is fetched and unpacked into
# a cache instead, and the benchmark runs pgbench from there.
if $bench && [ "$(id -u)" -eq 0 ] && ! compgen -G "/usr/lib/postgresql/*/bin/pgbench" >/dev/null; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/berth/bench/postgresql
	if ! compgen -G "$cache/usr/lib/postgresql/*/bin/pgbench" >/dev/null; then
		pkg=$(apt-cache depends --no-recommends --no-suggests postgresql 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^postgresql-[0-9]+$/ { print $2; exit }')
		if [ -z "$pkg" ]; then
			apt-get update -qq
			pkg=$(apt-cache depends --no-recommends --no-suggests postgresql 2>/dev/null |
				awk '$1 == "Depends:" && $2 ~ /^postgresql-[0-9]+$/ { print $2; exit }')
		fi
		[ -n "$pkg" ] || { echo "deps: apt names no postgresql-NN package for pgbench" >&2; exit 1; }
		echo "deps: unpacking pgbench from $pkg into $cache"
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
		mkdir -p "$cache"
		dpkg -x "$tmp"/"$pkg"_*.deb "$cache"
	fi
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
