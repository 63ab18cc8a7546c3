"""install.sh: a full install into a scratch tree (--root), upgrades, uninstall, purge,
dry runs, pre-flight failures, the systemd unit, and shellcheck.

Every run uses the real install.sh, iotlight.py, iotlight.toml and requirements.txt
(copied from the repository), a real venv and the real `iotlight.py keygen` and
`address`. One fresh install per module (`installed`) is made; the tests that change an
installed tree and run install.sh on it again get a copy of that tree of their own
(`reinstaller`: owners, modes and links kept), as a device installed before. Only what would touch this machine is replaced, by recorders on PATH:
apt-get and systemctl always, chown when the tests do not run as root (useradd,
usermod and userdel act on the tree's /etc through --prefix). pip gets
IOTLIGHT_PIP_ARGS=--no-index and sees this interpreter's packages through
PYTHONPATH, so it resolves requirements.txt without a network; where a test runs the
installed `python -I` (which ignores PYTHONPATH), a deps.pth in the tree's venv shows it
those packages instead, as pip would have installed them.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import iotlight

pytestmark = [pytest.mark.timeout(600), pytest.mark.process]

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("install.sh", "iotlight.py", "iotlight.toml", "requirements.txt")
AS_ROOT = os.geteuid() == 0
ASSET_ID = iotlight.b58encode(bytes(range(1, 33)))

# What every run prints when the daemon's config is new (no payment.asset_id yet).
FIRST_RUN_CALLS = [
    "apt-get -q update",
    "apt-get -q install -y python3-venv",
    "systemctl daemon-reload",
    "systemctl enable iotlight.service",
]

RECORDER = """#!/bin/sh
# Records its call instead of touching the system; fails when asked to.
printf '%s\\n' "$(basename "$0") $*" >> "{log}"
[ ! -e "{bin}/fail-$(basename "$0")-$1" ]
"""


class Installer:
    """A scratch tree, a copy of the sources and recorders on PATH, and install.sh to run."""

    def __init__(self, base: Path):
        self.root = base / "root"
        self.src = base / "src"
        self.bin = base / "bin"
        self.log = base / "calls.log"
        for d in (self.root / "etc", self.src, self.bin):
            d.mkdir(parents=True)
        for name in SOURCES:
            shutil.copy(REPO / name, self.src / name)
        # A minimal /etc: root, and the device groups a Pi has except i2c.
        (self.root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        (self.root / "etc/group").write_text("root:x:0:\nvideo:x:44:\ninput:x:105:\n")
        for name in ("shadow", "gshadow"):
            (self.root / "etc" / name).write_text("")
        self.log.write_text("")
        self.seen = 0
        recorded = ["apt-get", "systemctl"] + ([] if AS_ROOT else ["chown"])
        for name in recorded:
            path = self.bin / name
            path.write_text(RECORDER.format(log=self.log, bin=self.bin))
            path.chmod(0o755)

    def env(self, **extra: str) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOTLIGHT_")}
        paths = sysconfig.get_paths()
        env.update(
            PATH="%s:%s" % (self.bin, os.environ["PATH"]),
            PYTHONPATH=os.pathsep.join(dict.fromkeys((paths["purelib"], paths["platlib"]))),
            IOTLIGHT_PYTHON=sys.executable,
            IOTLIGHT_PIP_ARGS="--no-index",
        )
        env.update(extra)
        return env

    def run(self, *args: str, root: bool = True, **extra: str) -> subprocess.CompletedProcess:
        argv = (
            ["bash", str(self.src / "install.sh")] + (["--root", str(self.root)] if root else []) + list(args)
        )
        return subprocess.run(argv, env=self.env(**extra), capture_output=True, text=True, timeout=500)

    def install(self, *args: str) -> subprocess.CompletedProcess:
        """Run install.sh and insist it succeeded."""
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return result

    def calls(self) -> List[str]:
        """The apt-get and systemctl calls recorded since the last look."""
        lines = self.log.read_text().splitlines()
        new, self.seen = lines[self.seen :], len(lines)
        return [line for line in new if not line.startswith("chown ")]

    def chowns(self) -> Dict[str, str]:
        """path -> the last "uid:gid" the chown recorder was asked to set (non-root runs)."""
        owners = {}
        for line in self.log.read_text().splitlines():
            if line.startswith("chown "):
                spec, path = line.split(" ")[-2:]  # chown [-h] SPEC PATH
                owners[path] = spec
        return owners

    def path(self, target: str) -> Path:
        return self.root / target.lstrip("/")

    def entry(self, db: str, name: str) -> Optional[List[str]]:
        for line in self.path("/etc/" + db).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return fields
        return None

    def owner(self, target: str) -> Tuple[str, str]:
        """(user, group) names of a file in the tree, by the tree's own passwd and group."""
        if AS_ROOT:
            st = self.path(target).stat()
            uid, gid = str(st.st_uid), str(st.st_gid)
        else:
            uid, gid = self.chowns()[str(self.path(target))].split(":")
        users = {e.split(":")[2]: e.split(":")[0] for e in self.path("/etc/passwd").read_text().splitlines()}
        groups = {e.split(":")[2]: e.split(":")[0] for e in self.path("/etc/group").read_text().splitlines()}
        return users.get(uid, uid), groups.get(gid, gid)

    def set_asset_id(self, config: Path) -> None:
        text = config.read_text().replace('# asset_id = "', 'asset_id = "%s"\n# example: "' % ASSET_ID, 1)
        assert 'asset_id = "%s"' % ASSET_ID in text
        config.write_text(text)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(tree: Path) -> Dict[str, Tuple]:
    """Every path under tree with its type, mode, owner and content hash."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            digest = None
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            result[str(p.relative_to(tree))] = (st.st_mode, st.st_uid, st.st_gid, digest)
    return result


def address_of(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("address: ")]
    assert len(lines) == 1, output
    return lines[0].split()[1]


def unit_directives(text: str) -> List[Tuple[str, str, str]]:
    """(section, key, value) of every directive of a unit file, in order."""
    section, out = "", []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key, value))
    return out


def source_lib(script: str, **env: str) -> subprocess.CompletedProcess:
    """Run bash code with install.sh's functions defined (IOTLIGHT_INSTALL_LIB=1)."""
    code = 'source "%s"\n%s' % (REPO / "install.sh", script)
    return subprocess.run(
        ["bash", "-c", code],
        env=dict(os.environ, IOTLIGHT_INSTALL_LIB="1", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def installer(tmp_path: Path) -> Installer:
    return Installer(tmp_path)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Tuple[Installer, subprocess.CompletedProcess]:
    """One fresh install, shared by the tests that only look at its result (and copied by reinstaller)."""
    inst = Installer(tmp_path_factory.mktemp("installed"))
    return inst, inst.install()


def copy_tree(inst: Installer, base: Path) -> Installer:
    """An Installer in `base` (fresh sources, recorders, call log) whose tree is a copy of inst's, with
    owners, modes and links as they are (cp -a): the venv finds the code through a relative iotlight.pth, so
    the copy works where it lies, as install.sh --root DIR promises."""
    copy = Installer(base)
    shutil.rmtree(copy.root)
    subprocess.run(["cp", "-a", str(inst.root), str(copy.root)], check=True, timeout=120)
    return copy


@pytest.fixture
def reinstaller(installed, tmp_path) -> Installer:
    """An installed tree of the test's own, as the fresh install left it."""
    return copy_tree(installed[0], tmp_path)


# =============================================================================
# A fresh install
# =============================================================================


def test_fresh_install_puts_code_and_venv_in_opt(installed):
    """iotlight.py and requirements.txt land in /opt/iotlight beside a venv that sees system packages."""
    inst, _ = installed
    app = inst.path("/opt/iotlight/iotlight.py")
    assert app.read_bytes() == (inst.src / "iotlight.py").read_bytes()
    assert mode(app) == 0o644
    assert (
        inst.path("/opt/iotlight/requirements.txt").read_bytes()
        == (inst.src / "requirements.txt").read_bytes()
    )
    cfg = inst.path("/opt/iotlight/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    version = subprocess.run(
        [str(inst.path("/opt/iotlight/venv/bin/python")), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == str(inst.path("/opt/iotlight/venv"))


def test_fresh_install_creates_the_system_user_in_the_device_groups(installed):
    """iotlight is a system user with its home in the state dir, no login, in video and input."""
    inst, result = installed
    name, _, uid, gid, _, home, shell = inst.entry("passwd", "iotlight")
    assert int(uid) < 1000
    assert (home, shell) == ("/var/lib/iotlight", "/usr/sbin/nologin")
    assert inst.entry("group", "iotlight")[2] == gid
    assert inst.entry("group", "video")[3].split(",") == ["iotlight"]
    assert inst.entry("group", "input")[3].split(",") == ["iotlight"]
    assert inst.entry("group", "i2c") is None
    assert "note: no group i2c here, skipped" in result.stderr
    assert "raspi-config nonint do_i2c 0" in result.stderr


def test_fresh_install_writes_the_config_with_system_paths(installed):
    """The config is the repository's iotlight.toml with the seed and state paths set, 0640 root:iotlight."""
    inst, _ = installed
    conf = inst.path("/etc/iotlight/iotlight.toml")
    table = iotlight._toml_loads(conf.read_text())
    assert table["device"]["seed_file"] == "/etc/iotlight/device.seed"
    assert table["device"]["state_file"] == "/var/lib/iotlight/iotlight.db"
    source = iotlight._toml_loads((inst.src / "iotlight.toml").read_text())
    source["device"].update(seed_file="/etc/iotlight/device.seed", state_file="/var/lib/iotlight/iotlight.db")
    assert table == source
    assert mode(conf) == 0o640
    assert mode(inst.path("/etc/iotlight")) == 0o750
    if AS_ROOT:
        assert inst.owner("/etc/iotlight/iotlight.toml") == ("root", "iotlight")
        assert inst.owner("/etc/iotlight") == ("root", "iotlight")
    else:
        assert inst.owner("/etc/iotlight/iotlight.toml")[1] == "iotlight"


def test_fresh_install_makes_the_seed_and_state_dir(installed):
    """keygen wrote a 15-word seed, 0600 iotlight; /var/lib/iotlight is 0750 iotlight."""
    inst, result = installed
    seed = inst.path("/etc/iotlight/device.seed")
    assert len(seed.read_text().split()) == 15
    assert mode(seed) == 0o600
    assert inst.owner("/etc/iotlight/device.seed") == ("iotlight", "iotlight")
    state = inst.path("/var/lib/iotlight")
    assert state.is_dir() and mode(state) == 0o750
    assert inst.owner("/var/lib/iotlight") == ("iotlight", "iotlight")
    assert "wrote a new 15-word seed phrase" in result.stderr
    # The seed never reaches the output.
    words = seed.read_text().split()
    output = " ".join((result.stdout + result.stderr).split())
    for i in range(len(words) - 2):
        assert " ".join(words[i : i + 3]) not in output


def test_fresh_install_records_apt_and_systemctl_without_starting(installed):
    """apt gets python3-venv (no Pi: no sense-hat); the unit is enabled, not started without an asset id."""
    inst, result = installed
    assert inst.calls() == FIRST_RUN_CALLS
    assert "iotlight.service is enabled but not started: payment.asset_id is not set" in result.stderr


def test_fresh_install_ends_with_address_monitor_and_next_steps(installed):
    """The report names the device's address and key, the monitor URL and what to do next."""
    inst, result = installed
    out = result.stdout
    keys = iotlight.keypair_from_seed(inst.path("/etc/iotlight/device.seed").read_text().rstrip("\n"))
    assert address_of(out) == keys.address("T")
    assert "public key: %s" % iotlight.b58encode(keys.public_key) in out
    assert "Monitor (dashboard and WebSocket): http://127.0.0.1:8765/" in out
    assert "ssh -N -L 8765:127.0.0.1:8765 " in out
    assert "Set payment.asset_id, the token that buys light, in /etc/iotlight/iotlight.toml" in out
    assert "Fund the address above with the chain's coins" in out
    assert "sudo systemctl restart iotlight" in out
    assert "4. Ask the device how it is" in out and "       sudo iotlight status\n" in out


# =============================================================================
# The unit
# =============================================================================


def test_unit_runs_the_daemon_as_a_watched_notify_service(installed):
    """The unit starts the venv's python on the installed config as iotlight, Type=notify with a watchdog."""
    inst, _ = installed
    unit = inst.path("/etc/systemd/system/iotlight.service")
    assert mode(unit) == 0o644
    d = {}
    for section, key, value in unit_directives(unit.read_text()):
        d.setdefault((section, key), []).append(value)
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "ExecStart": "/opt/iotlight/venv/bin/python -I -u -m iotlight -c /etc/iotlight/iotlight.toml run",
        "ExecStopPost": "-/opt/iotlight/venv/bin/python -I -u -m iotlight -c /etc/iotlight/iotlight.toml gpio-off",
        "User": "iotlight",
        "Group": "iotlight",
        "SupplementaryGroups": "video input",  # the tree has no i2c group
        "Restart": "on-failure",
        "RestartSec": "5",
        "RestartPreventExitStatus": "2 3",
        "TimeoutStopSec": "30",
        "StateDirectory": "iotlight",
        "StateDirectoryMode": "0750",
        "WorkingDirectory": "/opt/iotlight",
    }
    for key, value in expected.items():
        assert d[("Service", key)] == (value if isinstance(value, list) else [value]), key
    assert d[("Unit", "After")] == ["network-online.target"]
    assert ("Service", "Environment") not in d  # -I would ignore PYTHONPATH and friends anyway
    # python -I -m iotlight runs from bytecode compiled at install time, with the venv's python,
    # which finds iotlight.py through iotlight.pth (no PYTHONPATH, from any directory)
    assert list(inst.path("/opt/iotlight/__pycache__").glob("iotlight.cpython-*.pyc"))
    version = subprocess.run(
        [str(inst.path("/opt/iotlight/venv/bin/python")), "-I", "-m", "iotlight", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert version.stdout.startswith("iotlight "), version.stderr
    assert d[("Install", "WantedBy")] == ["multi-user.target"]


def test_unit_is_hardened_but_reaches_the_sense_hat_devices(installed):
    """Read-only system, no capabilities, few address families; /dev/fb*, input and i2c stay open."""
    inst, _ = installed
    d = {}
    for _section, key, value in unit_directives(
        inst.path("/etc/systemd/system/iotlight.service").read_text()
    ):
        d.setdefault(key, []).append(value)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "LockPersonality": "yes",
        "DevicePolicy": "closed",
    }.items():
        assert d[key] == [value], key
    assert d["DeviceAllow"] == [
        "char-fb rw",
        "char-input r",
        "char-i2c rw",
        "char-gpiochip rw",
        "char-bcm2835-gpiomem rw",
    ]
    assert "PrivateDevices" not in d
    assert "PrivateUsers" not in d


def test_unit_comments_every_directive(installed):
    """Each directive line of the unit has a comment line right above it."""
    inst, _ = installed
    lines = inst.path("/etc/systemd/system/iotlight.service").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), "no comment above %r" % line


def test_unit_lists_only_present_device_groups():
    """SupplementaryGroups= names the groups given (a missing group would stop the start); none: no line."""
    result = source_lib(
        'render_unit video input i2c | grep "^SupplementaryGroups="; '
        'render_unit | grep -c "^SupplementaryGroups=" || true'
    )
    assert result.stdout.splitlines() == ["SupplementaryGroups=video input i2c", "0"], result.stderr


def test_unit_allows_no_core_dump_and_caps_memory(installed):
    """LimitCORE=0 (a core dump would hold the private key); MemoryHigh/MemoryMax far above the measured 80 MB peak."""
    inst, _ = installed
    d = {}
    for section, key, value in unit_directives(inst.path("/etc/systemd/system/iotlight.service").read_text()):
        d.setdefault((section, key), []).append(value)
    assert d[("Service", "LimitCORE")] == ["0"]
    assert d[("Service", "MemoryHigh")] == ["150M"]
    assert d[("Service", "MemoryMax")] == ["200M"]


def tree_command(inst: Installer, line: str) -> List[str]:
    """A command line of the unit or the target system, its paths moved into the tree."""
    for target in ("/opt/iotlight", "/etc/iotlight", "/var/lib/iotlight"):
        line = line.replace(target, str(inst.path(target)))
    return shlex.split(line)


def plant_modules(home: Path, marker: Path) -> None:
    """What a compromised daemon could leave in its state dir (its cwd and $HOME before):
    a json.py and, in its user site-packages, a usercustomize.py; each writes marker."""
    code = "open(%r, 'a').write(__name__ + '\\n')\n" % str(marker)
    (home / "json.py").write_text(code + "raise SystemExit(97)\n")
    user_site = home / (".local/lib/python%d.%d/site-packages" % sys.version_info[:2])
    user_site.mkdir(parents=True)
    (user_site / "usercustomize.py").write_text(code)


def test_unit_command_line_imports_nothing_from_the_state_dir(reinstaller, tmp_path):
    """The unit's ExecStart, run in the state dir with HOME there (as systemd sets it for the user),
    with the unit's Environment=, imports neither a planted json.py nor a usercustomize.py."""
    installer = reinstaller
    show_packages(installer)
    unit = installer.path("/etc/systemd/system/iotlight.service").read_text()
    d = {}
    for _section, key, value in unit_directives(unit):
        d.setdefault(key, []).append(value)
    state = installer.path("/var/lib/iotlight")
    marker = tmp_path / "planted-code-ran"
    plant_modules(state, marker)
    env = {"PATH": os.environ["PATH"], "HOME": str(state), "LANG": "C.UTF-8"}
    for assignment in d.get("Environment", []):
        key, _, value = assignment.partition("=")
        env[key] = tree_command(installer, value)[0]

    def run(line):  # in the state dir: the worst case (the old unit's), whatever the unit says
        return subprocess.run(
            tree_command(installer, line),
            cwd=str(state),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = run(d["ExecStart"][0])
    assert not marker.exists(), "planted code ran: %s" % marker.read_text()
    # It is the installed daemon that ran, and stopped on the unset asset id.
    assert result.returncode == 2, result.stderr
    assert "payment.asset_id" in result.stderr
    # The unit's own working directory is the code folder, which only root writes.
    assert d["WorkingDirectory"] == ["/opt/iotlight"]
    assert mode(installer.path("/opt/iotlight")) == 0o755
    # ExecStopPost (after every stop: gpio-off) runs the same way, and with the installed
    # configuration (no pin, no asset id yet) does nothing and succeeds
    [post] = d["ExecStopPost"]
    assert post.startswith("-")  # its failure would not mark the unit failed
    result = run(post[1:])
    assert not marker.exists(), "planted code ran: %s" % marker.read_text()
    assert result.returncode == 0, result.stderr
    assert "no pin to switch off" in result.stdout


def test_unit_passes_systemd_analyze_verify(installed, tmp_path):
    """systemd-analyze verify accepts the unit (ExecStart pointed at the tree's venv, which exists)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    inst, _ = installed
    text = inst.path("/etc/systemd/system/iotlight.service").read_text()
    text = text.replace("=/opt/iotlight/", "=%s/" % inst.path("/opt/iotlight"))
    text = text.replace("=-/opt/iotlight/", "=-%s/" % inst.path("/opt/iotlight"))
    unit = tmp_path / "iotlight.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "iotlight.service" in line] == []


# =============================================================================
# The iotlight command
# =============================================================================


def show_packages(inst):
    """deps.pth in the tree's venv: this interpreter's packages, as pip would have installed them
    (python -I ignores the PYTHONPATH the other tests use; Python < 3.11 needs tomli from there)."""
    venv_python = str(inst.path("/opt/iotlight/venv/bin/python"))
    site = subprocess.run(
        [venv_python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    paths = sysconfig.get_paths()
    Path(site, "deps.pth").write_text(
        "".join("%s\n" % p for p in dict.fromkeys((paths["purelib"], paths["platlib"])))
    )


@pytest.fixture(scope="module")
def commanded(installed):
    """An installed tree (a copy of the fresh install) whose /usr/local/bin/iotlight the tests run,
    in a folder every user can traverse (to run it as nobody). Its config names the seed and
    state relative to itself, so it works inside the tree; deps.pth shows the venv this
    interpreter's packages, as pip would have installed them from the network."""
    base = Path(tempfile.mkdtemp(prefix="iotlight-command-"))
    base.chmod(0o755)
    try:
        inst = copy_tree(installed[0], base)
        show_packages(inst)
        conf = inst.path("/etc/iotlight/iotlight.toml")
        inst.set_asset_id(conf)
        conf.write_text(
            conf.read_text()
            .replace('seed_file = "/etc/iotlight/device.seed"', 'seed_file = "device.seed"')
            .replace(
                'state_file = "/var/lib/iotlight/iotlight.db"',
                'state_file = "../../var/lib/iotlight/iotlight.db"',
            )
        )
        yield inst
    finally:
        shutil.rmtree(base)


def run_command(
    inst: Installer, *args: str, cwd: Optional[Path] = None, **kwargs
) -> subprocess.CompletedProcess:
    """The installed iotlight command, with a bare environment (no PYTHONPATH to lean on)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [str(inst.path("/usr/local/bin/iotlight"))] + list(args),
        cwd=str(cwd or "/"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_command_is_installed_executable_and_ours(commanded):
    """/usr/local/bin/iotlight is a 0755 sh script marked as install.sh's."""
    command = commanded.path("/usr/local/bin/iotlight")
    assert mode(command) == 0o755
    text = command.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "written by iotlight's install.sh" in text


def test_command_runs_the_venv_on_the_installed_config(commanded, tmp_path):
    """iotlight --version, address and check work with the installed config by default, from any
    directory: a json.py there or on PYTHONPATH is not imported."""
    marker = tmp_path / "planted-code-ran"
    plant_modules(tmp_path, marker)
    env = {"PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    version = run_command(commanded, "--version", cwd=tmp_path, env=env)
    assert (version.returncode, version.stdout) == (0, "iotlight %s\n" % iotlight.__version__), version.stderr
    address = run_command(commanded, "address", cwd=tmp_path, env=env)
    assert address.returncode == 0, address.stderr
    keys = iotlight.keypair_from_seed(commanded.path("/etc/iotlight/device.seed").read_text().rstrip("\n"))
    assert address.stdout == "address: %s\npublic key: %s\n" % (
        keys.address("T"),
        iotlight.b58encode(keys.public_key),
    )
    check = run_command(commanded, "check", "--offline", cwd=tmp_path, env=env)  # no node: no network
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(
        "configuration %s is valid\n" % commanded.path("/etc/iotlight/iotlight.toml")
    )
    assert "  device address: %s\n" % keys.address("T") in check.stdout
    assert not marker.exists()


def test_command_takes_a_config_of_ones_own(commanded):
    """-c PATH (or --config=PATH) given to the command wins over the installed config."""
    for args in (["-c", "/nonexistent/other.toml"], ["--config=/nonexistent/other.toml"]):
        result = run_command(commanded, *args, "address")
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr == "iotlight: /nonexistent/other.toml: no such configuration file\n", args


def test_command_tells_a_normal_user_to_use_sudo(commanded):
    """A user who cannot read /etc/iotlight/iotlight.toml gets one line saying to use sudo, no traceback."""
    conf = commanded.path("/etc/iotlight/iotlight.toml")
    expected = (
        "iotlight: cannot read %s (root and the group iotlight only): run the command with sudo: "
        "sudo iotlight status\n" % conf
    )
    if AS_ROOT:  # as nobody: /etc/iotlight is 0750 root:iotlight, as install.sh made it
        result = run_command(commanded, "status", user=65534, group=65534, extra_groups=[])
    else:  # the chowns were only recorded: take the read permission away instead
        conf.chmod(0)
        try:
            result = run_command(commanded, "status")
        finally:
            conf.chmod(0o640)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", expected)


@pytest.mark.skipif(not AS_ROOT, reason="the refusal is for root")
def test_command_does_not_run_the_daemon_as_root(commanded):
    """sudo iotlight (run is the default) would make root-owned state files: it points at the service."""
    for args in ([], ["run"], ["-v", "run"]):
        result = run_command(commanded, *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr == (
            "iotlight: the daemon runs as the service iotlight.service, not as root: sudo "
            "systemctl restart iotlight (its log: journalctl -u iotlight -f)\n"
        ), args


def test_command_of_another_program_is_left_alone(reinstaller):
    """An /usr/local/bin/iotlight install.sh did not write survives install and uninstall, with a warning."""
    installer = reinstaller
    other = installer.path("/usr/local/bin/iotlight")
    other.write_text("#!/bin/sh\necho another program\n")
    result = installer.install()
    assert "warning: /usr/local/bin/iotlight exists and is not install.sh's: left alone" in result.stderr
    assert "sudo iotlight status" not in result.stdout
    assert other.read_text() == "#!/bin/sh\necho another program\n"
    result = installer.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert "note: /usr/local/bin/iotlight is not install.sh's: left in place" in result.stderr
    assert other.read_text() == "#!/bin/sh\necho another program\n"


# =============================================================================
# Running again, uninstalling, purging
# =============================================================================


def test_second_run_upgrades_code_and_keeps_config_seed_and_state(installed, reinstaller):
    """A second run replaces iotlight.py, keeps the edited config, the seed and the state, and restarts."""
    installer, first = reinstaller, installed[1]
    conf = installer.path("/etc/iotlight/iotlight.toml")
    installer.set_asset_id(conf)
    conf.write_text(conf.read_text() + "# my own note\n")
    state = installer.path("/var/lib/iotlight/iotlight.db")
    state.write_bytes(b"state kept")
    kept = {p: p.read_bytes() for p in (conf, state, installer.path("/etc/iotlight/device.seed"))}
    (installer.src / "iotlight.py").write_text((installer.src / "iotlight.py").read_text() + "\n# upgraded\n")

    second = installer.install()

    assert {p: p.read_bytes() for p in kept} == kept
    assert mode(installer.path("/etc/iotlight/device.seed")) == 0o600
    assert installer.path("/opt/iotlight/iotlight.py").read_text().endswith("\n# upgraded\n")
    assert address_of(second.stdout) == address_of(first.stdout)
    assert "keeping the configuration /etc/iotlight/iotlight.toml" in second.stderr
    assert "keeping the device seed /etc/iotlight/device.seed" in second.stderr
    assert "creating the venv" not in second.stderr
    assert "payment.asset_id is set in /etc/iotlight/iotlight.toml" in second.stdout
    assert installer.calls() == FIRST_RUN_CALLS + ["systemctl restart iotlight.service"]
    assert [line.split(":")[0] for line in installer.path("/etc/passwd").read_text().splitlines()] == [
        "root",
        "iotlight",
    ]


def test_failed_start_exits_nonzero_with_the_journal_hint(reinstaller):
    """When systemctl restart fails, install.sh says where to look and exits 1."""
    installer = reinstaller
    installer.set_asset_id(installer.path("/etc/iotlight/iotlight.toml"))
    (installer.bin / "fail-systemctl-restart").write_text("")
    result = installer.run()
    assert result.returncode == 1
    assert (
        "install.sh: error: iotlight.service did not start: see 'journalctl -u iotlight -e', "
        "fix the cause, then: sudo systemctl restart iotlight"
    ) in result.stderr
    assert installer.calls()[-1] == "systemctl restart iotlight.service"


def test_uninstall_removes_service_and_code_but_keeps_data(reinstaller):
    """--uninstall disables the unit and removes it and /opt/iotlight; config, seed, state and user stay."""
    installer = reinstaller
    installer.path("/var/lib/iotlight/iotlight.db").write_bytes(b"state")
    result = installer.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert installer.calls() == ["systemctl disable --now iotlight.service", "systemctl daemon-reload"]
    assert not installer.path("/etc/systemd/system/iotlight.service").exists()
    assert not installer.path("/opt/iotlight").exists()
    assert not installer.path("/usr/local/bin/iotlight").exists()
    assert installer.path("/usr/local/bin").is_dir()
    for kept in ("/etc/iotlight/iotlight.toml", "/etc/iotlight/device.seed", "/var/lib/iotlight/iotlight.db"):
        assert installer.path(kept).exists(), kept
    assert installer.entry("passwd", "iotlight") is not None
    assert (
        "kept /etc/iotlight (configuration and seed) and /var/lib/iotlight (state); --purge deletes them"
        in result.stderr
    )


def test_purge_removes_config_seed_state_and_user(reinstaller):
    """--purge also deletes /etc/iotlight, /var/lib/iotlight and the user, warning about the seed."""
    installer = reinstaller
    result = installer.run("--purge")
    assert result.returncode == 0, result.stderr
    assert installer.calls() == ["systemctl disable --now iotlight.service", "systemctl daemon-reload"]
    for gone in (
        "/etc/systemd/system/iotlight.service",
        "/opt/iotlight",
        "/etc/iotlight",
        "/var/lib/iotlight",
        "/usr/local/bin/iotlight",
    ):
        assert not installer.path(gone).exists(), gone
    assert installer.entry("passwd", "iotlight") is None
    assert installer.entry("group", "iotlight") is None
    assert installer.entry("group", "video")[3] == ""
    assert (
        "warning: deleting /etc/iotlight with the device seed: the device's address is lost for good "
        "unless you have a copy of the seed"
    ) in result.stderr


def test_uninstall_of_nothing_succeeds(installer):
    """--uninstall where nothing is installed says so, calls no systemctl and succeeds."""
    result = installer.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert "no /etc/systemd/system/iotlight.service: nothing to stop" in result.stderr
    assert installer.calls() == []


# =============================================================================
# Owners and modes: never through a link the service user could have planted
# =============================================================================


def victim_file(tmp_path: Path) -> Tuple[Path, Tuple[int, int, int]]:
    """A file outside the tree that a planted link points at: (path, (mode, uid, gid))."""
    victim = tmp_path / "victim"
    victim.write_text("not the installer's\n")
    victim.chmod(0o644)
    st = victim.stat()
    return victim, (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def victim_state(victim: Path) -> Tuple[int, int, int]:
    st = victim.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def point_seed_file_at(installer: Installer, seed_file: str) -> None:
    conf = installer.path("/etc/iotlight/iotlight.toml")
    text = conf.read_text()
    assert 'seed_file = "/etc/iotlight/device.seed"' in text
    conf.write_text(text.replace('seed_file = "/etc/iotlight/device.seed"', 'seed_file = "%s"' % seed_file))


def test_link_planted_in_the_state_dir_is_not_followed(reinstaller, tmp_path):
    """With device.seed_file in the state dir, a link the service user put there in the seed's place
    gets neither install.sh's chown nor its chmod: the run stops and says why, the target is untouched."""
    installer = reinstaller
    victim, before = victim_file(tmp_path)
    point_seed_file_at(installer, "/var/lib/iotlight/device.seed")
    link = installer.path("/var/lib/iotlight/device.seed")
    link.symlink_to(victim)
    result = installer.run()
    assert result.returncode == 1
    assert (
        "install.sh: error: the seed file /var/lib/iotlight/device.seed lies in /var/lib/iotlight, where "
        "the user iotlight can put a link in its place;"
    ) in result.stderr
    assert victim_state(victim) == before
    assert victim.read_text() == "not the installer's\n"
    assert link.is_symlink()
    if not AS_ROOT:
        assert str(link) not in installer.chowns()


def test_seed_in_a_folder_the_user_may_write_is_refused_before_keygen(reinstaller):
    """A seed file configured into the state dir is refused before keygen makes one there."""
    installer = reinstaller
    point_seed_file_at(installer, "/var/lib/iotlight/keys/device.seed")
    installer.path("/var/lib/iotlight/keys").mkdir()
    result = installer.run()
    assert result.returncode == 1
    assert "the seed file /var/lib/iotlight/keys/device.seed lies in /var/lib/iotlight/keys," in result.stderr
    assert not installer.path("/var/lib/iotlight/keys/device.seed").exists()


def test_seed_file_that_is_a_link_is_refused(reinstaller, tmp_path):
    """A link in the seed's place, even in /etc/iotlight, is not chowned or chmodded through."""
    installer = reinstaller
    victim, before = victim_file(tmp_path)
    seed = installer.path("/etc/iotlight/device.seed")
    seed.unlink()
    seed.symlink_to(victim)
    result = installer.run()
    assert result.returncode == 1
    assert (
        "install.sh: error: the seed file /etc/iotlight/device.seed is a symbolic link: install.sh changes "
        "owners and modes of real files only;"
    ) in result.stderr
    assert victim_state(victim) == before


@pytest.mark.skipif(not AS_ROOT, reason="gives folders to other users: needs root")
def test_writable_by_user_reads_owner_group_and_mode(tmp_path):
    """A folder is the service user's to write when it owns it (u+w), when one of its groups
    owns it (g+w), when anyone may (o+w, sticky or not), and always the state dir."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0::/root:/bin/sh\niotlight:x:4242:4243::/var/lib/iotlight:/x\n"
    )
    (root / "etc/group").write_text("root:x:0:\niotlight:x:4243:\nvideo:x:44:iotlight\naudio:x:29:\n")
    cases = {  # name: (uid, gid, mode, writable)
        "root-0755": (0, 0, 0o755, False),
        "user-0755": (4242, 0, 0o755, True),
        "user-0555": (4242, 0, 0o555, False),
        "group-0775": (0, 4243, 0o775, True),
        "video-0770": (0, 44, 0o770, True),
        "video-0750": (0, 44, 0o750, False),
        "audio-0770": (0, 29, 0o770, False),
        "anyone-1777": (0, 0, 0o1777, True),
    }
    for name, (uid, gid, perm, _) in cases.items():
        d = root / name
        d.mkdir()
        os.chown(d, uid, gid)
        d.chmod(perm)
    (root / "var/lib/iotlight/sub").mkdir(parents=True)
    script = (
        "ROOT=%s\nfor d in %s var/lib/iotlight var/lib/iotlight/sub; do\n"
        '  if writable_by_user "$ROOT/$d"; then echo "$d yes"; else echo "$d no"; fi\ndone'
        % (root, " ".join(cases))
    )
    result = source_lib(script)
    assert result.returncode == 0, result.stderr
    expected = ["%s %s" % (name, "yes" if case[3] else "no") for name, case in cases.items()]
    assert result.stdout.splitlines() == expected + ["var/lib/iotlight yes", "var/lib/iotlight/sub yes"]


# =============================================================================
# Dry runs
# =============================================================================


def test_dry_run_of_a_first_install_changes_nothing_and_prints_the_commands(installer):
    """--dry-run on an empty tree runs no recorder, writes nothing, and prints each command."""
    before = snapshot(installer.root)
    result = installer.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert snapshot(installer.root) == before
    assert installer.calls() == []
    root = str(installer.root)
    out = result.stdout.splitlines()
    for command in [
        "+ env DEBIAN_FRONTEND=noninteractive apt-get -q install -y python3-venv",
        "+ useradd --prefix %s --system --user-group --home-dir /var/lib/iotlight --no-create-home "
        "--shell /usr/sbin/nologin --comment iotlight\\ daemon --groups video\\,input iotlight" % root,
        "+ install -m 0644 %s/iotlight.py %s/opt/iotlight/iotlight.py" % (installer.src, root),
        "+ %s -m venv --system-site-packages %s/opt/iotlight/venv" % (sys.executable, root),
        "+ install -d -m 0750 %s/var/lib/iotlight" % root,
        "+ /opt/iotlight/venv/bin/python /opt/iotlight/iotlight.py -c /etc/iotlight/iotlight.toml keygen",
        "+ chmod 0600 %s/etc/iotlight/device.seed" % root,
        "+ systemctl daemon-reload",
        "+ systemctl enable iotlight.service",
        "+ /opt/iotlight/venv/bin/python /opt/iotlight/iotlight.py -c /etc/iotlight/iotlight.toml address",
    ]:
        assert command in out, command
    assert [line for line in out if line.endswith(" %s/usr/local/bin/iotlight" % root)], out
    assert "dry run: printing the commands, changing nothing" in result.stderr


def test_dry_run_on_an_installed_tree_changes_nothing(reinstaller):
    """--dry-run, --dry-run --uninstall and --dry-run --purge leave an installed tree as it was."""
    installer = reinstaller
    before = snapshot(installer.root)
    for args in (["--dry-run"], ["--dry-run", "--uninstall"], ["--dry-run", "--purge"]):
        result = installer.run(*args)
        assert result.returncode == 0, result.stderr
        assert snapshot(installer.root) == before, args
        assert installer.calls() == [], args
    assert "+ rm -rf %s/etc/iotlight %s/var/lib/iotlight" % (installer.root, installer.root) in result.stdout
    assert "+ systemctl disable --now iotlight.service" in result.stdout


# =============================================================================
# Pre-flight: clear messages, non-zero exits, no change
# =============================================================================


def test_not_root_without_root_or_dry_run_is_refused(installer):
    """A plain run by a normal user stops before any change and says to use sudo."""
    fake_id = installer.bin / "id"
    fake_id.write_text('#!/bin/sh\n[ "$1" = -u ] && { echo 1000; exit 0; }\nexec /usr/bin/id "$@"\n')
    fake_id.chmod(0o755)
    # Were the root check ever to let it through, the missing interpreter still stops
    # the pre-flight before anything on this machine changes.
    result = installer.run(root=False, IOTLIGHT_PYTHON="/nonexistent/python3")
    assert result.returncode == 1
    assert result.stderr.startswith("install.sh: error: must run as root to install a system service: sudo ")
    assert installer.calls() == []


def test_python_older_than_3_9_is_refused(installer, tmp_path):
    """An interpreter reporting 3.8 stops the install with the version and the fix."""
    old = tmp_path / "python3.8"
    old.write_text("#!/bin/sh\necho 3.8\n")
    old.chmod(0o755)
    before = snapshot(installer.root)
    result = installer.run(IOTLIGHT_PYTHON=str(old))
    assert result.returncode == 1
    assert (
        "install.sh: error: %s is Python 3.8; iotlight needs 3.9 or newer: use Raspberry Pi OS "
        "Bullseye or later, or set IOTLIGHT_PYTHON to a newer python3" % old
    ) in result.stderr
    assert snapshot(installer.root) == before
    assert installer.calls() == []


def test_missing_source_file_is_refused(installer):
    """install.sh without requirements.txt beside it says to use a full copy of the repository."""
    (installer.src / "requirements.txt").unlink()
    result = installer.run()
    assert result.returncode == 1
    assert (
        "install.sh: error: requirements.txt is missing next to install.sh (%s): run install.sh "
        "from a full copy of the iotlight repository" % installer.src
    ) in result.stderr
    assert installer.calls() == []


def test_bad_options_exit_2(installer, tmp_path):
    """An unknown option or a --root that does not exist is a usage error (exit 2)."""
    result = installer.run("--frobnicate", root=False)
    assert (result.returncode, result.stderr) == (
        2,
        "install.sh: error: unknown option '--frobnicate': see install.sh --help\n",
    )
    missing = tmp_path / "nowhere"
    result = installer.run("--root", str(missing), root=False)
    assert (result.returncode, result.stderr) == (
        2,
        "install.sh: error: --root %s: no such directory: create it first\n" % missing,
    )


def test_help_lists_the_options(installer):
    """--help prints the usage with every option and exits 0."""
    result = installer.run("--help", root=False)
    assert result.returncode == 0
    for option in ("--uninstall", "--purge", "--dry-run", "--root DIR", "IOTLIGHT_PIP_ARGS"):
        assert option in result.stdout


def test_unsupported_os_is_refused(tmp_path):
    """An os-release that is neither Debian, Raspberry Pi OS nor Ubuntu is refused with the way out."""
    release = tmp_path / "os-release"
    release.write_text('ID=fedora\nPRETTY_NAME="Fedora Linux 40"\n')
    result = source_lib('OS_RELEASE="%s"; check_os' % release)
    assert result.returncode == 1
    assert result.stderr == (
        "install.sh: error: unsupported system 'Fedora Linux 40': this installer needs "
        "Raspberry Pi OS, Debian or Ubuntu (apt and systemd); elsewhere install by hand "
        "as README.md describes\n"
    )
    release.write_text("ID=raspbian\nID_LIKE=debian\nVERSION_CODENAME=bookworm\n")
    assert source_lib('OS_RELEASE="%s"; check_os' % release).returncode == 0


def test_missing_command_names_the_package(tmp_path):
    """A missing command stops the install with the apt-get line that brings it."""
    result = source_lib("PATH=%s; require_commands useradd" % tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "install.sh: error: needs the command 'useradd': install it with: sudo apt-get install passwd\n"
    )


# =============================================================================
# Pieces: the Pi's packages, the config editor
# =============================================================================


def test_a_raspberry_pi_gets_the_sense_hat_packages(tmp_path):
    """On a Pi (device-tree model) apt also installs sense-hat and its IMU library; elsewhere not."""
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    pi = source_lib('MODEL_FILE="%s"; apt_packages' % model)
    assert pi.stdout.split() == ["python3-venv", "sense-hat", "python3-rtimulib", "python3-gpiozero"]
    other = source_lib('MODEL_FILE="%s/none"; apt_packages' % tmp_path)
    assert other.stdout.split() == ["python3-venv"]


def test_a_kernel_without_the_memory_controller_gets_a_note(tmp_path):
    """Without the cgroup memory controller (a Pi's default) install.sh says the memory limits do not act."""
    controllers = tmp_path / "cgroup.controllers"
    controllers.write_text("cpuset cpu io pids\n")
    off = source_lib('CGROUP_CONTROLLERS="%s"; note_memory_controller' % controllers)
    assert off.returncode == 0
    assert off.stderr.startswith(
        "install.sh: note: the kernel runs without the cgroup memory controller, so the "
        "unit's MemoryHigh= and MemoryMax= do not act; to have them, add "
        "'cgroup_enable=memory' to the kernel command line"
    )
    controllers.write_text("cpuset cpu io memory pids\n")
    on = source_lib('CGROUP_CONTROLLERS="%s"; note_memory_controller' % controllers)
    assert (on.returncode, on.stderr) == (0, "")


CONFIG = """\
[node]
urls = [
  "https://a",
]
seed_file = "not this section"

[device]
# seed_file = "device.seed"
state_file = "iotlight.db"  # the database

[payment]
"""


def test_set_toml_key_replaces_inserts_or_appends(tmp_path):
    """A key is replaced in its section, added under the header if only commented out, or appended with its section."""
    conf = tmp_path / "c.toml"
    conf.write_text(CONFIG)
    result = source_lib(
        'set_toml_key "{0}" device seed_file \'"/etc/iotlight/device.seed"\'\n'
        'set_toml_key "{0}" device state_file \'"/var/lib/iotlight/iotlight.db"\'\n'
        'set_toml_key "{0}" monitor port 9000\n'.format(conf)
    )
    assert result.returncode == 0, result.stderr
    assert (
        conf.read_text()
        == CONFIG.replace(
            '[device]\n# seed_file = "device.seed"\nstate_file = "iotlight.db"  # the database\n',
            '[device]\nseed_file = "/etc/iotlight/device.seed"\n# seed_file = "device.seed"\n'
            'state_file = "/var/lib/iotlight/iotlight.db"\n',
        )
        + "\n[monitor]\nport = 9000\n"
    )


# =============================================================================
# The script itself
# =============================================================================


def test_shellcheck_passes():
    """shellcheck finds nothing in install.sh."""
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); CI installs it")
    result = subprocess.run(
        ["shellcheck", str(REPO / "install.sh")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout


def test_shellcheck_passes_on_the_iotlight_command(tmp_path):
    """shellcheck finds nothing in the /usr/local/bin/iotlight script install.sh writes."""
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); CI installs it")
    command = tmp_path / "iotlight"
    rendered = source_lib("render_command")
    assert rendered.returncode == 0, rendered.stderr
    command.write_text(rendered.stdout)
    result = subprocess.run(["shellcheck", str(command)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
