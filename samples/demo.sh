#!/usr/bin/env bash
# The demo (`make demo`): builds the sample images offline, brings up the stack
# in samples/demo, sends requests to its one published port and shows which
# replica answered each, scales web to 5 and back to 2, and leaves the stack
# running (or takes it down with --down).
#
#   bash samples/demo.sh [--down]
#
# Environment: DEMO_PORT (host port on 127.0.0.1, default 8080), DEMO_DOWN=1
# (same as --down), DEMO_REQUESTS (requests per round, default 10),
# BERTH_ROOT / BERTH_RUN_ROOT (berth's stores, as for berth itself).
set -Eeuo pipefail
start=$SECONDS
repo=$(cd "$(dirname "$0")/.." && pwd)
berth=$repo/bin/berth
dir=$repo/samples/demo
down=${DEMO_DOWN:-0}
requests=${DEMO_REQUESTS:-10}
export DEMO_PORT=${DEMO_PORT:-8080}
url=http://127.0.0.1:$DEMO_PORT/

for a in "$@"; do
	case $a in
	--down) down=1 ;;
	-h | --help)
		sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "demo.sh: unknown argument $a (try --help)" >&2
		exit 2
		;;
	esac
done

if [[ -t 1 ]]; then bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' off=$'\e[0m'; else bold= dim= red= off=; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
say() { printf '%s    %s%s\n' "$dim" "$*" "$off"; }
# b ARGS: runs berth in the demo's directory, showing the command first.
b() {
	printf '%s$ berth %s%s\n' "$bold" "$*" "$off"
	(cd "$dir" && "$berth" "$@")
}
fail() {
	local code=$? line=$1 cmd=$2
	[[ $BASHPID == "$$" ]] || exit "$code" # a subshell: the main shell reports
	trap - ERR
	printf '\n%sdemo failed (exit %s) at samples/demo.sh:%s: %s%s\n' "$red" "$code" "$line" "$cmd" "$off" >&2
	if [[ -n ${hint:-} ]]; then echo "$hint" >&2; fi
	echo "What berth sees: cd samples/demo && ../../bin/berth ps -a; ../../bin/berth logs" >&2
	echo "Clean up:        cd samples/demo && ../../bin/berth down -v" >&2
	exit "$code"
}
trap 'fail $LINENO "$BASH_COMMAND"' ERR
hint=

[[ -x $berth ]] || { echo "demo.sh: $berth is missing: run 'make build' (or 'make demo')" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "demo.sh: berth runs containers as root: run 'sudo make demo'" >&2; exit 1; }

# fetch URL: one HTTP GET with a short timeout, with whatever client exists.
if command -v wget >/dev/null; then
	fetch() { timeout 5 wget -qO- "$1"; }
elif [[ -x /bin/busybox ]]; then
	fetch() { timeout 5 /bin/busybox wget -qO- "$1"; }
elif command -v curl >/dev/null; then
	fetch() { curl -fsS --max-time 3 "$1"; }
else
	echo "demo.sh: no HTTP client (wget, busybox or curl)" >&2
	exit 1
fi

# names: "HOSTNAME NAME" for each container (a hostname is the short ID).
names() {
	(cd "$dir" && "$berth" ps --format json) |
		sed -n 's/.*"ID":"\([0-9a-f]\{12\}\)[0-9a-f]*".*"Name":"\([^"]*\)".*/\1 \2/p'
}

# wait_web N: waits until N web replicas are running and healthy.
wait_web() {
	local want=$1 n=0 i
	for ((i = 0; i < 150; i++)); do
		n=$( (cd "$dir" && "$berth" ps --format json web) | grep -c '"Health":"healthy"' || true)
		((n == want)) && return 0
		sleep 0.2
	done
	hint="only $n of $want web replicas became healthy in 30s"
	return 1
}

# scale N: `berth scale web=N` once that command exists, else `up -d --scale`.
scale() {
	if "$berth" scale --help 2>/dev/null | grep 'berth scale' >/dev/null; then
		b scale "web=$1"
	else
		b up -d --scale "web=$1"
	fi
	wait_web "$1"
}

# round: sends $requests requests to the published port and shows who answered.
round() {
	local i reply host name visit
	local -A who=() count=()
	while read -r host name; do who[$host]=$name; done < <(names)
	hint="nothing answered on $url: check the PORTS column of 'berth ps' and 'berth logs web'"
	for ((i = 0; i < 40; i++)); do # the proxy may still be opening its listener
		fetch "${url}healthz" >/dev/null 2>&1 && break
		sleep 0.25
	done
	for ((i = 1; i <= requests; i++)); do
		reply=$(fetch "$url")
		host=$(sed -n 's/^hello from \([^ ]*\).*/\1/p' <<<"$reply")
		visit=$(sed -n 's/.*(visit #\([0-9]*\)).*/\1/p' <<<"$reply")
		name=${who[$host]:-$host}
		count[$name]=$((${count[$name]:-0} + 1))
		printf '    request %2d  answered by %-12s (hostname %s)%s\n' "$i" "$name" "$host" "${visit:+, visit #$visit}"
	done
	hint=
	local tally=
	for name in $(printf '%s\n' "${!count[@]}" | sort); do tally+=" $name×${count[$name]}"; done
	say "$requests requests answered by ${#count[@]} replica(s):$tally"
	say "each reply: $reply"
}

echo "${bold}berth demo${off}: one compose file, no Docker, no registry. ('berth' below is ./bin/berth, run in samples/demo.)"

step "Build the sample images offline: static Go programs + busybox, imported with 'berth image import'"
BERTH=$berth bash "$repo/samples/build-images.sh"

step "Start the stack: kv (health-checked, data in a named volume) -> init (one-shot job) -> web x2"
say "depends_on: init waits for kv to be healthy; web waits for init to exit 0"
b up -d
wait_web 2
b ps -a

step "Send $requests requests to the one published port, 127.0.0.1:$DEMO_PORT"
say "berth's proxy spreads them over the web replicas; each names its replica (its hostname)"
round

step "Scale web to 5: same port, 5 replicas behind it"
scale 5
b ps web
round

step "Scale back to 2"
scale 2
b ps

if [[ $down == 1 ]]; then
	step "Take the stack down (the kv-data volume stays: the visit counter goes on next time)"
	b down
	echo
	echo "demo took $((SECONDS - start)) s. The volume demo_kv-data is kept; remove it with:"
	echo "    bin/berth volume rm demo_kv-data"
else
	echo
	echo "demo took $((SECONDS - start)) s. The stack is still running: try"
	echo "    wget -qO- $url    # or curl"
	echo "    cd samples/demo && ../../bin/berth logs -f"
	echo "When done, take it down (-v also deletes kv's data volume):"
	echo "    cd samples/demo && ../../bin/berth down"
fi
