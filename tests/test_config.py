"""Configuration: broken files stop the command line with exit 2 and one exact line; good files load;
every key's range holds at both ends.

Each broken configuration is written to a temporary file and run through `iotlight.py -c FILE check`
in this process (test_cli.run_main); a few run as the real command (marked process), as a user meets them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from pathlib import Path

import pytest
from clirun import assert_one_line_error, run_cli
from test_cli import run_main

import iotlight

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
ASSET = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"  # IoT-Light on testnet (transfers.json)
PAYMENT = '[payment]\nasset_id = "%s"\n' % ASSET
DOCS_ADDRESS_T = "3NBaYzWT2odsyrZ2u1ghsrHinBm4xFRAgLX"
DOCS_ADDRESS_W = "3PPbMwqLtwBGcJrTA5whqJfY95GqnNnFMDX"
CHECKSUM_TYPO = DOCS_ADDRESS_T[:-1] + "Y"  # last character changed: the checksum no longer matches

# (test id, TOML text, the message after "iotlight: FILE: ")
BROKEN = [
    (
        "unknown-key-did-you-mean",
        PAYMENT + "[node]\npol_interval = 1.0\n",
        "node.pol_interval: unknown key (did you mean node.poll_interval?)",
    ),
    (
        "unknown-key-did-you-mean-color",
        PAYMENT + "[light]\ncolour = [1, 2, 3]\n",
        "light.colour: unknown key (did you mean light.color?)",
    ),
    (
        "unknown-section",
        PAYMENT + '[nod]\nurls = ["http://127.0.0.1:6869"]\n',
        "[nod]: unknown section (did you mean [node]?)",
    ),
    ("unknown-empty-section", PAYMENT + "[lights]\n", "[lights]: unknown section (did you mean [light]?)"),
    (
        "top-level-key",
        "poll_interval = 1.0\n" + PAYMENT,
        "poll_interval: unknown key at top level; keys live in sections "
        "[data], [device], [hardware], [light], [monitor], [node], [payment]",
    ),
    (
        "wrong-type-string-for-number",
        PAYMENT + '[node]\npoll_interval = "fast"\n',
        'node.poll_interval: "fast" is not valid: expected a number of seconds from 0.1 to 60',
    ),
    (
        "wrong-type-bool-for-number",
        PAYMENT + "[node]\npoll_interval = true\n",
        "node.poll_interval: true is not valid: expected a number of seconds from 0.1 to 60",
    ),
    (
        "wrong-type-string-for-bool",
        '[payment]\nasset_id = "%s"\ncount_history = "yes"\n' % ASSET,
        'payment.count_history: "yes" is not valid: expected true or false',
    ),
    (
        "poll-interval-too-small",
        PAYMENT + "[node]\npoll_interval = 0.01\n",
        "node.poll_interval: 0.01 is not valid: expected a number of seconds from 0.1 to 60",
    ),
    (
        "poll-interval-too-large",
        PAYMENT + "[node]\npoll_interval = 61\n",
        "node.poll_interval: 61 is not valid: expected a number of seconds from 0.1 to 60",
    ),
    (
        "poll-interval-nan",
        PAYMENT + "[node]\npoll_interval = nan\n",
        "node.poll_interval: nan is not valid: expected a number of seconds from 0.1 to 60",
    ),
    (
        "confirmations-too-many",
        PAYMENT + "[node]\nconfirmations = 101\n",
        "node.confirmations: 101 is not valid: expected an integer from 0 to 100",
    ),
    (
        "confirmations-negative",
        PAYMENT + "[node]\nconfirmations = -1\n",
        "node.confirmations: -1 is not valid: expected an integer from 0 to 100",
    ),
    (
        "confirmations-fraction",
        PAYMENT + "[node]\nconfirmations = 1.5\n",
        "node.confirmations: 1.5 is not valid: expected an integer from 0 to 100",
    ),
    (
        "color-two-values",
        PAYMENT + "[light]\ncolor = [255, 0]\n",
        "light.color: [255, 0] is not valid: expected [r, g, b] with integers from 0 to 255",
    ),
    (
        "color-out-of-range",
        PAYMENT + "[light]\ncolor = [256, 0, 0]\n",
        "light.color: [256, 0, 0] is not valid: expected [r, g, b] with integers from 0 to 255",
    ),
    (
        "color-name",
        PAYMENT + '[light]\ncolor = "red"\n',
        'light.color: "red" is not valid: expected [r, g, b] with integers from 0 to 255',
    ),
    (
        "bad-backend",
        PAYMENT + '[hardware]\nbackend = "sensehat"\n',
        'hardware.backend: "sensehat" is not valid: expected one of '
        '"auto", "sense-hat", "sense-emu", "terminal", "none"',
    ),
    (
        "missing-asset-id",
        '[node]\nchain_id = "T"\n',
        "payment.asset_id: missing: expected the base58 id of the token that buys light (set it in [payment])",
    ),
    (
        "asset-id-bad-character",
        '[payment]\nasset_id = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQ0"\n',
        'payment.asset_id: "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQ0" is not valid: '
        "invalid base58 character '0' at position 43 (expected the base58 id of the token that buys light)",
    ),
    (
        "asset-id-is-a-name",
        '[payment]\nasset_id = "IoT-Light"\n',
        "payment.asset_id: \"IoT-Light\" is not valid: invalid base58 character 'I' at position 0 "
        "(expected the base58 id of the token that buys light)",
    ),
    (
        "asset-id-wrong-length",
        '[payment]\nasset_id = "%s"\n' % DOCS_ADDRESS_T,
        'payment.asset_id: "%s" is not valid: an asset id is 32 bytes, not 26 '
        "(expected the base58 id of the token that buys light)" % DOCS_ADDRESS_T,
    ),
    (
        "device-address-checksum",
        PAYMENT + '[device]\naddress = "%s"\n' % CHECKSUM_TYPO,
        'device.address: "%s" is not valid: address checksum does not match (a typo?)' % CHECKSUM_TYPO,
    ),
    (
        "device-address-wrong-chain",
        PAYMENT + '[device]\naddress = "%s"\n' % DOCS_ADDRESS_W,
        "device.address: \"%s\" is not valid: address is for chain 'W', not 'T'" % DOCS_ADDRESS_W,
    ),
    (
        "device-address-wrong-chain-z",
        PAYMENT + '[node]\nchain_id = "Z"\n[device]\naddress = "%s"\n' % DOCS_ADDRESS_T,
        "device.address: \"%s\" is not valid: address is for chain 'T', not 'Z'" % DOCS_ADDRESS_T,
    ),
    (
        "monitor-open-without-token",
        PAYMENT + '[monitor]\nhost = "0.0.0.0"\n',
        'monitor.token: required when monitor.host ("0.0.0.0") is not a loopback address: '
        "set a secret token, clients then pass ?token=...",
    ),
    (
        "monitor-lan-ip-without-token",
        PAYMENT + '[monitor]\nhost = "192.168.1.20"\nport = 8080\n',
        'monitor.token: required when monitor.host ("192.168.1.20") is not a loopback address: '
        "set a secret token, clients then pass ?token=...",
    ),
    (
        "monitor-ipv6-any-without-token",
        PAYMENT + '[monitor]\nhost = "::"\n',
        'monitor.token: required when monitor.host ("::") is not a loopback address: '
        "set a secret token, clients then pass ?token=...",
    ),
    (
        "monitor-port-out-of-range",
        PAYMENT + "[monitor]\nport = 70000\n",
        "monitor.port: 70000 is not valid: expected an integer from 0 (off) to 65535",
    ),
    (
        "empty-urls",
        PAYMENT + "[node]\nurls = []\n",
        "node.urls: [] is not valid: expected a non-empty list of http(s) URLs",
    ),
    (
        "urls-not-a-list",
        PAYMENT + '[node]\nurls = "https://nodes-testnet.wavesnodes.com"\n',
        'node.urls: "https://nodes-testnet.wavesnodes.com" is not valid: expected a non-empty list of http(s) URLs',
    ),
    (
        "non-http-url",
        PAYMENT + '[node]\nurls = ["https://nodes-testnet.wavesnodes.com", "ftp://example.org"]\n',
        'node.urls: "ftp://example.org" is not valid: expected http:// or https:// URLs',
    ),
    (
        "url-without-scheme",
        PAYMENT + '[node]\nurls = ["nodes-testnet.wavesnodes.com"]\n',
        'node.urls: "nodes-testnet.wavesnodes.com" is not valid: expected http:// or https:// URLs',
    ),
    (
        "chain-id-two-characters",
        PAYMENT + '[node]\nchain_id = "TT"\n',
        'node.chain_id: "TT" is not valid: expected one character, '
        'e.g. "W" mainnet, "T" testnet, "S" stagenet, "Z" 0bsnetwork',
    ),
    (
        "seconds-per-token-zero",
        '[payment]\nasset_id = "%s"\nseconds_per_token = 0\n' % ASSET,
        "payment.seconds_per_token: 0 is not valid: expected a number greater than 0",
    ),
    (
        "max-seconds-infinite",
        '[payment]\nasset_id = "%s"\nmax_seconds = inf\n' % ASSET,
        "payment.max_seconds: inf is not valid: expected a number greater than 0",
    ),
    (
        "telemetry-too-often",
        PAYMENT + "[data]\ntelemetry_interval = 0.5\n",
        "data.telemetry_interval: 0.5 is not valid: expected 0 (off) or a number of seconds from 1 to 86400",
    ),
    (
        "empty-seed-file-path",
        PAYMENT + '[device]\nseed_file = ""\n',
        "device.seed_file: must not be empty: expected a path",
    ),
]


@pytest.mark.parametrize("text, message", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_configuration(tmp_path, text, message):
    """`check` with this file exits 2 with one stderr line naming the file, the key and what is expected."""
    path = tmp_path / "iotlight.toml"
    path.write_text(text, encoding="utf-8")
    assert_one_line_error(run_main("-c", str(path), "check", cwd=tmp_path), "%s: %s" % (path, message))


def test_broken_configuration_stops_every_command(tmp_path):
    """run (the default), keygen and address refuse the same broken file before doing anything."""
    path = tmp_path / "iotlight.toml"
    path.write_text(PAYMENT + "[node]\nconfirmations = 101\n", encoding="utf-8")
    message = "%s: node.confirmations: 101 is not valid: expected an integer from 0 to 100" % path
    for args in ((), ("run",), ("keygen",), ("address",)):
        assert_one_line_error(run_main("-c", str(path), *args, cwd=tmp_path), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iotlight.toml"], "nothing may be created"


@pytest.mark.process
def test_a_broken_file_stops_the_real_command(tmp_path):
    """`python iotlight.py` (run, the default) and `python iotlight.py check`, as a user runs them, on a file
    with an out-of-range value, found as ./iotlight.toml: exit 2, exactly one `iotlight: FILE: KEY: ...` line,
    nothing on stdout, nothing created."""
    (tmp_path / "iotlight.toml").write_text(PAYMENT + "[node]\nconfirmations = 101\n", encoding="utf-8")
    message = "./iotlight.toml: node.confirmations: 101 is not valid: expected an integer from 0 to 100"
    for args in ((), ("check",)):
        assert_one_line_error(run_cli(*args, cwd=tmp_path, timeout=60), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iotlight.toml"]


def test_nested_empty_table_is_refused(tmp_path):
    """An empty sub-table ([node.extra]) is an unknown key too, not silently ignored."""
    path = tmp_path / "iotlight.toml"
    path.write_text(PAYMENT + "[node.extra]\n", encoding="utf-8")
    result = run_main("-c", str(path), "check", cwd=tmp_path)
    assert result.status == 2 and "Traceback" not in result.err
    assert result.err.startswith("iotlight: %s: node.extra: unknown key" % path)
    assert result.err.count("\n") == 1


@pytest.mark.parametrize(
    "text",
    [
        "[node\nurls = []\n",
        PAYMENT + "[node]\npoll_interval = \n",
        PAYMENT + PAYMENT,
        '[payment]\nasset_id = "unterminated\n',
    ],
)
def test_invalid_toml(tmp_path, text):
    """A file that is not TOML: exit 2, one line with the parser's own words (line and column)."""
    path = tmp_path / "iotlight.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(tomllib.TOMLDecodeError) as parser:
        tomllib.loads(text)
    assert_one_line_error(
        run_main("-c", str(path), "check", cwd=tmp_path), "%s: not valid TOML: %s" % (path, parser.value)
    )
    assert "line" in str(parser.value)


def test_missing_file(tmp_path):
    """A -c path that does not exist: exit 2, one line."""
    path = tmp_path / "nowhere.toml"
    assert_one_line_error(
        run_main("-c", str(path), "check", cwd=tmp_path), "%s: no such configuration file" % path
    )


def test_missing_file_relative_path_as_typed(tmp_path):
    """The message names the path exactly as the user typed it."""
    assert_one_line_error(
        run_main("-c", "conf/iotlight.toml", "check", cwd=tmp_path),
        "conf/iotlight.toml: no such configuration file",
    )


def test_file_not_utf8(tmp_path):
    """A file that is not UTF-8 text: exit 2, one line saying it cannot be read."""
    path = tmp_path / "iotlight.toml"
    path.write_bytes(b'[node]\nchain_id = "\xff"\n')
    result = run_main("-c", str(path), "check", cwd=tmp_path)
    assert result.status == 2 and "Traceback" not in result.err and result.err.count("\n") == 1
    assert result.err.startswith("iotlight: %s: cannot read: " % path)


def test_configuration_is_a_directory(tmp_path):
    """-c pointing at a folder: exit 2, one line."""
    result = run_main("-c", str(tmp_path), "check", cwd=tmp_path)
    assert result.status == 2 and "Traceback" not in result.err and result.err.count("\n") == 1
    assert result.err.startswith("iotlight: %s: cannot read: " % tmp_path)


def test_no_configuration_found(tmp_path):
    """Without -c and without ./iotlight.toml (or /etc/iotlight/iotlight.toml): exit 2, say what was tried."""
    if os.path.exists("/etc/iotlight/iotlight.toml"):
        pytest.skip("this machine has /etc/iotlight/iotlight.toml")
    assert_one_line_error(
        run_main("check", cwd=tmp_path),
        "no configuration found: tried ./iotlight.toml, /etc/iotlight/iotlight.toml; pass -c PATH",
    )


def test_configuration_in_current_folder_is_found(tmp_path):
    """Without -c, ./iotlight.toml is read (a broken one proves it was)."""
    (tmp_path / "iotlight.toml").write_text(PAYMENT + "[node]\nconfirmations = 101\n", encoding="utf-8")
    assert_one_line_error(
        run_main("check", cwd=tmp_path),
        "./iotlight.toml: node.confirmations: 101 is not valid: expected an integer from 0 to 100",
    )


def test_config_error_class():
    """ConfigError is an IotlightError and a ValueError with exit status 2."""
    assert issubclass(iotlight.ConfigError, iotlight.IotlightError)
    assert issubclass(iotlight.ConfigError, ValueError)
    assert iotlight.ConfigError.exit_status == 2
    assert issubclass(iotlight.SeedFileError, iotlight.ConfigError)


# --- the good path --------------------------------------------------------------------------


def _default_file() -> Path:
    path = REPO / "iotlight.toml"
    assert path.is_file(), (
        "the commented default configuration iotlight.toml must exist at the repository root"
    )
    return path


def _with_asset(text: str) -> str:
    """The default file with its commented payment.asset_id line switched on."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if re.match(r"#\s*asset_id\s*=", line)]
    assert len(hits) == 1, "iotlight.toml shows payment.asset_id as one commented line"
    lines[hits[0]] = 'asset_id = "%s"\n' % ASSET
    return "".join(lines)


def test_default_file_needs_only_the_asset_id(tmp_path):
    """The shipped iotlight.toml stops only because payment.asset_id is not set yet."""
    path = tmp_path / "iotlight.toml"
    path.write_text(_default_file().read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(iotlight.ConfigError) as info:
        iotlight.load_config(str(path))
    assert str(info.value) == (
        "%s: payment.asset_id: missing: expected the base58 id of the token that buys light "
        "(set it in [payment])" % path
    )
    assert iotlight.load_config(str(path), require_asset=False).asset_id == ""


def test_default_file_parses_with_asset_id(tmp_path):
    """With payment.asset_id set, the shipped file loads; paths land beside it."""
    path = tmp_path / "iotlight.toml"
    path.write_text(_with_asset(_default_file().read_text(encoding="utf-8")), encoding="utf-8")
    config = iotlight.load_config(str(path))
    assert config.asset_id == ASSET
    assert config.path == str(path.resolve())
    assert Path(config.seed_file) == tmp_path.resolve() / "device.seed"
    assert Path(config.state_file) == tmp_path.resolve() / "iotlight.db"


def test_default_file_shows_every_key_with_its_default():
    """Every key of the schema appears in iotlight.toml (asset_id commented), each with the schema's default."""
    text = _with_asset(_default_file().read_text(encoding="utf-8"))
    flat = {
        "%s.%s" % (section, key): value
        for section, table in tomllib.loads(text).items()
        for key, value in table.items()
    }
    assert set(flat) == set(iotlight.CONFIG_SCHEMA), "keys missing from or unknown to iotlight.toml"
    for key, spec in iotlight.CONFIG_SCHEMA.items():
        if key != "payment.asset_id":
            assert flat[key] == spec.default, key


def test_schema_and_config_list_the_same_fields():
    """CONFIG_SCHEMA is the one list of keys: each names a Config attribute of its own (config_attr), and
    Config has no attribute beyond them (and its path), so a key added in one place only fails here; and
    each key has its edges listed in EDGES below."""
    attrs = [iotlight.config_attr(key) for key in iotlight.CONFIG_SCHEMA]
    assert len(attrs) == len(set(attrs)), "two keys fill the same Config attribute"
    fields = [f.name for f in dataclasses.fields(iotlight.Config)]
    assert fields == ["path", *attrs]
    assert set(EDGES) == set(iotlight.CONFIG_SCHEMA), "a key without its edges in EDGES, or an unknown one"
    assert iotlight.config_attr("node.urls") == "node_urls" and iotlight.config_attr("light.color") == "color"


def test_parse_config_fills_each_attribute_from_its_key(tmp_path):
    """A Config built from defaults holds each key's default, converted (paths, links and the asset
    id are resolved separately); a changed value lands in its own attribute."""
    path = str(tmp_path / "iotlight.toml")
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}}, path)
    resolved = (
        "device.seed_file",
        "device.state_file",
        "monitor.wallet_url",
        "monitor.explorer_url",
        "payment.asset_id",
    )
    for key, spec in iotlight.CONFIG_SCHEMA.items():
        if key not in resolved:
            assert getattr(config, iotlight.config_attr(key)) == spec.convert(spec.default), key
    assert config.node_urls == ("https://nodes-testnet.wavesnodes.com",)
    assert config.color == (255, 255, 255) and config.poll_interval == 1.0
    changed = iotlight.parse_config(
        {
            "payment": {"asset_id": ASSET, "max_seconds": 90},
            "node": {"urls": ["http://127.0.0.1:6869/"]},
            "monitor": {"host": " localhost ", "max_clients_per_address": 3},
        },
        path,
    )
    assert changed.max_seconds == 90.0 and isinstance(changed.max_seconds, float)
    assert changed.node_urls == ("http://127.0.0.1:6869",)
    assert changed.monitor_host == "localhost" and changed.monitor_max_clients_per_address == 3


def test_default_file_passes_check(tmp_path):
    """`check` on the shipped file (asset id set) and a fresh seed: exit 0, prints the address."""
    path = tmp_path / "iotlight.toml"
    path.write_text(_with_asset(_default_file().read_text(encoding="utf-8")), encoding="utf-8")
    seed = "tortoise walrus zebra"
    seed_path = tmp_path / "device.seed"
    seed_path.write_text(seed + "\n", encoding="utf-8")
    seed_path.chmod(0o600)
    result = run_main(
        "-c", str(path), "check", "--offline", cwd=tmp_path
    )  # the shipped file names a public node
    assert result.status == 0, result.err
    assert iotlight.keypair_from_seed(seed).address("T") in result.out
    assert "Traceback" not in result.output and "tortoise" not in result.output


def test_minimal_configuration_takes_the_documented_defaults(tmp_path):
    """Only payment.asset_id set: every other value is the contract's default."""
    path = tmp_path / "iotlight.toml"
    path.write_text(PAYMENT, encoding="utf-8")
    c = iotlight.load_config(str(path))
    assert c.node_urls == ("https://nodes-testnet.wavesnodes.com",)
    assert (c.chain_id, c.poll_interval, c.confirmations, c.timeout) == ("T", 1.0, 0, 10.0)
    assert (c.address, c.asset_id, c.seconds_per_token, c.max_seconds, c.count_history) == (
        "",
        ASSET,
        1.0,
        3600.0,
        False,
    )
    assert (c.color, c.countdown, c.joystick, c.telemetry_interval, c.fee) == (
        (255, 255, 255),
        True,
        True,
        0,
        0,
    )
    assert (c.backend, c.monitor_host, c.monitor_port, c.monitor_token) == ("auto", "127.0.0.1", 8765, "")
    assert c.rules == "waves"


def test_relative_paths_resolve_against_the_configuration_folder(tmp_path, monkeypatch):
    """seed_file and state_file relative to the file's folder, whatever the current folder; absolute ones kept."""
    conf = tmp_path / "etc" / "iotlight"
    conf.mkdir(parents=True)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    absolute_state = tmp_path / "var" / "state.db"
    (conf / "iotlight.toml").write_text(
        PAYMENT + '[device]\nseed_file = "keys/device.seed"\nstate_file = "%s"\n' % absolute_state,
        encoding="utf-8",
    )
    monkeypatch.chdir(elsewhere)
    config = iotlight.load_config("../../etc/iotlight/iotlight.toml")
    assert Path(config.seed_file) == conf.resolve() / "keys" / "device.seed"
    assert Path(config.state_file) == absolute_state
    assert Path(config.path) == (conf / "iotlight.toml").resolve()


def test_relative_paths_through_the_command_line(tmp_path):
    """`check` from another folder with a relative -c finds the seed beside the file and reports the state path."""
    conf = tmp_path / "conf"
    (conf / "keys").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (conf / "iotlight.toml").write_text(
        PAYMENT + '[device]\nseed_file = "keys/dev.seed"\nstate_file = "data/iotlight.db"\n', encoding="utf-8"
    )
    seed_path = conf / "keys" / "dev.seed"
    seed_path.write_text("walrus tortoise zebra\n", encoding="utf-8")
    seed_path.chmod(0o600)
    result = run_main(
        "-c", "../conf/iotlight.toml", "check", "--offline", cwd=elsewhere
    )  # default: a public node
    assert result.status == 0, result.err
    assert str(conf.resolve() / "data" / "iotlight.db") in result.out
    assert iotlight.keypair_from_seed("walrus tortoise zebra").address("T") in result.out
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.4.5.6", "::1", "[::1]", "localhost"])
def test_loopback_monitor_needs_no_token(tmp_path, host):
    """Loopback hosts need no token."""
    path = tmp_path / "iotlight.toml"
    path.write_text(PAYMENT + '[monitor]\nhost = "%s"\n' % host, encoding="utf-8")
    assert iotlight.load_config(str(path)).monitor_host == host


def test_open_monitor_with_token_or_switched_off(tmp_path):
    """A LAN host is fine with a token, or with the monitor off (port 0)."""
    path = tmp_path / "iotlight.toml"
    path.write_text(PAYMENT + '[monitor]\nhost = "0.0.0.0"\ntoken = "s3cret"\n', encoding="utf-8")
    assert iotlight.load_config(str(path)).monitor_token == "s3cret"
    path.write_text(PAYMENT + '[monitor]\nhost = "0.0.0.0"\nport = 0\n', encoding="utf-8")
    assert iotlight.load_config(str(path)).monitor_port == 0


def _below(x: float) -> str:
    """The float just below x, as TOML (and the error message) write it."""
    return repr(math.nextafter(x, -math.inf))


def _above(x: float) -> str:
    return repr(math.nextafter(x, math.inf))


SECONDS = "expected a number of seconds from %s"
POSITIVE = "expected a number greater than 0"
SWITCH = "expected true or false"
WALLET = (
    'expected "auto" (the public web wallet of node.chain_id), "" (none) or an https:// link with {asset}, '
    "{address} and {amount}"
)
EXPLORER = 'expected "auto" (the public explorer of node.chain_id), "" (none) or an https:// link with {id}'
HERE = "/cfg"  # the folder of the configuration file in test_every_key_holds_its_range_at_both_ends
ID_31, ID_32, ID_33 = (iotlight.b58encode(bytes(range(1, n + 1))) for n in (31, 32, 33))  # asset ids' lengths

# key -> (accepted: [(TOML value, the Config attribute it gives)], refused: [(TOML value, what follows "KEY: ")]).
# The lowest and the highest value each key accepts, and one step past each: the README's ranges.
EDGES = {
    "node.urls": (
        [
            ('["http://a.b"]', ("http://a.b",)),
            ('["https://a/", "http://b.example"]', ("https://a", "http://b.example")),
        ],
        [
            ("[]", "[] is not valid: expected a non-empty list of http(s) URLs"),
            ('["http://ab"]', '"http://ab" is not valid: expected http:// or https:// URLs'),
            (
                '["htp://node.example"]',
                '"htp://node.example" is not valid: expected http:// or https:// URLs',
            ),
            ("[1]", "[1] is not valid: expected a non-empty list of http(s) URLs"),
        ],
    ),
    "node.chain_id": (
        [('"!"', "!"), ('"~"', "~"), ('"W"', "W")],
        [
            (
                '" "',
                '" " is not valid: expected one character, e.g. "W" mainnet, "T" testnet, "S" stagenet, "Z" 0bsnetwork',
            ),
            (
                '"\\u007F"',
                '"\x7f" is not valid: expected one character, e.g. "W" mainnet, "T" testnet, "S" stagenet, "Z" '
                "0bsnetwork",
            ),
            (
                '""',
                '"" is not valid: expected one character, e.g. "W" mainnet, "T" testnet, "S" stagenet, "Z" 0bsnetwork',
            ),
        ],
    ),
    "node.poll_interval": (
        [("0.1", 0.1), ("60", 60.0)],
        [
            (_below(0.1), _below(0.1) + " is not valid: " + SECONDS % "0.1 to 60"),
            (_above(60), _above(60) + " is not valid: " + SECONDS % "0.1 to 60"),
        ],
    ),
    "node.confirmations": (
        [("0", 0), ("100", 100)],
        [
            ("-1", "-1 is not valid: expected an integer from 0 to 100"),
            ("101", "101 is not valid: expected an integer from 0 to 100"),
        ],
    ),
    "node.timeout": (
        [("0.5", 0.5), ("300", 300.0)],
        [
            (_below(0.5), _below(0.5) + " is not valid: " + SECONDS % "0.5 to 300"),
            (_above(300), _above(300) + " is not valid: " + SECONDS % "0.5 to 300"),
        ],
    ),
    "node.fork": (
        [('"auto"', "auto"), ('"waves"', "waves"), ('"0bs"', "0bs")],
        [
            (
                '"zbs"',
                '"zbs" is not valid: expected "auto" (0bs rules on chain "Z", Waves rules elsewhere), "waves" or "0bs"',
            )
        ],
    ),
    "node.sweep_interval": (
        [("5", 5.0), ("3600", 3600.0)],
        [
            (_below(5), _below(5) + " is not valid: " + SECONDS % "5 to 3600"),
            (_above(3600), _above(3600) + " is not valid: " + SECONDS % "5 to 3600"),
        ],
    ),
    "node.list_rate": (
        [("0", 0.0), ("600", 600.0)],
        [
            (
                _below(0),
                _below(0)
                + " is not valid: expected requests per minute from 0 (unlimited, for an own node) to 600",
            ),
            (
                _above(600),
                _above(600)
                + " is not valid: expected requests per minute from 0 (unlimited, for an own node) to 600",
            ),
        ],
    ),
    "node.max_answer_bytes": (
        [("65536", 65536), ("268435456", 268435456)],
        [
            ("65535", "65535 is not valid: expected an integer from 65536 to 268435456 (bytes)"),
            ("268435457", "268435457 is not valid: expected an integer from 65536 to 268435456 (bytes)"),
        ],
    ),
    "device.seed_file": (
        [('"s"', HERE + "/s"), ('"/etc/iotlight/device.seed"', "/etc/iotlight/device.seed")],
        [
            ('""', "must not be empty: expected a path"),
            ('" "', "must not be empty: expected a path"),
            ("1", "1 is not valid: expected a path"),
        ],
    ),
    "device.address": (
        [('""', ""), ('"%s"' % DOCS_ADDRESS_T, DOCS_ADDRESS_T)],
        [
            (
                '"%s"' % CHECKSUM_TYPO,
                '"%s" is not valid: address checksum does not match (a typo?)' % CHECKSUM_TYPO,
            )
        ],
    ),
    "device.state_file": (
        [('"d"', HERE + "/d"), ('"/var/lib/iotlight/iotlight.db"', "/var/lib/iotlight/iotlight.db")],
        [('""', "must not be empty: expected a path"), ("[]", "[] is not valid: expected a path")],
    ),
    "payment.asset_id": (
        [('"%s"' % ASSET, ASSET), ('"%s"' % ID_32, ID_32)],
        [
            (
                '"%s"' % ID_31,
                '"%s" is not valid: an asset id is 32 bytes, not 31 (expected the base58 id of the token that '
                "buys light)" % ID_31,
            ),
            (
                '"%s"' % ID_33,
                '"%s" is not valid: an asset id is 32 bytes, not 33 (expected the base58 id of the token that '
                "buys light)" % ID_33,
            ),
            ("1", "1 is not valid: expected the base58 id of the token that buys light"),
        ],
    ),
    "payment.seconds_per_token": (
        [("5e-324", 5e-324), ("1.7976931348623157e308", 1.7976931348623157e308), ("1", 1.0)],
        [
            ("0", "0 is not valid: " + POSITIVE),
            ("inf", "inf is not valid: " + POSITIVE),
            ("-1", "-1 is not valid: " + POSITIVE),
        ],
    ),
    "payment.max_seconds": (
        [("5e-324", 5e-324), ("1.7976931348623157e308", 1.7976931348623157e308)],
        [("0", "0 is not valid: " + POSITIVE), ("inf", "inf is not valid: " + POSITIVE)],
    ),
    "payment.count_history": (
        [("true", True), ("false", False)],
        [("1", "1 is not valid: " + SWITCH)],
    ),
    "payment.min_tokens": (
        [("0", 0.0), (_below(1e15), float(_below(1e15)))],
        [
            (_below(0), _below(0) + " is not valid: expected a number of whole tokens, 0 or more"),
            ("1e15", "1000000000000000.0 is not valid: expected a number of whole tokens, 0 or more"),
        ],
    ),
    "payment.refund": (
        [('"none"', "none"), ('"excess"', "excess")],
        [('"all"', '"all" is not valid: expected "none" or "excess"')],
    ),
    "light.color": (
        [("[0, 0, 0]", (0, 0, 0)), ("[255, 255, 255]", (255, 255, 255))],
        [
            ("[-1, 0, 0]", "[-1, 0, 0] is not valid: expected [r, g, b] with integers from 0 to 255"),
            ("[0, 0, 256]", "[0, 0, 256] is not valid: expected [r, g, b] with integers from 0 to 255"),
            ("[0, 0, 0, 0]", "[0, 0, 0, 0] is not valid: expected [r, g, b] with integers from 0 to 255"),
            ("[0, 0.5, 0]", "[0, 0.5, 0] is not valid: expected [r, g, b] with integers from 0 to 255"),
        ],
    ),
    "light.countdown": ([("true", True), ("false", False)], [('"no"', '"no" is not valid: ' + SWITCH)]),
    "light.gpio_pin": (
        [("-1", -1), ("0", 0), ("27", 27)],
        [
            ("-2", "-2 is not valid: expected a BCM pin number from 0 to 27, or -1 (off)"),
            ("28", "28 is not valid: expected a BCM pin number from 0 to 27, or -1 (off)"),
        ],
    ),
    "light.gpio_active_high": (
        [("true", True), ("false", False)],
        [("0", "0 is not valid: expected true or false (false for relay boards that switch on low)")],
    ),
    "data.joystick": ([("true", True), ("false", False)], [('"yes"', '"yes" is not valid: ' + SWITCH)]),
    "data.telemetry_interval": (
        [("0", 0.0), ("1", 1.0), ("86400", 86400.0)],
        [
            (_below(0), _below(0) + " is not valid: expected 0 (off) or a number of seconds from 1 to 86400"),
            (_below(1), _below(1) + " is not valid: expected 0 (off) or a number of seconds from 1 to 86400"),
            (
                _above(86400),
                _above(86400) + " is not valid: expected 0 (off) or a number of seconds from 1 to 86400",
            ),
        ],
    ),
    "data.fee": (
        [("0", 0), ("1000000000000", 10**12)],
        [
            ("-1", "-1 is not valid: expected 0 (automatic) or a fee in the smallest coin unit"),
            (
                "1000000000001",
                "1000000000001 is not valid: expected 0 (automatic) or a fee in the smallest coin unit",
            ),
            ("1.5", "1.5 is not valid: expected 0 (automatic) or a fee in the smallest coin unit"),
        ],
    ),
    "data.coalesce_window": (
        [("0", 0.0), ("60", 60.0)],
        [
            (_below(0), _below(0) + " is not valid: " + SECONDS % "0 to 60"),
            (_above(60), _above(60) + " is not valid: " + SECONDS % "0 to 60"),
        ],
    ),
    "data.max_tx_per_minute": (
        [("1", 1), ("120", 120)],
        [
            ("0", "0 is not valid: expected an integer from 1 to 120"),
            ("121", "121 is not valid: expected an integer from 1 to 120"),
        ],
    ),
    "hardware.backend": (
        [('"%s"' % b, b) for b in ("auto", "sense-hat", "sense-emu", "terminal", "none")],
        [
            (
                '"Auto"',
                '"Auto" is not valid: expected one of "auto", "sense-hat", "sense-emu", "terminal", "none"',
            )
        ],
    ),
    "monitor.host": (
        [('"127.0.0.1"', "127.0.0.1"), ('" localhost "', "localhost"), ('"::1"', "::1")],
        [
            ('""', "must not be empty"),
            ('"  "', "must not be empty"),
            ("1", "1 is not valid: expected a host name or IP address"),
        ],
    ),
    "monitor.port": (
        [("0", 0), ("65535", 65535)],
        [
            ("-1", "-1 is not valid: expected an integer from 0 (off) to 65535"),
            ("65536", "65536 is not valid: expected an integer from 0 (off) to 65535"),
        ],
    ),
    "monitor.token": ([('""', ""), ('"s3cret"', "s3cret")], [("1", "1 is not valid: expected a string")]),
    "monitor.max_clients_per_address": (
        [("1", 1), ("1000", 1000)],
        [
            ("0", "0 is not valid: expected an integer from 1 to 1000"),
            ("1001", "1001 is not valid: expected an integer from 1 to 1000"),
        ],
    ),
    "monitor.wallet_url": (
        [
            (
                '"auto"',
                "https://testnet.waves.exchange/#send/{asset}?recipient={address}&amount={amount}&strict",
            ),
            ('""', ""),
            ('"https://w.example/{address}"', "https://w.example/{address}"),
        ],
        [
            ('"https://w.example/"', '"https://w.example/" is not valid: ' + WALLET),
            ('"wallet://{address}"', '"wallet://{address}" is not valid: ' + WALLET),
        ],
    ),
    "monitor.explorer_url": (
        [
            ('"auto"', "https://wavesexplorer.com/testnet/tx/{id}"),
            ('""', ""),
            ('"http://e.example/{id}"', "http://e.example/{id}"),
        ],
        [('"https://e.example/tx/"', '"https://e.example/tx/" is not valid: ' + EXPLORER)],
    ),
}


def _table(key: str, toml_value: str) -> dict:
    """The parsed TOML of a configuration holding the asset id and `key = toml_value`."""
    section, name = key.split(".")
    text = "[%s]\n%s = %s\n" % (section, name, toml_value)
    if section != "payment":
        text = PAYMENT + text
    elif key != "payment.asset_id":
        text = text.replace("[payment]\n", PAYMENT)
    return tomllib.loads(text)


@pytest.mark.parametrize("key", list(EDGES))
def test_every_key_holds_its_range_at_both_ends(key):
    """Each key's lowest and highest accepted values (and its other kinds of good value) load into its own
    Config attribute; one step past each end, or a value of the wrong kind, is refused with the exact
    message naming the file, the key, the value and what is expected."""
    path = HERE + "/iotlight.toml"
    accepted, refused = EDGES[key]
    for value, attribute in accepted:
        config = iotlight.parse_config(_table(key, value), path)
        got = getattr(config, iotlight.config_attr(key))
        assert got == attribute and type(got) is type(attribute), (key, value, got)
    for value, message in refused:
        with pytest.raises(iotlight.ConfigError) as refusal:
            iotlight.parse_config(_table(key, value), path)
        assert str(refusal.value) == "%s: %s: %s" % (path, key, message), value


def test_an_empty_asset_id_is_no_asset_id(tmp_path):
    """payment.asset_id set to "" is refused like a missing one wherever the token is required."""
    path = str(tmp_path / "iotlight.toml")
    with pytest.raises(iotlight.ConfigError) as refusal:
        iotlight.parse_config({"payment": {"asset_id": ""}}, path)
    assert str(refusal.value).startswith("%s: payment.asset_id: " % path)


def test_chain_and_fork_choose_the_rules(tmp_path):
    """fork "auto": 0bs rules on chain Z, Waves rules elsewhere; "0bs" for the 0bs testnet on T."""
    path = tmp_path / "iotlight.toml"
    zbs_asset = "DRfCwvx3t2rkwBMj8gGUGoS65dn6kff3iSWHGwBHnCrW"
    path.write_text('[payment]\nasset_id = "%s"\n[node]\nchain_id = "Z"\n' % zbs_asset, encoding="utf-8")
    assert iotlight.load_config(str(path)).rules == "0bs"
    path.write_text(PAYMENT + '[node]\nfork = "0bs"\n', encoding="utf-8")
    assert iotlight.load_config(str(path)).rules == "0bs"
    path.write_text(PAYMENT + '[node]\nchain_id = "W"\n', encoding="utf-8")
    assert iotlight.load_config(str(path)).rules == "waves"


def test_url_trailing_slash_is_dropped(tmp_path):
    """Node URLs are kept in order without a trailing slash."""
    path = tmp_path / "iotlight.toml"
    path.write_text(
        PAYMENT + '[node]\nurls = ["http://127.0.0.1:6869/", "https://node.example"]\n', encoding="utf-8"
    )
    assert iotlight.load_config(str(path)).node_urls == ("http://127.0.0.1:6869", "https://node.example")


def test_device_address_accepted_when_valid(tmp_path):
    """A valid device.address of the configured chain loads."""
    path = tmp_path / "iotlight.toml"
    path.write_text(PAYMENT + '[device]\naddress = "%s"\n' % DOCS_ADDRESS_T, encoding="utf-8")
    assert iotlight.load_config(str(path)).address == DOCS_ADDRESS_T


def test_nan_and_inf_never_pass(tmp_path):
    """TOML's nan and inf are refused wherever a number is expected."""
    path = tmp_path / "iotlight.toml"
    for key in (
        "node.poll_interval",
        "node.timeout",
        "node.sweep_interval",
        "payment.seconds_per_token",
        "payment.max_seconds",
        "data.telemetry_interval",
        "data.coalesce_window",
    ):
        section, name = key.split(".")
        for value in ("nan", "inf", "-inf"):
            body = (
                '[payment]\nasset_id = "%s"\n' % ASSET
                if section == "payment"
                else PAYMENT + "[%s]\n" % section
            )
            path.write_text(body + "%s = %s\n" % (name, value), encoding="utf-8")
            with pytest.raises(
                iotlight.ConfigError, match=re.escape("%s: %s: %s is not valid" % (path, key, value))
            ):
                iotlight.load_config(str(path))
    assert math.isnan(tomllib.loads("x = nan")["x"])


def test_asset_id_one_check_one_wording(tmp_path):
    """payment.asset_id, `pay --asset` and a transfer's assetId all go through parse_asset_id: the
    same words for the same mistake; the chain's coin is b"" where a coin will do."""
    assert iotlight.parse_asset_id(ASSET) == iotlight.b58decode(ASSET)
    for coin in (None, "", "WAVES", "waves"):
        assert iotlight.parse_asset_id(coin) == b""
    assert iotlight.parse_asset_id("zbs", coin="ZBS") == b""
    with pytest.raises(iotlight.EncodingError, match="^an asset id is 32 bytes, not 4$"):
        iotlight.parse_asset_id("WAVES", coin=None)  # a token is required: the coin's name is no token
    wording = "an asset id is 32 bytes, not 26"
    with pytest.raises(iotlight.ConfigError) as config_error:
        iotlight.parse_config({"payment": {"asset_id": DOCS_ADDRESS_T}}, str(tmp_path / "iotlight.toml"))
    assert ": %s (expected" % wording in str(config_error.value)
    keys = iotlight.keypair_from_seed("refactor throwaway seed")
    with pytest.raises(iotlight.EncodingError) as tx_error:
        iotlight.build_transfer_tx(
            keys,
            recipient=DOCS_ADDRESS_T,
            amount=1,
            asset_id=DOCS_ADDRESS_T,
            timestamp=1_700_000_000_000,
            chain_id="T",
            fee=100_000,
        )
    assert str(tx_error.value) == "assetId: " + wording
    path = tmp_path / "iotlight.toml"
    path.write_text(PAYMENT + '[node]\nurls = ["http://127.0.0.1:9"]\n', encoding="utf-8")
    seed = tmp_path / "funded.seed"
    seed.write_text("refactor throwaway seed\n", encoding="utf-8")
    seed.chmod(0o600)
    result = run_main(
        "-c",
        str(path),
        "pay",
        "--seed-file",
        str(seed),
        "--asset",
        DOCS_ADDRESS_T,
        DOCS_ADDRESS_T,
        "1",
        cwd=tmp_path,
    )
    assert_one_line_error(
        result, "--asset %s: %s (or --asset WAVES for the chain's coin)" % (DOCS_ADDRESS_T, wording)
    )
