#!/bin/sh
# Renders the NATS users (one per DSPEx service and the client, each limited to its subjects:
# dspex_runtime.permissions) into auth.conf, which the compose and Kubernetes NATS
# configurations include; a second copy next to deploy/k8s/base because kustomize loads no
# file outside a kustomization's root. Passwords are the server's environment variables
# NATS_<USER>_PASSWORD, never in the file. tests/deploy fails when a copy drifts from the table.
#   deploy/nats/render-auth.sh            (PYTHON=... for another interpreter than .venv's)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
"$python" -m dspex_runtime.permissions > "$here/auth.conf"
cp "$here/auth.conf" "$root/deploy/k8s/base/auth.conf"
