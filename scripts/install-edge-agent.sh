#!/usr/bin/env bash
# Installs the edge agent on a Raspberry Pi as a hardened systemd service, then runs its self-check.
#
#   sudo scripts/install-edge-agent.sh --from DIR [--package CHECKOUT_OR_WHEEL] [--dry-run]
#   sudo scripts/install-edge-agent.sh --update [--package CHECKOUT_OR_WHEEL] [--dry-run]
#
# DIR is the folder `hub-server device add` wrote for this device (agent.toml, mqtt-password, and ca.pem when
# the hub uses its own certificate authority). --update keeps the installed config and credential and updates
# package and unit. --package defaults to this checkout. --dry-run prints every step and changes nothing.
# Running it again updates package, config, credential and unit in place.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/install-common.sh
. "$REPO/scripts/install-common.sh"

PREFIX=/opt/edge-agent
CONF_DIR=/etc/edge-agent
CRED_DIR=/etc/edge-agent/credentials
STATE_DIR=/var/lib/edge-agent
USER_NAME=edge-agent
CREDENTIAL=mqtt-password  # the name systemd/edge-agent.service loads with LoadCredential

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

FROM="" PACKAGE="$REPO" UPDATE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM=${2:-}; shift 2 ;;
    --update) UPDATE=1; shift ;;
    --package) PACKAGE=${2:-}; shift 2 ;;
    -h | --help) usage 0 ;;
    *) parse_common_option "$1" || { echo "unknown option: $1" >&2; usage 2; }; shift ;;
  esac
done

# --- refuse early, with the reason, before anything changes ---
if [ "$UPDATE" -eq 1 ]; then
  [ -z "$FROM" ] || die "give --from DIR (install or replace the config) or --update (keep it), not both"
  need_file "$CONF_DIR/agent.toml" "installed config (--update keeps it)"
  need_file "$CRED_DIR/$CREDENTIAL" "installed credential (--update keeps it)"
  FROM=$CONF_DIR  # only read below, for the checks
  cp_credential=0
else
  cp_credential=1
fi
[ -n "$FROM" ] || die "--from DIR is required: the folder 'hub-server device add' wrote for this device (or --update)"
[ -d "$FROM" ] || die "no such folder: $FROM (copy it from the hub first, e.g. scp -r hub:/var/lib/hub-server/provisioned/DEVICE .)"
need_file "$FROM/agent.toml" "agent config (from hub-server device add)"
[ "$cp_credential" -eq 0 ] || need_file "$FROM/$CREDENTIAL" "broker credential (from hub-server device add)"
[ -e "$PACKAGE" ] || die "package not found: $PACKAGE (a checkout folder or a .whl file)"
need_root "$@"
need_python
need_systemd

device=$(toml_get "$FROM/agent.toml" device.id)
[ -n "$device" ] || die "$FROM/agent.toml has no device.id: is it the file 'hub-server device add' wrote?"
password_file=$(toml_get "$FROM/agent.toml" mqtt.password_file)
[ "$password_file" = "$CREDENTIAL" ] \
  || die "$FROM/agent.toml: mqtt.password_file is '$password_file'; the service provides the credential as '$CREDENTIAL'"
state_dir=$(toml_get "$FROM/agent.toml" device.state_dir)
[ -z "$state_dir" ] || [ "$state_dir" = "$STATE_DIR" ] \
  || die "$FROM/agent.toml: device.state_dir is '$state_dir'; the service may only write to $STATE_DIR"
ca_file=$(toml_get "$FROM/agent.toml" mqtt.ca_file)
if [ -n "$ca_file" ]; then
  [ "$ca_file" = "$CONF_DIR/ca.pem" ] || die "$FROM/agent.toml: mqtt.ca_file must be $CONF_DIR/ca.pem (is '$ca_file')"
  need_file "$FROM/ca.pem" "the hub's CA certificate (the config names mqtt.ca_file)"
fi
say "Installing edge agent for device $device$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run: nothing is changed)')"

step "System packages (Python venv; lgpio and picamera2 for the Pi's GPIO and camera)"
if [ -e /etc/rpi-issue ] || grep -qs "Raspberry Pi" /proc/device-tree/model; then
  apt_install python3-venv python3-lgpio python3-picamera2
else
  apt_install python3-venv
fi

step "Groups and user $USER_NAME (groups gpio and video only)"
ensure_group gpio
ensure_group video
ensure_user "$USER_NAME" "$STATE_DIR" gpio,video

step "Package into $PREFIX/venv"
run install -d -m 0755 "$PREFIX"
ensure_venv "$PREFIX/venv" "$PACKAGE"
run ln -sf "$PREFIX/venv/bin/edge-agent" /usr/local/bin/edge-agent

step "Check the config with the new package"
run "$PREFIX/venv/bin/edge-agent" check-config "$FROM/agent.toml"

if [ "$UPDATE" -eq 0 ]; then
step "Config into $CONF_DIR (readable by the agent, not writable)"
run install -d -m 0750 -o root -g "$USER_NAME" "$CONF_DIR"
if [ -f "$CONF_DIR/agent.toml" ] && ! cmp -s "$FROM/agent.toml" "$CONF_DIR/agent.toml"; then
  run cp -p "$CONF_DIR/agent.toml" "$CONF_DIR/agent.toml.previous"
  # A newly installed config supersedes configs the hub pushed earlier.
  run rm -rf "$STATE_DIR/config"
fi
run install -m 0640 -o root -g "$USER_NAME" "$FROM/agent.toml" "$CONF_DIR/agent.toml"
[ -n "$ca_file" ] && run install -m 0644 -o root -g root "$FROM/ca.pem" "$CONF_DIR/ca.pem"

step "Credential into $CRED_DIR (root only, mode 600; systemd hands it to the agent)"
run install -d -m 0700 -o root -g root "$CRED_DIR"
run install -m 0600 -o root -g root "$FROM/$CREDENTIAL" "$CRED_DIR/$CREDENTIAL"
fi

step "Service: systemd/edge-agent.service, enabled at boot, (re)started"
install_unit edge-agent.service

step "Self-check: edge-agent doctor"
run sleep 3
if [ "$DRY_RUN" -eq 1 ]; then
  run "$PREFIX/venv/bin/edge-agent" doctor --config "$CONF_DIR/agent.toml"
  exit 0
fi
if "$PREFIX/venv/bin/edge-agent" doctor --config "$CONF_DIR/agent.toml"; then
  say "Done: $device is installed. Watch it with: journalctl -u edge-agent -f"
else
  say "Installed, but the self-check found problems: fix them as shown above, then run: sudo edge-agent doctor"
  exit 1
fi
