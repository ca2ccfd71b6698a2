#!/usr/bin/env bash
# The demo: shows what berth makes of a sample compose project.
set -euo pipefail
cd "$(dirname "$0")/.."
berth=./bin/berth
sample=samples/wordpress
echo "\$ berth -f $sample/compose.yaml config"
$berth -f "$sample/compose.yaml" config
