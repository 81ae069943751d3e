#!/usr/bin/env bash
# Installs the system packages the project needs that pip cannot: Mosquitto always; Chromium for the tests.
# Usage: scripts/system-deps.sh [--browser | --system-test | --pi-vm]
#   --browser: also what the tests need; --system-test: a Debian root filesystem booted in systemd-nspawn
#   (tests/system); --pi-vm: an arm64 Debian booted in qemu-system-aarch64 (make pi-vm-test)
set -euo pipefail
want=(mosquitto:mosquitto mosquitto_passwd:mosquitto-clients)
case "${1:-}" in
  # Tests also want a browser, and strace to prove no image file is written anywhere.
  --browser) want+=(chromium:chromium strace:strace) ;;
  --system-test) want+=(debootstrap:debootstrap systemd-nspawn:systemd-container nsenter:util-linux) ;;
  --pi-vm) want+=(debootstrap:debootstrap qemu-system-aarch64:qemu-system-arm qemu-aarch64-static:qemu-user-static
                  update-binfmts:binfmt-support mke2fs:e2fsprogs) ;;
esac
missing=()
for pair in "${want[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
# Debian ships venv support in a package of its own; without it `python3 -m venv` fails.
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a system-wide broker on port 1883; the project runs private brokers and needs none.
