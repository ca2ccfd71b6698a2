#!/usr/bin/env bash
# Builds the kube-apiserver and kube-controller-manager the bridge tests run
# (tests/kube) from the Go module proxy, once, into a cache shared by every
# checkout of this machine:
#   ${XDG_CACHE_HOME:-~/.cache}/berth/k8s/kube-apiserver-<release>
#   ${XDG_CACHE_HOME:-~/.cache}/berth/k8s/kube-controller-manager-<release>
# (the controller manager finishes what deletions start: namespaces, owned
# objects, and makes the pods of Deployments and Jobs; no kubelet runs them).
# The release matches the k8s.io/api and client-go modules berth is built
# with (v0.X.Y <-> v1.X.Y). The k8s.io/kubernetes module as the proxy serves
# it lacks staging/, the source of its own k8s.io/* modules, and its go.mod
# points at that directory; the copy built here points at the published
# modules of the same release instead. Prints the cache directory; does
# nothing more when both are cached. BERTH_K8S_CACHE overrides the cache.
set -euo pipefail

release=${BERTH_K8S_RELEASE:-v1.37.2}
staging=v0${release#v1}   # v1.37.2 -> v0.37.2
cache=${BERTH_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth/k8s}
# One build at a time on this machine; the second finds the binaries.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
cmds=()
for c in kube-apiserver kube-controller-manager; do
	[ -x "$cache/$c-$release" ] || cmds+=("$c")
done
if [ ${#cmds[@]} -eq 0 ]; then
	echo "$cache"
	exit 0
fi

export PATH=$PATH:/usr/local/go/bin
# The tree has a go.work over staging/, which this copy does not use.
export GOWORK=off
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

echo "kubeapiserver: downloading k8s.io/kubernetes@$release" >&2
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$release" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "kubeapiserver: go mod download gave no directory" >&2; exit 1; }

src=$work/src
cp -r "$dir" "$src"
chmod -R u+w "$src"
cd "$src"

# ./staging/src/k8s.io/<name> -> k8s.io/<name>@<staging release>
edits=()
while read -r mod; do
	edits+=("-replace=$mod=$mod@$staging")
done < <(go mod edit -json | sed -n 's/.*"Path": "\(k8s\.io\/[^"]*\)".*/\1/p' | sort -u |
	while read -r m; do
		go mod edit -json | grep -q "\"Path\": \"./staging/src/$m\"" && echo "$m"
	done)
[ ${#edits[@]} -gt 0 ] || { echo "kubeapiserver: no staging replace directives found" >&2; exit 1; }
go mod edit "${edits[@]}"

for c in "${cmds[@]}"; do
	echo "kubeapiserver: building cmd/$c (several minutes)" >&2
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$work/$c" "./cmd/$c"
	mv "$work/$c" "$cache/$c-$release"
done
echo "$cache"
