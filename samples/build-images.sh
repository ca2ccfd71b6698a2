#!/usr/bin/env bash
# Builds the samples' images offline and imports them into berth's image store.
#
#   bash samples/build-images.sh [--force]
#
# Each image is a rootfs with a static busybox (sh, wget, nc, cat, … for health
# checks and debugging), /etc/passwd, /etc/group and one static Go program from
# samples/images/ at /app. Nothing is pulled: busybox comes from Debian's
# busybox-static (scripts/deps.sh installs it) and the programs are compiled
# here with CGO_ENABLED=0. An image whose sources have not changed since it was
# imported is skipped (its label berth.sample.source holds their hash);
# --force (or BERTH_SAMPLES_FORCE=1) rebuilds every image.
#
# BERTH (default bin/berth) is the berth binary; BERTH_ROOT picks its store.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
berth=${BERTH:-}
[[ -z $berth || $berth == /* ]] || berth=$PWD/$berth
cd "$(dirname "$self")/.."
export PATH="$PATH:/usr/local/go/bin"

force=${BERTH_SAMPLES_FORCE:-0}
for a in "$@"; do
	case $a in
	-f | --force) force=1 ;;
	-h | --help)
		sed -n '2,14p' "$self" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build-images.sh: unknown argument $a (try --help)" >&2
		exit 2
		;;
	esac
done

berth=${berth:-$PWD/bin/berth}
[[ -x $berth ]] || { echo "build-images.sh: $berth not found: run 'make build' first" >&2; exit 1; }
busybox=
for b in /bin/busybox /usr/bin/busybox; do
	[[ -x $b ]] && { busybox=$b; break; }
done
[[ -n $busybox ]] || { echo "build-images.sh: no busybox: install busybox-static (bash scripts/deps.sh)" >&2; exit 1; }
command -v go >/dev/null || { echo "build-images.sh: go not found (Go 1.26 in /usr/local/go/bin)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-sample-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# srchash PROGRAM: a hash of what the image is made of.
srchash() {
	cat "samples/images/$1"/*.go "$self" "$busybox" | sha256sum | cut -c1-16
}

# build REF PROGRAM [--change INSTRUCTION]...
build() {
	local ref=$1 prog=$2
	shift 2
	local hash have
	hash=$(srchash "$prog")
	have=$("$berth" image inspect --format '{{ index .Config.Labels "berth.sample.source" }}' "$ref" 2>/dev/null || true)
	if [[ $force != 1 && $have == "$hash" ]]; then
		echo "  $ref: up to date"
		return
	fi
	local root=$work/$prog-root
	if [[ ! -d $root ]]; then
		mkdir -p "$root"/{bin,usr/bin,etc,tmp,root,data,var/lib/mysql,var/www/html}
		chmod 1777 "$root/tmp"
		chmod 700 "$root/root"
		if [[ ! -d $work/bin ]]; then # all programs in one go build: parallel when the cache is cold
			mkdir "$work/bin"
			CGO_ENABLED=0 go build -tags 'netgo osusergo' -ldflags '-s -w' -o "$work/bin/" ./samples/images/...
		fi
		cp "$work/bin/$prog" "$root/app"
		cp "$busybox" "$root/bin/busybox"
		local applet
		for applet in $("$busybox" --list); do
			[[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
		done
		ln -s ../../bin/busybox "$root/usr/bin/env"
		cat >"$root/etc/passwd" <<-'PASSWD'
			root:x:0:0:root:/root:/bin/sh
			nobody:x:65534:65534:nobody:/nonexistent:/bin/false
		PASSWD
		cat >"$root/etc/group" <<-'GROUP'
			root:x:0:
			nogroup:x:65534:
		GROUP
		printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
		printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
		tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$work/$prog.tar" .
	fi
	"$berth" image import --change "LABEL berth.sample.source=$hash" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"$@" "$work/$prog.tar" "$ref" >/dev/null
	echo "  $ref: built from samples/images/$prog"
}

echo "Building the sample images (static Go programs + busybox, nothing pulled):"
# The demo stack (samples/demo).
build berth-sample/kv:latest kv --change 'CMD ["/app"]' --change 'EXPOSE 7000'
build berth-sample/web:latest web --change 'CMD ["/app"]' --change 'EXPOSE 80'
build berth-sample/seed:latest seed --change 'ENTRYPOINT ["/app"]'
# The seed's wordpress stack (samples/wordpress), with stand-ins built from the
# same programs: a key-value "mysql" on 3306 and a "wordpress" on 80.
build berth-sample/mysql:5.7-standin kv --change 'CMD ["/app"]' --change 'ENV KV_ADDR=:3306 KV_DATA=/var/lib/mysql' \
	--change 'EXPOSE 3306' --change 'VOLUME /var/lib/mysql'
build berth-sample/wordpress:standin web --change 'CMD ["/app"]' --change 'WORKDIR /var/www/html' --change 'EXPOSE 80'
