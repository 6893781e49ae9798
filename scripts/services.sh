#!/usr/bin/env bash
# Starts the team deployment's services on loopback for a shell session, as docker-compose.yml
# configures them but without Docker: a throwaway PostgreSQL cluster (databases dagster and mlflow)
# and an MLflow server on it. Prints the variables to export; Ctrl-C stops both and deletes the data.
# Needs Debian's postgresql package (`apt-get install postgresql`; .ci/run installs it in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m quantlab_assets_tests.services.servers
