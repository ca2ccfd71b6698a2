#!/bin/sh
# Runs in the VM (see init.sh): berth on a cgroup v2-only system. Every
# check prints "VMTEST ok NAME at UPTIME" or "VMTEST FAIL NAME at UPTIME:
# why"; the last line is "VMTEST RESULT pass" or "VMTEST RESULT fail".
# Under TCG each berth command costs seconds, so states are read from the
# records the supervisor writes rather than from one `berth ps` each.
failed=0

uptime() { cut -d' ' -f1 /proc/uptime; }
pass() { echo "VMTEST ok $1 at $(uptime)"; }
fail() {
	echo "VMTEST FAIL $1 at $(uptime): $2"
	failed=1
}

# expect NAME WANT GOT
expect() {
	if [ "$3" = "$2" ]; then pass "$1"; else fail "$1" "want [$2], got [$3]"; fi
}

# run NAME CMD...: runs a command, its output shown on failure.
run() {
	name=$1
	shift
	if out=$("$@" 2>&1); then
		pass "$name"
	else
		fail "$name" "$* exited $?: $(echo "$out" | tr '\n' ' ')"
	fi
}

# until_true SECONDS CMD...: polls CMD every 0.2 s, for SECONDS at most.
until_true() {
	end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# finish prints the result line, with the supervisor's log on failure.
finish() {
	if [ "$failed" -eq 0 ]; then
		echo "VMTEST RESULT pass"
		exit 0
	fi
	echo "--- supervisor log"
	cat /run/berth/projects/*/supervisor.log 2>/dev/null
	echo "VMTEST RESULT fail"
	exit 1
}

# state ID KEY: a field of a container record's "state" object.
state() {
	sed -n '/^  "state": {/,/^  }/p' "/var/lib/berth/containers/$1/record.json" |
		sed -n "s/^    \"$2\": \"*\([^\",]*\)\"*,*$/\1/p"
}
# is ID STATUS
is() { [ "$(state "$1" status)" = "$2" ]; }
# cg FILE: a file of the limits container's cgroup.
cg() { cat "/sys/fs/cgroup/berth/$limits/$1" 2>&1; }

run image-load berth image load -i /vmtest/busybox.tar
run up berth up -d
[ "$failed" -eq 0 ] || finish
ps=$(berth ps -a --format json)
limits=$(echo "$ps" | sed -n 's/^{"ID":"\([0-9a-f]*\)".*"Service":"limits".*/\1/p')
oom=$(echo "$ps" | sed -n 's/^{"ID":"\([0-9a-f]*\)".*"Service":"oom".*/\1/p')
expect running running "$(state "$limits" status)"

# The limits, as libcontainer converts them from docker's v1 units.
expect memory.max 67108864 "$(cg memory.max)"
expect memory.swap.max 67108864 "$(cg memory.swap.max)"
expect cpu.max "50000 100000" "$(cg cpu.max)"
expect cpu.weight 59 "$(cg cpu.weight)"
expect pids.max 50 "$(cg pids.max)"
expect cpuset.cpus 1 "$(cg cpuset.cpus)"
expect cgroup-of-init "0::/berth/$limits" "$(cat "/proc/$(state "$limits" pid)/cgroup" 2>&1)"

# Inside: a private cgroup namespace, and cgroup2 at /sys/fs/cgroup.
inside=$(berth exec -T limits sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max' 2>&1)
expect inside "0::/ 67108864" "$(echo $inside)"

# OOM: exit 137 and oom_killed, in the record and in ps.
if until_true 60 is "$oom" exited; then pass oom-exited; else fail oom-exited "status $(state "$oom" status)"; fi
expect oom-exit-code 137 "$(state "$oom" exit_code)"
expect oom-killed true "$(state "$oom" oom_killed)"
expect ps-exit-code 137 "$(berth ps -a --format json oom | sed -n 's/.*"ExitCode":\([0-9-]*\).*/\1/p')"

# pause and unpause: the v2 freezer.
run pause berth pause limits
expect paused paused "$(state "$limits" status)"
expect cgroup.freeze-1 1 "$(cg cgroup.freeze)"
expect frozen "frozen 1" "$(grep frozen "/sys/fs/cgroup/berth/$limits/cgroup.events")"
run unpause berth unpause limits
expect unpaused running "$(state "$limits" status)"
expect cgroup.freeze-0 0 "$(cg cgroup.freeze)"

# down: no cgroup left; the parent goes when the supervisor exits.
run down berth down
expect down-no-cgroup "" "$(find /sys/fs/cgroup/berth -mindepth 1 -type d 2>/dev/null)"
if until_true 20 test ! -e /sys/fs/cgroup/berth; then
	pass down-no-parent
else
	fail down-no-parent "/sys/fs/cgroup/berth is left"
fi

finish
