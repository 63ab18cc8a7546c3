#!/usr/bin/env bash
# install.sh: install iotlight as a systemd service on Raspberry Pi OS.
#
#   sudo ./install.sh               install, or upgrade an installed one, and start it
#   sudo ./install.sh --uninstall   remove the service, the code, the venv and the command;
#                                   keep the configuration, the seed and the state
#   sudo ./install.sh --purge       uninstall, and delete the configuration, the seed
#                                   (the device's key!), the state and the user too
#   ./install.sh --dry-run          print each command instead of running it
#   ./install.sh --root DIR         install into the scratch tree DIR (tests, images)
#
# Made for Raspberry Pi OS Bookworm and Bullseye (armv7, aarch64); any Debian or
# Ubuntu with systemd works too, without the Sense HAT packages.
#
# What it puts where:
#   /opt/iotlight/iotlight.py          the daemon (replaced on every run)
#   /opt/iotlight/venv                 its Python venv, sees the apt Sense HAT library
#   /etc/iotlight/iotlight.toml        the configuration (written once, never overwritten)
#   /etc/iotlight/device.seed          the device's seed phrase (made once, mode 0600)
#   /var/lib/iotlight                  the state (SQLite) and the user's home
#   /etc/systemd/system/iotlight.service
#   /usr/local/bin/iotlight            the command: sudo iotlight status, ...
#
# Environment:
#   IOTLIGHT_PYTHON    the interpreter the venv is made from (default: python3)
#   IOTLIGHT_PIP_ARGS  extra arguments for `pip install`, e.g. for an offline
#                      install: "--no-index --find-links /media/usb/wheels"
#
# Sourcing this file with IOTLIGHT_INSTALL_LIB=1 defines the functions and runs nothing.

set -euo pipefail

# =============================================================================
# Constants
# =============================================================================

readonly APP_USER=iotlight
readonly SERVICE=iotlight.service
readonly APP_DIR=/opt/iotlight
readonly VENV_DIR=/opt/iotlight/venv
readonly CONF_DIR=/etc/iotlight
readonly CONF_FILE=/etc/iotlight/iotlight.toml
readonly SEED_FILE=/etc/iotlight/device.seed
readonly STATE_DIR=/var/lib/iotlight
readonly STATE_FILE=/var/lib/iotlight/iotlight.db
readonly UNIT_FILE=/etc/systemd/system/iotlight.service
# The command people type (sudo iotlight status), and the line that marks it as ours.
readonly COMMAND_FILE=/usr/local/bin/iotlight
readonly COMMAND_MARK="written by iotlight's install.sh"
# The Sense HAT's devices: video owns /dev/fb* (LED matrix), input owns
# /dev/input/event* (joystick), i2c owns /dev/i2c-* (sensors).
readonly DEVICE_GROUPS=(video input i2c gpio)
readonly MIN_PYTHON=3.9
readonly DEFAULT_MONITOR_HOST=127.0.0.1
readonly DEFAULT_MONITOR_PORT=8765
# The files install.sh installs, found next to it.
readonly SOURCE_FILES=(iotlight.py iotlight.toml requirements.txt)

# Where the system says what it is (tests point these elsewhere).
OS_RELEASE=/etc/os-release
MODEL_FILE=/proc/device-tree/model
CGROUP_CONTROLLERS=/sys/fs/cgroup/cgroup.controllers

# Set by parse_args; SOURCE_DIR and WORK by main.
SOURCE_DIR=""
ROOT=""
DRY_RUN=0
ACTION=install
PURGE=0
PYTHON=python3
WORK=""
# Set by install_command: did this run write /usr/local/bin/iotlight?
COMMAND_INSTALLED=0

# =============================================================================
# Output and command running
# =============================================================================

say() { printf 'install.sh: %s\n' "$*" >&2; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
err() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

# Run a command that changes the system, or only print it under --dry-run.
run() {
    if ((DRY_RUN)); then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    "$@"
}

# The path on the target system -> the path this run writes to.
p() { printf '%s%s' "$ROOT" "$1"; }

usage() {
    cat <<'EOF'
Usage: install.sh [--dry-run] [--root DIR] [--uninstall | --purge]

Installs iotlight as the systemd service iotlight.service and starts it
(Raspberry Pi OS Bookworm or Bullseye; Debian or Ubuntu without the Sense HAT),
with the command /usr/local/bin/iotlight for its commands (sudo iotlight status).
Run it again to upgrade: the code and the venv are replaced, the configuration
/etc/iotlight/iotlight.toml, the seed and the state are kept.

Options:
  --uninstall   stop and remove the service, /opt/iotlight and its venv and
                the iotlight command; keep /etc/iotlight (configuration, seed)
                and /var/lib/iotlight
  --purge       --uninstall, then delete /etc/iotlight, /var/lib/iotlight and
                the user iotlight; the seed is the only key to the device's
                address: copy it first if the address holds anything
  --dry-run     print each command instead of running it
  --root DIR    install into the scratch tree DIR (for tests and images):
                every path is prefixed with DIR; apt-get and systemctl still
                run from PATH
  -h, --help    show this help

Environment: IOTLIGHT_PYTHON (default python3) makes the venv;
IOTLIGHT_PIP_ARGS adds arguments to pip install (e.g. offline wheels:
"--no-index --find-links DIR").
EOF
}

parse_args() {
    while (($#)); do
        case "$1" in
            --uninstall) ACTION=uninstall ;;
            --purge) ACTION=uninstall PURGE=1 ;;
            --dry-run) DRY_RUN=1 ;;
            --root)
                (($# >= 2)) || usage_error "--root needs a directory: --root DIR"
                ROOT="$2"
                shift
                ;;
            --root=*) ROOT="${1#--root=}" ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) usage_error "unknown option '$1': see install.sh --help" ;;
        esac
        shift
    done
    if [[ -n "$ROOT" ]]; then
        [[ -d "$ROOT" ]] || usage_error "--root $ROOT: no such directory: create it first"
        ROOT="$(cd "$ROOT" && pwd)"
        [[ "$ROOT" != / ]] || ROOT=""
    fi
    PYTHON="${IOTLIGHT_PYTHON:-python3}"
}

usage_error() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 2
}

# =============================================================================
# Pre-flight: every check before the first change
# =============================================================================

# The package that provides a command, for the "install it" hint.
package_of() {
    case "$1" in
        useradd | usermod | userdel | groupdel) echo passwd ;;
        install | mktemp | id) echo coreutils ;;
        getent) echo libc-bin ;;
        awk) echo mawk ;;
        systemctl) echo systemd ;;
        python3*) echo python3 ;;
        *) echo "$1" ;;
    esac
}

require_commands() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 ||
            err "needs the command '$cmd': install it with: sudo apt-get install $(package_of "$cmd")"
    done
}

check_root() {
    [[ -n "$ROOT" ]] && return 0
    ((DRY_RUN)) && return 0
    [[ "$(id -u)" == 0 ]] ||
        err "must run as root to install a system service: sudo $0 (or try --dry-run first)"
}

# Raspberry Pi OS, Debian or Ubuntu: apt and systemd.
check_os() {
    local release="$OS_RELEASE"
    local ID="" ID_LIKE="" VERSION_CODENAME="" PRETTY_NAME=""
    [[ -r "$release" ]] ||
        err "cannot read $release to tell the system: this installer needs Raspberry Pi OS, Debian or Ubuntu"
    # shellcheck disable=SC1090  # os-release is a file of shell assignments
    . "$release"
    case " $ID $ID_LIKE " in
        *" debian "* | *" raspbian "* | *" ubuntu "*) ;;
        *) err "unsupported system '${PRETTY_NAME:-$ID}': this installer needs Raspberry Pi OS, Debian or Ubuntu (apt and systemd); elsewhere install by hand as README.md describes" ;;
    esac
    if is_raspberry_pi && [[ "$VERSION_CODENAME" != bookworm && "$VERSION_CODENAME" != bullseye ]]; then
        warn "Raspberry Pi OS '${VERSION_CODENAME:-unknown}' is untested: iotlight is made for Bookworm and Bullseye"
    fi
}

check_python() {
    local version
    version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
        err "cannot run $PYTHON: install it with: sudo apt-get install python3 (or set IOTLIGHT_PYTHON)"
    version_at_least "$version" "$MIN_PYTHON" ||
        err "$PYTHON is Python $version; iotlight needs $MIN_PYTHON or newer: use Raspberry Pi OS Bullseye or later, or set IOTLIGHT_PYTHON to a newer python3"
}

# version_at_least 3.11 3.9 -> true
version_at_least() {
    local have_major="${1%%.*}" have_minor="${1#*.}" need_major="${2%%.*}" need_minor="${2#*.}"
    ((have_major > need_major || (have_major == need_major && have_minor >= need_minor)))
}

check_sources() {
    local f
    for f in "${SOURCE_FILES[@]}"; do
        [[ -f "$SOURCE_DIR/$f" ]] ||
            err "$f is missing next to install.sh ($SOURCE_DIR): run install.sh from a full copy of the iotlight repository"
    done
}

check_systemd() {
    [[ -n "$ROOT" ]] && return 0
    ((DRY_RUN)) && return 0
    [[ -d /run/systemd/system ]] ||
        err "systemd is not running here: iotlight installs as a systemd service; boot the system with systemd (or try --dry-run)"
}

preflight() {
    check_root
    require_commands getent id install mktemp awk systemctl
    check_os
    check_systemd
    if [[ "$ACTION" == install ]]; then
        require_commands apt-get useradd usermod
        check_sources
        check_python
    elif ((PURGE)); then
        require_commands userdel groupdel
    fi
}

# =============================================================================
# The system: hardware, users and groups (in the tree under --root)
# =============================================================================

is_raspberry_pi() {
    [[ -r "$MODEL_FILE" ]] && tr -d '\0' <"$MODEL_FILE" | grep -q 'Raspberry Pi'
}

apt_packages() {
    echo python3-venv
    if is_raspberry_pi; then
        echo sense-hat python3-rtimulib python3-gpiozero
    fi
}

# lookup passwd|group NAME: the entry, from the tree under --root.
lookup() {
    if [[ -n "$ROOT" ]]; then
        [[ -r "$ROOT/etc/$1" ]] || return 1
        awk -F: -v name="$2" '$1 == name { print; found = 1 } END { exit !found }' "$ROOT/etc/$1"
    else
        getent "$1" "$2"
    fi
}

user_in_group() {
    local members
    members="$(lookup group "$2" | cut -d: -f4)"
    [[ ",$members," == *",$1,"* ]]
}

# Groups of DEVICE_GROUPS present on this system, one per line.
present_device_groups() {
    local group
    for group in "${DEVICE_GROUPS[@]}"; do
        if lookup group "$group" >/dev/null; then
            echo "$group"
        fi
    done
}

# "user:group" for chown. Under --root the tree's ids, which the host may not know.
owner() {
    local user="$1" group="$2" uid gid
    if [[ -z "$ROOT" ]]; then
        echo "$user:$group"
        return
    fi
    uid="$(lookup passwd "$user" | cut -d: -f3)" || uid=""
    gid="$(lookup group "$group" | cut -d: -f3)" || gid=""
    echo "${uid:-$user}:${gid:-$group}"
}

# useradd and friends, acting on the tree under --root.
account_tool() {
    local tool="$1"
    shift
    if [[ -n "$ROOT" ]]; then
        run "$tool" --prefix "$ROOT" "$@"
    else
        run "$tool" "$@"
    fi
}

# =============================================================================
# The configuration file
# =============================================================================

# set_toml_key FILE SECTION KEY VALUE: set KEY in [SECTION] to the TOML literal
# VALUE, in place. Replaces the key's line; without one (commented-out lines
# stay), adds it under the section header; without the section, appends it.
set_toml_key() {
    local file="$1" section="$2" key="$3" value="$4" edited
    edited="$(awk -v section="$section" -v key="$key" -v value="$value" '
        function header_name(line) {
            if (line !~ /^[ \t]*\[[^\[\]]+\][ \t]*(#.*)?$/) return ""
            sub(/^[ \t]*\[[ \t]*/, "", line)
            sub(/[ \t]*\].*$/, "", line)
            return line
        }
        function is_key(line) { return line ~ ("^[ \t]*" key "[ \t]*=") }
        # First pass: does the section hold the key already?
        NR == FNR {
            name = header_name($0)
            if (name != "") { inside = (name == section); if (inside) has_section = 1 }
            else if (inside && is_key($0)) has_key = 1
            next
        }
        # Second pass: write the file with the key set.
        FNR == 1 { inside = 0 }
        {
            name = header_name($0)
            if (name != "") {
                inside = (name == section)
                print
                if (inside && !has_key && !done) { print key " = " value; done = 1 }
                next
            }
            if (inside && is_key($0) && !done) { print key " = " value; done = 1; next }
            print
        }
        END {
            if (!has_section) printf "\n[%s]\n%s = %s\n", section, key, value
        }
    ' "$file" "$file")"
    printf '%s\n' "$edited" >"$file"
}

# toml_get FILE DOTTED.KEY: the value (strings bare); exit 4 when the key is
# absent, 3 when no TOML reader is at hand, 1 with a message when FILE is broken.
readonly TOML_GET_PY='
import sys
try:
    import tomllib
except ImportError:
    try:
        import tomli as tomllib
    except ImportError:
        sys.exit(3)
path, dotted = sys.argv[1], sys.argv[2]
try:
    with open(path, "rb") as f:
        value = tomllib.load(f)
except (OSError, tomllib.TOMLDecodeError) as exc:
    sys.exit("%s: %s" % (path, exc))
for part in dotted.split("."):
    if not isinstance(value, dict) or part not in value:
        sys.exit(4)
    value = value[part]
print(value)
'

toml_get() {
    local python="$PYTHON"
    [[ -x "$(p "$VENV_DIR")/bin/python" ]] && python="$(p "$VENV_DIR")/bin/python"
    "$python" -c "$TOML_GET_PY" "$1" "$2"
}

# config_value FILE DOTTED.KEY DEFAULT: the value, or DEFAULT when absent or unreadable.
config_value() {
    local value status=0
    value="$(toml_get "$1" "$2")" || status=$?
    case "$status" in
        0) printf '%s\n' "$value" ;;
        3 | 4) printf '%s\n' "$3" ;;
        *) err "cannot read $1: fix the file (it must be valid TOML) and run install.sh again" ;;
    esac
}

# check_toml_key FILE DOTTED.KEY VALUE: after set_toml_key, read it back where
# a TOML reader is at hand (Bullseye's python3 has none before the venv).
check_toml_key() {
    local value status=0
    value="$(toml_get "$1" "$2" 2>&1)" || status=$?
    [[ "$status" == 3 || ("$status" == 0 && "$value" == "$3") ]] ||
        err "could not set $2 in a copy of $SOURCE_DIR/iotlight.toml (${value:-no such key}): check that file's [${2%%.*}] section"
}

# A path from the configuration, as the daemon sees it (relative to the file's folder).
config_path() {
    local value
    value="$(config_value "$(p "$CONF_FILE")" "$1" "$2")"
    [[ "$value" == /* ]] || value="$CONF_DIR/$value"
    printf '%s\n' "$value"
}

# The configuration to hand iotlight.py from this installer: the installed one,
# or under --root a copy whose absolute paths point into the tree.
runtime_config() {
    local copy="$WORK/runtime.toml"
    if [[ -z "$ROOT" ]]; then
        echo "$CONF_FILE"
        return
    fi
    if [[ ! -f "$copy" ]]; then
        cp "$(p "$CONF_FILE")" "$copy"
        set_toml_key "$copy" device seed_file "\"$(p "$(config_path device.seed_file device.seed)")\""
        set_toml_key "$copy" device state_file "\"$(p "$(config_path device.state_file iotlight.db)")\""
    fi
    echo "$copy"
}

# =============================================================================
# The systemd unit
# =============================================================================

# render_unit GROUP...: the unit, with the device groups present on this system.
render_unit() {
    local supplementary="$*"
    cat <<EOF
# $UNIT_FILE: written by iotlight's install.sh, replaced on every run.
# Local changes go into a drop-in: sudo systemctl edit iotlight

[Unit]
# What systemctl status and the journal call it.
Description=iotlight: Sense HAT light sold for tokens on a Waves chain
# Pull in a configured network: the daemon talks to a node from the start.
Wants=network-online.target
# Start after it (the daemon retries the node anyway if it is not there yet).
After=network-online.target
# Stop restarting after 5 failed starts within 10 minutes: something needs a look.
StartLimitBurst=5
# The window for StartLimitBurst (systemctl reset-failed iotlight clears it).
StartLimitIntervalSec=600

[Service]
# The daemon sends READY=1 once its configuration is checked and its state
# file is open, STOPPING=1 when it shuts down and WATCHDOG=1 pings.
Type=notify
# Only the daemon's own process may send those notifications.
NotifyAccess=main
# Restart the daemon when no WATCHDOG=1 came for this long: it hangs.
WatchdogSec=30
# A Pi Zero needs a while to import numpy and the Sense HAT library.
TimeoutStartSec=120
# SIGTERM, then this long to save the light state and the outbox before SIGKILL.
TimeoutStopSec=30
# The venv's python runs the daemon with the installed configuration, as a module
# from the bytecode install.sh compiled: no compiling at every start (8 MB less memory).
# -I (isolated): neither the working directory nor the user's ~/.local (both in
# the state directory the daemon can write) nor PYTHON* variables reach the
# import path, so no planted json.py or usercustomize.py runs with the seed at hand;
# python -m finds iotlight.py through iotlight.pth in the root-owned venv.
# -u: Python buffers stdout when it is no terminal; journald should see lines at once.
ExecStart=$VENV_DIR/bin/python -I -u -m iotlight -c $CONF_FILE run
# After every stop, however it ended (a crash, the watchdog's SIGABRT, SIGKILL,
# or the last failed start): switch light.gpio_pin off, as a clean stop does, so
# a relay is never left on by a daemon that is gone. Does nothing when the pin is
# -1; "-": its failure (a bad configuration) does not mark the unit failed.
ExecStopPost=-$VENV_DIR/bin/python -I -u -m iotlight -c $CONF_FILE gpio-off
# Log lines appear in the journal as iotlight[PID] instead of python[PID].
SyslogIdentifier=iotlight
# The unprivileged system user made by install.sh.
User=$APP_USER
# Its own group.
Group=$APP_USER
EOF
    if [[ -n "$supplementary" ]]; then
        cat <<EOF
# Device groups (also the user's groups): video for /dev/fb*, input for
# /dev/input/event*, i2c for /dev/i2c-*, gpio for /dev/gpiochip* and
# /dev/gpiomem (light.gpio_pin); install.sh lists only those present.
SupplementaryGroups=$supplementary
EOF
    fi
    cat <<EOF
# Restart after a crash, a watchdog timeout or an error exit...
Restart=on-failure
# ...but not after exit status 2 (a bad configuration) or 3 (a damaged state
# file, moved aside): a restart cannot fix either, a person must look.
RestartPreventExitStatus=2 3
# Wait this long between restarts (the node may be down for a moment).
RestartSec=5
# /var/lib/iotlight: the state file and the user's home, created and owned by
# the user; the one place the daemon may write (the Sense HAT library keeps
# its IMU settings in ~/.config/sense_hat).
StateDirectory=iotlight
# Readable by the user only.
StateDirectoryMode=0750
# Start in the code folder, which only root can write (never the state directory:
# the working directory must hold nothing the daemon itself could have put there).
WorkingDirectory=$APP_DIR
# New files are readable by the user only.
UMask=0077
# No core dumps: one after a crash or the watchdog's SIGABRT would hold the
# device's private key, on disk.
LimitCORE=0
# Memory: the daemon holds about 40 MB resident idle and peaked at about 80 MB
# under the fault campaign (SIGKILLs, node chaos, 1,000 hostile monitor
# connections). Above 150 MB (almost twice that) the kernel reclaims the
# daemon's memory and slows it down...
MemoryHigh=150M
# ...and at 200 MB it is killed (then restarted by Restart=on-failure): only a
# leak gets there, and it is stopped long before a 512 MB Pi runs out of memory.
MemoryMax=200M

# Hardening. Left out on purpose: PrivateDevices= (hides the Sense HAT's
# /dev/fb*, /dev/input/event*, /dev/i2c-*), PrivateUsers= (would unmap the
# device groups), MemoryDenyWriteExecute= (breaks libffi callbacks).
# Neither the daemon nor anything it starts gains privileges (setuid, file caps).
NoNewPrivileges=yes
# No capabilities at all, not even by accident.
CapabilityBoundingSet=
# None handed down either.
AmbientCapabilities=
# The whole file system is read-only for the daemon except its StateDirectory.
ProtectSystem=strict
# /home, /root and /run/user are invisible.
ProtectHome=yes
# A private /tmp and /var/tmp, emptied when the daemon stops.
PrivateTmp=yes
# Devices: the pseudo devices (/dev/null, /dev/urandom, ...) and these only.
DevicePolicy=closed
# The LED matrix framebuffer, /dev/fb*.
DeviceAllow=char-fb rw
# The joystick, /dev/input/event*.
DeviceAllow=char-input r
# The sensors on the I2C bus, /dev/i2c-*.
DeviceAllow=char-i2c rw
# light.gpio_pin with gpiozero and lgpio (Bookworm): /dev/gpiochip*.
DeviceAllow=char-gpiochip rw
# light.gpio_pin with gpiozero and RPi.GPIO (Bullseye): /dev/gpiomem.
DeviceAllow=char-bcm2835-gpiomem rw
# journald and sd_notify (AF_UNIX), the node and the monitor (AF_INET, AF_INET6).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
# /proc/sys, /sys and friends are read-only (the HAT is found by reading /sys).
ProtectKernelTunables=yes
# No loading of kernel modules.
ProtectKernelModules=yes
# No reading of the kernel log.
ProtectKernelLogs=yes
# The cgroup tree is read-only.
ProtectControlGroups=yes
# The clocks cannot be set.
ProtectClock=yes
# The hostname cannot be changed.
ProtectHostname=yes
# Other users' processes are invisible in /proc.
ProtectProc=invisible
# No new namespaces.
RestrictNamespaces=yes
# No realtime scheduling.
RestrictRealtime=yes
# No setuid or setgid files can be made.
RestrictSUIDSGID=yes
# The execution domain (personality) is fixed.
LockPersonality=yes
# System V IPC objects of the user go away when it stops.
RemoveIPC=yes
# Only the machine's own system call ABI.
SystemCallArchitectures=native
# System calls a typical service needs...
SystemCallFilter=@system-service
# ...without the privileged ones and resource tuning.
SystemCallFilter=~@privileged @resources
# A filtered system call fails with EPERM instead of killing the daemon.
SystemCallErrorNumber=EPERM

[Install]
# Start at boot with the rest of the system services.
WantedBy=multi-user.target
EOF
}

# =============================================================================
# The iotlight command
# =============================================================================

# The command on the PATH: iotlight.py's commands with the venv (where the
# dependencies are) and the installed configuration.
render_command() {
    cat <<EOF
#!/bin/sh
# $COMMAND_FILE: $COMMAND_MARK, replaced on every run.
#
# iotlight's commands with the installed interpreter (the venv that holds the
# dependencies) and the installed configuration $CONF_FILE:
#   iotlight --version    sudo iotlight status    sudo iotlight pay --seed-file F ADDRESS 20
# A -c PATH of your own wins. $CONF_FILE is readable by root and the
# group $APP_USER only, hence sudo. The daemon itself runs as $SERVICE.
#
# python -I: the working directory (wherever sudo runs this) and PYTHON*
# variables never reach the import path. The files are found from where this
# script lies, so a tree made with install.sh --root DIR runs from DIR.
bin_dir=$(dirname "$COMMAND_FILE")
conf=$CONF_FILE
python=$VENV_DIR/bin/python
EOF
    cat <<'EOF'
self="$(readlink -f -- "$0")" || self="$0"
root="${self%/*}"
root="${root%"$bin_dir"}"
[ "$root" != "${self%/*}" ] || root=""
conf="$root$conf"
python="$root$python"

# The command, and whether the default configuration is needed at all.
own_conf=0 info=0 command="" skip=0
for arg in "$@"; do
    if [ "$skip" = 1 ]; then
        skip=0
        continue
    fi
    case "$arg" in
        -c | --c | --co | --con | --conf | --confi | --config) own_conf=1 skip=1 ;;
        -c* | --c*) own_conf=1 ;;
        -h | --help | --version) info=1 ;;
        -*) ;;
        *) [ -n "$command" ] || command="$arg" ;;
    esac
done

if [ "$own_conf" = 0 ] && [ "$info" = 0 ]; then
    if [ "$(id -u)" != 0 ] && [ ! -r "$conf" ]; then
        line="sudo iotlight"
        [ "$#" = 0 ] || line="sudo iotlight $*"
        echo "iotlight: cannot read $conf (root and the group iotlight only): run the command with sudo: $line" >&2
        exit 2
    fi
    if [ "$(id -u)" = 0 ] && { [ -z "$command" ] || [ "$command" = run ]; }; then
        echo "iotlight: the daemon runs as the service iotlight.service, not as root: sudo systemctl restart iotlight (its log: journalctl -u iotlight -f)" >&2
        exit 2
    fi
fi
if [ ! -x "$python" ]; then
    echo "iotlight: $python is missing: install iotlight again with its install.sh" >&2
    exit 1
fi
# -c first: a -c of the caller's comes later and wins.
exec "$python" -I -m iotlight -c "$conf" "$@"
EOF
}

# Is the file ours (written by install.sh, not a link)?
is_our_command() {
    [[ -f "$1" && ! -L "$1" ]] && grep -qF "$COMMAND_MARK" "$1"
}

install_command() {
    local target rendered="$WORK/iotlight"
    target="$(p "$COMMAND_FILE")"
    if [[ -e "$target" || -L "$target" ]] && ! is_our_command "$target"; then
        warn "$COMMAND_FILE exists and is not install.sh's: left alone (so 'iotlight' may be another program); iotlight's commands also run as: sudo $VENV_DIR/bin/python -I -m iotlight -c $CONF_FILE COMMAND"
        return
    fi
    render_command >"$rendered"
    say "installing the command $COMMAND_FILE"
    run install -d -m 0755 "$(p "$(dirname "$COMMAND_FILE")")"
    run install -m 0755 "$rendered" "$target"
    COMMAND_INSTALLED=1
}

# =============================================================================
# Install steps
# =============================================================================

install_packages() {
    local packages
    mapfile -t packages < <(apt_packages | tr ' ' '\n')
    say "installing from apt: ${packages[*]}"
    run env DEBIAN_FRONTEND=noninteractive apt-get -q update
    run env DEBIAN_FRONTEND=noninteractive apt-get -q install -y "${packages[@]}"
}

ensure_user() {
    local groups=() group missing=()
    for group in "${DEVICE_GROUPS[@]}"; do
        if lookup group "$group" >/dev/null; then
            groups+=("$group")
        else
            missing+=("$group")
        fi
    done
    for group in "${missing[@]}"; do
        case "$group" in
            i2c) say "note: no group i2c here, skipped: the Sense HAT's sensors need I2C; on a Raspberry Pi enable it with 'sudo raspi-config nonint do_i2c 0', then run install.sh again" ;;
            video) say "note: no group video here, skipped: the LED matrix (/dev/fb*) may not be writable by $APP_USER" ;;
            input) say "note: no group input here, skipped: the joystick (/dev/input/event*) may not be readable by $APP_USER" ;;
        esac
    done
    local joined
    joined="$(IFS=,; echo "${groups[*]}")"
    if ! lookup passwd "$APP_USER" >/dev/null; then
        say "creating the system user $APP_USER${joined:+ in the groups $joined}"
        account_tool useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "iotlight daemon" ${joined:+--groups "$joined"} "$APP_USER"
        return
    fi
    local home
    home="$(lookup passwd "$APP_USER" | cut -d: -f6)"
    [[ "$home" == "$STATE_DIR" ]] ||
        warn "the user $APP_USER has the home $home, not $STATE_DIR: the Sense HAT library writes its settings there; change it with: sudo usermod --home $STATE_DIR $APP_USER"
    local add=()
    for group in "${groups[@]}"; do
        user_in_group "$APP_USER" "$group" || add+=("$group")
    done
    if ((${#add[@]})); then
        say "adding $APP_USER to the groups ${add[*]}"
        account_tool usermod --append --groups "$(IFS=,; echo "${add[*]}")" "$APP_USER"
    fi
}

install_code() {
    say "installing $APP_DIR/iotlight.py"
    run install -d -m 0755 "$(p "$APP_DIR")"
    run install -m 0644 "$SOURCE_DIR/iotlight.py" "$(p "$APP_DIR/iotlight.py")"
    run install -m 0644 "$SOURCE_DIR/requirements.txt" "$(p "$APP_DIR/requirements.txt")"

    local venv venv_version python_version make_venv=1
    venv="$(p "$VENV_DIR")"
    python_version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ -d "$venv" ]]; then
        venv_version="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
            venv_version="none"
        if [[ "$venv_version" == "$python_version" ]]; then
            make_venv=0
        else
            say "the venv runs Python $venv_version, $PYTHON is $python_version: making it anew"
            run rm -rf "$venv"
        fi
    fi
    if ((make_venv)); then
        # --system-site-packages: the Sense HAT library and RTIMU come from apt.
        say "creating the venv $VENV_DIR"
        run "$PYTHON" -m venv --system-site-packages "$venv" ||
            err "cannot create the venv $venv: install python3-venv (sudo apt-get install python3-venv) and run install.sh again"
    fi

    local pip_args=()
    read -r -a pip_args <<<"${IOTLIGHT_PIP_ARGS:-}"
    say "installing the Python dependencies from requirements.txt (minutes on a Pi Zero)"
    run env PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$venv/bin/python" -m pip install --quiet --no-input --upgrade "${pip_args[@]}" \
        -r "$SOURCE_DIR/requirements.txt" ||
        err "pip could not install requirements.txt into $VENV_DIR: check the network (or IOTLIGHT_PIP_ARGS) and run install.sh again"
    # The unit runs `python -m iotlight` from this bytecode (the code folder is read-only for it).
    say "compiling iotlight.py to bytecode"
    run "$venv/bin/python" -m py_compile "$(p "$APP_DIR/iotlight.py")" ||
        err "iotlight.py does not compile with $VENV_DIR/bin/python (Python 3.9 or newer is needed)"
    install_pth "$venv" "$python_version"
    ((DRY_RUN)) || "$venv/bin/python" -I -m iotlight --version >/dev/null ||
        err "$VENV_DIR/bin/python -I -m iotlight does not find $APP_DIR/iotlight.py (see above)"
}

# install_pth VENV X.Y: iotlight.pth in the venv's site-packages names the code
# folder, so `python -I -m iotlight` (the unit, the iotlight command) finds
# iotlight.py although -I drops PYTHONPATH and the working directory. The path
# in it is relative to site-packages: a tree made with --root works where it lies.
install_pth() {
    local venv="$1" site rel pth="$WORK/iotlight.pth"
    if ((DRY_RUN)) && [[ ! -x "$venv/bin/python" ]]; then
        run install -m 0644 "$pth" "$venv/lib/python$2/site-packages/iotlight.pth"
        return
    fi
    site="$("$venv/bin/python" -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    rel="$("$venv/bin/python" -I -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
        "$(p "$APP_DIR")" "$site")"
    printf '%s\n' "$rel" >"$pth"
    run install -m 0644 "$pth" "$site/iotlight.pth"
}

install_config() {
    local conf
    conf="$(p "$CONF_FILE")"
    run install -d -m 0750 "$(p "$CONF_DIR")"
    run chown "$(owner root "$APP_USER")" "$(p "$CONF_DIR")"
    if [[ -e "$conf" ]]; then
        say "keeping the configuration $CONF_FILE"
        return
    fi
    say "writing the configuration $CONF_FILE"
    local fresh="$WORK/iotlight.toml"
    cp "$SOURCE_DIR/iotlight.toml" "$fresh"
    set_toml_key "$fresh" device seed_file "\"$SEED_FILE\""
    set_toml_key "$fresh" device state_file "\"$STATE_FILE\""
    check_toml_key "$fresh" device.seed_file "$SEED_FILE"
    check_toml_key "$fresh" device.state_file "$STATE_FILE"
    run install -m 0640 "$fresh" "$conf"
    run chown "$(owner root "$APP_USER")" "$conf"
}

ensure_state_dir() {
    run install -d -m 0750 "$(p "$STATE_DIR")"
    run chown "$(owner "$APP_USER" "$APP_USER")" "$(p "$STATE_DIR")"
}

ensure_seed() {
    local seed
    if [[ -e "$(p "$CONF_FILE")" ]]; then
        seed="$(config_path device.seed_file device.seed)"
    else
        seed="$SEED_FILE" # --dry-run of a first install
    fi
    check_seed_place "$seed"
    if [[ -e "$(p "$seed")" ]]; then
        say "keeping the device seed $seed"
    else
        say "creating the device seed $seed"
        if ((DRY_RUN)); then
            run "$VENV_DIR/bin/python" "$APP_DIR/iotlight.py" -c "$CONF_FILE" keygen
        else
            # Its lines go to stderr with the installer's; report() prints the address.
            "$(p "$VENV_DIR")/bin/python" "$(p "$APP_DIR")/iotlight.py" -c "$(runtime_config)" keygen >&2 ||
                err "iotlight.py keygen failed (see above): fix the cause and run install.sh again"
        fi
    fi
    # check_seed_place made sure the service user cannot have swapped the file
    # for a link since; -h all the same.
    run chown -h "$(owner "$APP_USER" "$APP_USER")" "$(p "$seed")"
    run chmod 0600 "$(p "$seed")"
}

# check_seed_place SEED: refuse a seed file install.sh cannot safely chown and
# chmod as root: a symbolic link (chmod follows it, to whatever it names), or
# one in a folder the service user can write, directly or through a folder
# above it (it could put a link to /etc/shadow there, before or during a run).
check_seed_place() {
    local seed="$1" path dir top="${ROOT:-/}"
    path="$(p "$seed")"
    dir="$(readlink -f -- "$(dirname "$path")")" || dir=""
    if [[ -n "$dir" ]]; then # else its folder does not exist: keygen will say so
        while :; do
            if writable_by_user "$dir"; then
                err "the seed file $seed lies in ${dir#"$ROOT"}, where the user $APP_USER can put a link in its place; install.sh changes the seed's owner and mode as root, so it must live where only root writes: set device.seed_file in $CONF_FILE to such a place (the default is $SEED_FILE) and run install.sh again"
            fi
            [[ "$dir" != "$top" && "$dir" != / ]] || break
            dir="$(dirname "$dir")"
        done
    fi
    [[ ! -L "$path" ]] ||
        err "the seed file $seed is a symbolic link: install.sh changes owners and modes of real files only; put the file itself in its place (or point device.seed_file in $CONF_FILE at it) and run install.sh again"
}

# writable_by_user DIR: may the service user add, rename or remove entries in
# DIR? The state directory always (the unit hands it over); else by owner,
# group (the user's groups, from the tree under --root) and mode bits.
writable_by_user() {
    local dir="$1" state uid perm owner group
    state="$(readlink -f -- "$(p "$STATE_DIR")")" || state="$(p "$STATE_DIR")"
    [[ "$dir" == "$state" || "$dir" == "$state"/* ]] && return 0
    read -r perm owner group < <(stat -c '%a %u %g' -- "$dir") || return 1
    perm=$((8#$perm))
    ((perm & 8#0002)) && return 0
    uid="$(lookup passwd "$APP_USER" | cut -d: -f3)" ||
        return 1 # no such user yet (a dry run): nothing else it can write
    ((perm & 8#0200)) && [[ "$owner" == "$uid" ]] && return 0
    ((perm & 8#0020)) && user_gids | grep -qxF "$group"
}

# The service user's group ids, one per line (from the tree under --root).
user_gids() {
    local primary
    primary="$(lookup passwd "$APP_USER" | cut -d: -f4)" || return 0
    if [[ -n "$ROOT" ]]; then
        awk -F: -v user="$APP_USER" -v primary="$primary" \
            '$3 == primary || ("," $4 ",") ~ ("," user ",") { print $3 }' "$ROOT/etc/group"
    else
        id -G "$APP_USER" | tr ' ' '\n'
    fi
}

# Is payment.asset_id set? Without it the daemon stops at once with exit 2.
asset_configured() {
    [[ -e "$(p "$CONF_FILE")" ]] &&
        [[ -n "$(config_value "$(p "$CONF_FILE")" payment.asset_id "")" ]]
}

install_unit() {
    local groups=() rendered="$WORK/$SERVICE"
    mapfile -t groups < <(present_device_groups)
    render_unit "${groups[@]}" >"$rendered"
    say "installing $UNIT_FILE"
    run install -d -m 0755 "$(p "$(dirname "$UNIT_FILE")")"
    run install -m 0644 "$rendered" "$(p "$UNIT_FILE")"
    run systemctl daemon-reload
    run systemctl enable "$SERVICE"
    if asset_configured; then
        # restart, not enable --now: an upgrade must replace the running code.
        say "starting $SERVICE"
        run systemctl restart "$SERVICE" ||
            err "$SERVICE did not start: see 'journalctl -u iotlight -e', fix the cause, then: sudo systemctl restart iotlight"
    else
        say "$SERVICE is enabled but not started: payment.asset_id is not set in $CONF_FILE yet"
    fi
}

# The unit's MemoryHigh= and MemoryMax= need the cgroup memory controller,
# which Raspberry Pi OS kernels start with off (cgroup_disable=memory): then
# systemd runs the daemon without them. Say so, with the way to turn it on.
note_memory_controller() {
    [[ -r "$CGROUP_CONTROLLERS" ]] || return 0
    if ! grep -qw memory "$CGROUP_CONTROLLERS"; then
        say "note: the kernel runs without the cgroup memory controller, so the unit's MemoryHigh= and MemoryMax= do not act; to have them, add 'cgroup_enable=memory' to the kernel command line (on a Pi: /boot/firmware/cmdline.txt, or /boot/cmdline.txt on Bullseye) and reboot"
    fi
}

# "HOST PORT" of the monitor from the configuration (the one to be installed
# under --dry-run); HOST made reachable from outside when it listens on all.
monitor_endpoint() {
    local conf host port
    conf="$(p "$CONF_FILE")"
    [[ -e "$conf" ]] || conf="$SOURCE_DIR/iotlight.toml"
    host="$(config_value "$conf" monitor.host "$DEFAULT_MONITOR_HOST")"
    port="$(config_value "$conf" monitor.port "$DEFAULT_MONITOR_PORT")"
    case "$host" in
        0.0.0.0 | "::") host="$(hostname -I 2>/dev/null | awk '{ print $1 }')" ;;
    esac
    [[ "$host" == *:* ]] && host="[$host]"
    echo "${host:-$(hostname)} $port"
}

report() {
    local endpoint host port url
    echo
    if ((DRY_RUN)); then
        echo "Dry run: nothing was changed. After a real run, the device:"
    else
        echo "iotlight is installed. The device:"
    fi
    if ((DRY_RUN)); then
        run "$VENV_DIR/bin/python" "$APP_DIR/iotlight.py" -c "$CONF_FILE" address
    else
        "$(p "$VENV_DIR")/bin/python" "$(p "$APP_DIR")/iotlight.py" -c "$(runtime_config)" address ||
            err "iotlight.py address failed (see above): check $CONF_FILE and the seed"
    fi
    endpoint="$(monitor_endpoint)"
    read -r host port <<<"$endpoint"
    url="http://$host:$port/"
    if [[ "$port" == 0 ]]; then
        echo "Monitor: off (monitor.port = 0 in $CONF_FILE)"
    else
        echo "Monitor (dashboard and WebSocket): $url"
    fi
    case "$port:$host" in
        0:*) ;;
        *:127.* | *:localhost | *:"[::1]")
            echo "  It listens on this machine only. From another computer open a tunnel:"
            echo "    ssh -N -L $port:$host:$port ${SUDO_USER:-$(id -un)}@$(hostname)"
            echo "  then browse http://127.0.0.1:$port/ there."
            ;;
    esac
    echo
    echo "Next steps:"
    if asset_configured; then
        echo "  1. payment.asset_id is set in $CONF_FILE; change it there if need be."
    else
        echo "  1. Set payment.asset_id, the token that buys light, in $CONF_FILE:"
        echo "       sudo nano $CONF_FILE"
    fi
    cat <<EOF
  2. Fund the address above with the chain's coins: every joystick press and
     every receipt is a Data transaction and pays a fee.
  3. Restart the daemon after each change, and watch its log:
       sudo systemctl restart iotlight
       journalctl -u iotlight -f
EOF
    if ((COMMAND_INSTALLED)); then
        cat <<EOF
  4. Ask the device how it is (node, balances, lamp, payments), with the command
     $COMMAND_FILE that runs iotlight.py's commands on $CONF_FILE:
       sudo iotlight status
EOF
    fi
}

do_install() {
    install_packages
    ensure_user
    install_code
    install_config
    ensure_state_dir
    ensure_seed
    install_command
    install_unit
    [[ -n "$ROOT" ]] || note_memory_controller
    if is_raspberry_pi && ! compgen -G '/dev/i2c-*' >/dev/null; then
        warn "no /dev/i2c-*: the Sense HAT needs I2C; enable it with 'sudo raspi-config nonint do_i2c 0' and reboot"
    fi
    report
}

# =============================================================================
# Uninstall
# =============================================================================

do_uninstall() {
    if [[ -e "$(p "$UNIT_FILE")" ]]; then
        say "stopping and disabling $SERVICE"
        run systemctl disable --now "$SERVICE" ||
            warn "systemctl disable --now $SERVICE failed: going on with the removal"
        run rm -f "$(p "$UNIT_FILE")"
        run systemctl daemon-reload
    else
        say "no $UNIT_FILE: nothing to stop"
    fi
    say "removing $APP_DIR (the code and the venv)"
    run rm -rf "$(p "$APP_DIR")"
    if is_our_command "$(p "$COMMAND_FILE")"; then
        say "removing the command $COMMAND_FILE"
        run rm -f "$(p "$COMMAND_FILE")"
    elif [[ -e "$(p "$COMMAND_FILE")" ]]; then
        say "note: $COMMAND_FILE is not install.sh's: left in place"
    fi
    if ((PURGE)); then
        purge
    else
        say "kept $CONF_DIR (configuration and seed) and $STATE_DIR (state); --purge deletes them"
    fi
    say "uninstalled"
}

purge() {
    local seed=""
    if [[ -e "$(p "$CONF_FILE")" ]]; then
        seed="$(config_path device.seed_file device.seed)"
        if [[ "$seed" != "$CONF_DIR"/* ]]; then
            say "note: the configured seed $seed is outside $CONF_DIR: left in place"
        fi
    fi
    warn "deleting $CONF_DIR with the device seed: the device's address is lost for good unless you have a copy of the seed"
    run rm -rf "$(p "$CONF_DIR")" "$(p "$STATE_DIR")"
    if lookup passwd "$APP_USER" >/dev/null; then
        say "removing the user $APP_USER"
        account_tool userdel "$APP_USER"
    fi
    # userdel leaves the user's group where USERGROUPS_ENAB is off.
    if lookup group "$APP_USER" >/dev/null; then
        account_tool groupdel "$APP_USER"
    fi
}

# =============================================================================
# Main
# =============================================================================

main() {
    parse_args "$@"
    SOURCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    preflight
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    ((DRY_RUN)) && say "dry run: printing the commands, changing nothing"
    [[ -n "$ROOT" ]] && say "installing into the tree $ROOT"
    if [[ "$ACTION" == install ]]; then
        do_install
    else
        do_uninstall
    fi
}

[[ "${IOTLIGHT_INSTALL_LIB:-0}" == 1 ]] || main "$@"
