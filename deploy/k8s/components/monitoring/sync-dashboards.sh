#!/bin/sh
# Copies the Grafana dashboards (deploy/grafana/dashboards, their source) next to this
# component: kustomize loads no file outside a kustomization's root. tests/deploy/test_k8s.py
# fails when the copies drift.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cp "$here"/../../../grafana/dashboards/overview.json \
   "$here"/../../../grafana/dashboards/lm.json \
   "$here"/../../../grafana/dashboards/runs.json \
   "$here"/dashboards/
