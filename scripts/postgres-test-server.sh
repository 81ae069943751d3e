#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at the store tests' URL ($HUB_TEST_POSTGRES_URL, default the local
# server as user postgres on 127.0.0.1:5432): installs Debian's postgresql where it is missing, starts the
# cluster where it is stopped, and on a machine where this script installed it, lets the local user postgres
# in over loopback without a password (a test machine's server, reachable only from this host).
set -euo pipefail
url=${HUB_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
answers() { command -v psql >/dev/null 2>&1 && psql "$url" -qtAc 'SELECT 1' >/dev/null 2>&1; }
answers && exit 0
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
installed_here=0
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "Installing PostgreSQL for the store tests"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  installed_here=1
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
$sudo pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do answers && exit 0; sleep 1; done
if [ "$installed_here" -eq 1 ]; then
  hba=/etc/postgresql/$version/main/pg_hba.conf
  $sudo sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  $sudo pg_ctlcluster "$version" main reload
  for _ in $(seq 1 15); do answers && exit 0; sleep 1; done
fi
echo "no PostgreSQL server answers at $url: start one, or set HUB_TEST_POSTGRES_URL" >&2
exit 1
