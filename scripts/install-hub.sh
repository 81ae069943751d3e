#!/usr/bin/env bash
# Installs the hub: Mosquitto with TLS for the devices and per-device accounts, and the hub server as a
# hardened systemd service.
#
#   sudo scripts/install-hub.sh --config hub.toml (--cert server.pem --key server.key | --self-signed HOSTNAME)
#                               [--package CHECKOUT_OR_WHEEL] [--dry-run]
#
# --cert/--key: the broker's TLS certificate (with its chain) and key for the name devices use to reach it.
# --self-signed HOSTNAME: make a private CA and a certificate for HOSTNAME instead (devices then get ca.pem
# from 'hub-server device add'). --dry-run prints every step and changes nothing. Safe to run again.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/install-common.sh
. "$REPO/scripts/install-common.sh"

PREFIX=/opt/hub-server
CONF_DIR=/etc/hub-server
CRED_DIR=/etc/hub-server/credentials
USER_NAME=hub-server
BROKER_DIR=/etc/mosquitto/hub  # password file, ACL and certificates named in systemd/mosquitto-hub.conf
MQTT_CREDENTIAL=mqtt-password  # credential names systemd/hub-server.service loads
SESSION_CREDENTIAL=session-key

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

CONFIG="" CERT="" KEY="" SELF_SIGNED="" PACKAGE="$REPO"
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=${2:-}; shift 2 ;;
    --cert) CERT=${2:-}; shift 2 ;;
    --key) KEY=${2:-}; shift 2 ;;
    --self-signed) SELF_SIGNED=${2:-}; shift 2 ;;
    --package) PACKAGE=${2:-}; shift 2 ;;
    -h | --help) usage 0 ;;
    *) parse_common_option "$1" || { echo "unknown option: $1" >&2; usage 2; }; shift ;;
  esac
done

# --- refuse early, with the reason, before anything changes ---
[ -n "$CONFIG" ] || die "--config hub.toml is required (start from configs/hub.example.toml)"
need_file "$CONFIG" "hub config"
if [ -n "$SELF_SIGNED" ]; then
  [ -z "$CERT$KEY" ] || die "give either --cert and --key, or --self-signed HOSTNAME, not both"
elif [ -n "$CERT$KEY" ]; then
  need_file "$CERT" "broker TLS certificate (--cert)"
  need_file "$KEY" "broker TLS key (--key)"
elif [ ! -f "$BROKER_DIR/certs/server.pem" ]; then
  die "the broker needs a TLS certificate: give --cert FILE --key FILE, or --self-signed HOSTNAME"
fi
[ -e "$PACKAGE" ] || die "package not found: $PACKAGE (a checkout folder or a .whl file)"
need_root "$@"
need_python
need_systemd

[ "$(toml_get "$CONFIG" mqtt.password_file)" = "$MQTT_CREDENTIAL" ] \
  || die "$CONFIG: mqtt.password_file must be '$MQTT_CREDENTIAL' (the service provides the credential under that name)"
[ "$(toml_get "$CONFIG" http.session_key_file)" = "$SESSION_CREDENTIAL" ] \
  || die "$CONFIG: http.session_key_file must be '$SESSION_CREDENTIAL' (the service provides it under that name)"
mqtt_user=$(toml_get "$CONFIG" mqtt.username)
mqtt_user=${mqtt_user:-hub}
RELOAD_CHECK='["systemctl", "is-active", "--quiet", "mosquitto-hub-reload.path"]'
reload_command=$(toml_get "$CONFIG" provisioning.reload_command)
case "$reload_command" in
  *mosquitto-hub-reload.path*) ;;
  *) say "note: set provisioning.reload_command = $RELOAD_CHECK in $CONFIG: the broker reloads by itself when"
     say "      the ACL changes (mosquitto-hub-reload.path); the hub server only checks that this watcher runs" ;;
esac
say "Installing the hub$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run: nothing is changed)')"

step "System packages (Mosquitto, Python venv, OpenSSL)"
apt_install mosquitto mosquitto-clients python3-venv openssl

# The drop-in defines listeners and access; Debian's main file only sets paths and includes conf.d.
MAIN_CONF=/etc/mosquitto/mosquitto.conf
if [ -f "$MAIN_CONF" ]; then
  problems=""
  grep -Eq '^[[:space:]]*include_dir[[:space:]]+/etc/mosquitto/conf\.d/?[[:space:]]*$' "$MAIN_CONF" \
    || problems="it does not include /etc/mosquitto/conf.d (add the line: include_dir /etc/mosquitto/conf.d)"
  grep -Eq '^[[:space:]]*(listener|port|allow_anonymous|password_file|acl_file)[[:space:]]' "$MAIN_CONF" \
    && problems="${problems:+$problems; }it sets listeners or access itself (remove its listener, port, allow_anonymous, password_file and acl_file lines: systemd/mosquitto-hub.conf sets them)"
  if [ -n "$problems" ]; then
    [ "$DRY_RUN" -eq 1 ] || die "$MAIN_CONF: $problems"
    say "note: a real run stops here: $MAIN_CONF: $problems"
  fi
fi

step "User $USER_NAME (no extra groups)"
ensure_user "$USER_NAME" "/var/lib/$USER_NAME"

step "Package into $PREFIX/venv"
run install -d -m 0755 "$PREFIX"
ensure_venv "$PREFIX/venv" "$PACKAGE"
run ln -sf "$PREFIX/venv/bin/hub-server" /usr/local/bin/hub-server

step "Config into $CONF_DIR"
run install -d -m 0750 -o root -g "$USER_NAME" "$CONF_DIR"
run install -m 0640 -o root -g "$USER_NAME" "$CONFIG" "$CONF_DIR/hub.toml"

step "Secrets into $CRED_DIR (generated once, root only; systemd hands them to the server)"
run install -d -m 0700 -o root -g root "$CRED_DIR"
for name in "$MQTT_CREDENTIAL" "$SESSION_CREDENTIAL"; do
  if [ -s "$CRED_DIR/$name" ]; then
    say "    keeping existing $CRED_DIR/$name"
  else
    python3 -c 'import secrets; print(secrets.token_urlsafe(32))' | write_file "$CRED_DIR/$name" 0600 root:root
  fi
done

step "Broker accounts in $BROKER_DIR (the hub user now; 'hub-server device add' adds devices)"
# Owned by the hub-server user so that device add (CLI or API) can edit them; readable by Mosquitto.
run install -d -m 2750 -o "$USER_NAME" -g mosquitto "$BROKER_DIR"
[ -f "$BROKER_DIR/passwd" ] || : | write_file "$BROKER_DIR/passwd" 0640 "$USER_NAME:mosquitto"
# The password goes from the credential file to mosquitto_passwd's prompt (asked twice) on standard input:
# never on a command line, which any local user can read from /proc. printf is the shell's own builtin.
run sh -c 'pw=$(cat "$3") && printf "%s\n%s\n" "$pw" "$pw" | mosquitto_passwd "$1" "$2" >/dev/null' \
  hub-passwd "$BROKER_DIR/passwd" "$mqtt_user" "$CRED_DIR/$MQTT_CREDENTIAL"
if [ ! -s "$BROKER_DIR/acl" ]; then
  prefix=$(toml_get "$CONFIG" mqtt.prefix)
  if [ "$DRY_RUN" -eq 1 ]; then
    say "    + write $BROKER_DIR/acl (the hub's block from hub_protocol.topics.hub_acl, mode 0640)"
  else
    "$PREFIX/venv/bin/python" -c 'import sys; from hub_protocol.topics import hub_acl; print("\n".join(hub_acl(sys.argv[1], sys.argv[2])))' \
      "${prefix:-cot}" "$mqtt_user" | write_file "$BROKER_DIR/acl" 0640 "$USER_NAME:mosquitto"
  fi
fi

step "Broker TLS certificate in $BROKER_DIR/certs"
run install -d -m 0750 -o root -g mosquitto "$BROKER_DIR/certs"
if [ -n "$CERT" ]; then
  run install -m 0644 -o root -g mosquitto "$CERT" "$BROKER_DIR/certs/server.pem"
  run install -m 0640 -o root -g mosquitto "$KEY" "$BROKER_DIR/certs/server.key"
elif [ -n "$SELF_SIGNED" ] && [ -f "$BROKER_DIR/certs/server.pem" ]; then
  say "    keeping the existing $BROKER_DIR/certs/server.pem (delete it to make a new one)"
elif [ -n "$SELF_SIGNED" ]; then
  if [ ! -f "$BROKER_DIR/certs/ca.key" ]; then
    run openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=Neighbourhood hub CA" -keyout "$BROKER_DIR/certs/ca.key" -out "$BROKER_DIR/certs/ca.pem"
    run chmod 0600 "$BROKER_DIR/certs/ca.key"
  fi
  run openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$SELF_SIGNED" \
    -keyout "$BROKER_DIR/certs/server.key" -out "$BROKER_DIR/certs/server.csr"
  run sh -c 'printf "subjectAltName = DNS:%s\n" "$1" > "$2"' san "$SELF_SIGNED" "$BROKER_DIR/certs/san.cnf"
  run openssl x509 -req -in "$BROKER_DIR/certs/server.csr" -CA "$BROKER_DIR/certs/ca.pem" \
    -CAkey "$BROKER_DIR/certs/ca.key" -CAcreateserial -days 825 -extfile "$BROKER_DIR/certs/san.cnf" \
    -out "$BROKER_DIR/certs/server.pem"
  run chown root:mosquitto "$BROKER_DIR/certs/server.key" "$BROKER_DIR/certs/server.pem"
  run chmod 0640 "$BROKER_DIR/certs/server.key"
  run chmod 0644 "$BROKER_DIR/certs/ca.pem" "$BROKER_DIR/certs/server.pem"
fi
if [ -n "$SELF_SIGNED" ] && [ "$(toml_get "$CONFIG" provisioning.agent_ca_file)" != "$BROKER_DIR/certs/ca.pem" ]; then
  say "note: devices need $BROKER_DIR/certs/ca.pem: set provisioning.agent_ca_file to it in $CONFIG"
fi

step "Broker config: systemd/mosquitto-hub.conf as /etc/mosquitto/conf.d/hub.conf"
run install -m 0644 "$REPO/systemd/mosquitto-hub.conf" /etc/mosquitto/conf.d/hub.conf
run systemctl enable mosquitto
run systemctl restart mosquitto

step "Broker reload on account changes: systemd/mosquitto-hub-reload.path and .service"
run install -m 0644 "$REPO/systemd/mosquitto-hub-reload.service" /etc/systemd/system/mosquitto-hub-reload.service
run install -m 0644 "$REPO/systemd/mosquitto-hub-reload.path" /etc/systemd/system/mosquitto-hub-reload.path
run systemctl daemon-reload
run systemctl enable --now mosquitto-hub-reload.path

step "Service: systemd/hub-server.service, enabled at boot, (re)started"
install_unit hub-server.service

step "Check: the hub answers on /api/v1/health"
http_port=$(toml_get "$CONFIG" http.port)
url="http://127.0.0.1:${http_port:-8080}/api/v1/health"
if [ "$DRY_RUN" -eq 1 ]; then
  run python3 -c "urlopen('$url')"
  exit 0
fi
for _ in 1 2 3 4 5 6 7 8 9 10; do
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then
    say "Done. Next: sudo -u $USER_NAME hub-server user add NAME --role admin, then"
    say "           sudo -u $USER_NAME hub-server device add DEVICE --site SITE"
    say "(see docs/deploy.md)"
    exit 0
  fi
  sleep 2
done
say "The hub did not answer on $url: see journalctl -u hub-server -u mosquitto"
exit 1
