# Shared by scripts/install-edge-agent.sh and scripts/install-hub.sh (sourced, not run).
# Every step that changes the system goes through `run`, so --dry-run prints the plan and changes nothing.
# Every step is safe to repeat: running an install again updates the package, the config and the unit.

DRY_RUN=0
STEP=0

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

step() {
  STEP=$((STEP + 1))
  say "[$STEP] $*"
}

run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '    + %s\n' "$*"
  else
    "$@"
  fi
}

# Write stdin to a file (mode, owner) through `run`, so that dry runs show it too.
write_file() {
  local path=$1 mode=$2 owner=$3 tmp
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '    + write %s (mode %s, owner %s)\n' "$path" "$mode" "$owner"
    cat >/dev/null
    return
  fi
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$path"
}

need_root() {
  [ "$DRY_RUN" -eq 1 ] && return
  [ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 $*"
}

need_file() {
  local path=$1 what=$2
  [ -e "$path" ] || die "$what not found: $path"
  [ -f "$path" ] || die "$what is not a regular file: $path"
  [ -s "$path" ] || die "$what is empty: $path"
}

need_python() {
  command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python 3.11 or newer (sudo apt-get install python3)"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); 3.11 or newer is needed (Raspberry Pi OS Bookworm has it)"
}

need_systemd() {
  [ "$DRY_RUN" -eq 1 ] && return
  [ -d /run/systemd/system ] || die "systemd is not running here: this installer sets up a systemd service"
}

# A TOML value from a file, with the system Python (3.11 has tomllib): toml_get FILE section.key
toml_get() {
  python3 - "$1" "$2" <<'PY'
import sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
for part in sys.argv[2].split("."):
    data = data.get(part) if isinstance(data, dict) else None
print("" if data is None else data)
PY
}

# apt packages that are missing, installed in one go.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && { say "    system packages present: $*"; return; }
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_group() {
  getent group "$1" >/dev/null 2>&1 && return
  run groupadd --system "$1"
}

# ensure_user NAME HOME [GROUP,GROUP]: a system user without login shell, and its extra groups.
ensure_user() {
  local name=$1 home=$2 groups=${3:-}
  if ! id "$name" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$name"
  fi
  [ -n "$groups" ] && run usermod --append --groups "$groups" "$name"
  return 0
}

# ensure_venv DIR SOURCE: a venv (with the system's site packages: picamera2 and lgpio come from apt) and
# the package from a checkout folder or a wheel file.
ensure_venv() {
  local venv=$1 source=$2
  [ -x "$venv/bin/python" ] || run python3 -m venv --system-site-packages "$venv"
  run "$venv/bin/python" -m pip install --quiet --upgrade pip
  run "$venv/bin/python" -m pip install --quiet --upgrade "$source"
  # The same version number from a newer checkout must still replace the installed code.
  run "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$source"
}

install_unit() {
  local unit=$1
  run install -m 0644 "$REPO/systemd/$unit" "/etc/systemd/system/$unit"
  run systemctl daemon-reload
  run systemctl enable "$unit"
  run systemctl restart "$unit"
}

parse_common_option() {
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    *) return 1 ;;
  esac
}
