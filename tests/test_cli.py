"""The command line: keygen, address, check, run's seed checks, --version, --help, exit statuses
0/1/2, and the node's refusals in plain words.

The commands run in this process: iotlight.main([...]) through run_main (below), with the fake node
(tests/tools/fakenode.py) answering from a thread where a node is asked. A few run as the real
`python iotlight.py ...` (marked process) to check the exit statuses and the one-line errors end to
end. Every output of every command in this file is checked, at the end of each test, for the seed
phrases the test used: the seed never appears on stdout or stderr.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
from pathlib import Path
from typing import Optional

import pytest
from clirun import Result, assert_one_line_error, run_cli

import iotlight

ASSET = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"
# A throwaway seed of BIP-39 words that no message of iotlight uses, so that single words can be checked too.
SEED = (
    "zebra walrus tortoise octopus jaguar kangaroo lobster penguin dolphin giraffe "
    "hamster leopard gorilla buffalo squirrel"
)
SEED_ADDRESS_T = iotlight.keypair_from_seed(SEED).address("T")
OFFLINE_NODE = "http://127.0.0.1:9"  # discard port: nothing answers there


# --- the command line in this process ----------------------------------------------------------
# (a helper for every test file that runs commands: test_config, test_workshop and test_redaction
# import it from here; it belongs in tests/clirun.py beside run_cli)

_NOISY_LOGGERS = ("httpx", "httpcore", "websockets", "asyncio", "PIL")


async def _no_daemon(config, keys):
    raise AssertionError("`run` got as far as starting the daemon in the test process")


def run_main(*args: str, cwd, umask: Optional[int] = None) -> Result:
    """`python iotlight.py ARGS` in this process: iotlight.main(ARGS) run in `cwd` (with `umask`), its
    stdout and stderr captured, the log setup_logging sends to stderr included; argparse's own exits
    (--help, --version) give their status. The working folder, the umask and the logging setup are put
    back afterwards. `run` must stop before the daemon starts (reaching it fails the test), and the fake
    node's access log (a thread of this process) stays out of the command's stderr."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    fake_node_log = logging.getLogger("iotlight.fakenode")
    quiet, fake_propagates = logging.NullHandler(), fake_node_log.propagate
    fake_node_log.addHandler(quiet)
    fake_node_log.propagate = False
    here, daemon = os.getcwd(), iotlight.run_daemon
    old_umask = os.umask(umask) if umask is not None else None
    iotlight.run_daemon = _no_daemon
    try:
        os.chdir(str(cwd))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = iotlight.main(list(args))
            except SystemExit as e:  # argparse: --help, --version
                status = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        iotlight.run_daemon = daemon
        os.chdir(here)
        if old_umask is not None:
            os.umask(old_umask)
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for name, noisy_level in levels.items():
            logging.getLogger(name).setLevel(noisy_level)
        fake_node_log.removeHandler(quiet)
        fake_node_log.propagate = fake_propagates
    return Result(tuple(args), status, out.getvalue(), err.getvalue())


class Cli:
    """Runs the command line and remembers every output and every seed, for the leak check."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.results: list = []
        self.seeds: set = set()
        self.fixed_seeds: set = set()

    def run(self, *args: str, cwd=None, umask: Optional[int] = None) -> Result:
        """The command in this process (run_main)."""
        result = run_main(*args, cwd=cwd or self.tmp, umask=umask)
        self.results.append(result)
        return result

    def run_process(self, *args: str, cwd=None) -> Result:
        """The real `python iotlight.py ARGS` (clirun.run_cli)."""
        result = run_cli(*args, cwd=cwd or self.tmp, timeout=60)
        self.results.append(result)
        return result

    def config(
        self,
        extra: str = "",
        *,
        asset=True,
        chain: str = "T",
        name: str = "iotlight.toml",
        folder=None,
        node=OFFLINE_NODE,
    ) -> Path:
        """A configuration; `asset` True is ASSET, a string is that asset id, False none; `node` a URL
        or a list of them."""
        folder = Path(folder or self.tmp)
        urls = ", ".join('"%s"' % u for u in ([node] if isinstance(node, str) else node))
        text = '[node]\nurls = [%s]\nchain_id = "%s"\ntimeout = 3.0\n' % (urls, chain)
        text += '[hardware]\nbackend = "none"\n[monitor]\nport = 0\n'
        if asset:
            text += '[payment]\nasset_id = "%s"\n' % (ASSET if asset is True else asset)
        path = folder / name
        path.write_text(text + extra, encoding="utf-8")
        return path

    def seed_file(self, seed: str = SEED, *, mode: int = 0o600, name: str = "device.seed", text=None) -> Path:
        path = self.tmp / name
        path.write_text(seed + "\n" if text is None else text, encoding="utf-8")
        path.chmod(mode)
        self.fixed_seeds.add(seed)
        return path

    def check_no_seed_in_output(self) -> None:
        for result in self.results:
            for seed in self.seeds | self.fixed_seeds:
                assert_no_seed(result, seed, single_words=seed in self.fixed_seeds)


def assert_no_seed(result: Result, seed: str, *, single_words: bool) -> None:
    """Neither the phrase, nor any two of its words in a row, nor (for our fixed seeds) any word of it."""
    text = result.output
    words = seed.split()
    assert seed not in text, "seed phrase printed by %r" % (result.args,)
    for a, b in zip(words, words[1:]):
        assert not re.search(r"\b%s\s+%s\b" % (re.escape(a), re.escape(b)), text), (
            "two seed words in a row printed by %r" % (result.args,)
        )
    if single_words:
        for w in words:
            assert not re.search(r"\b%s\b" % re.escape(w), text, re.IGNORECASE), (
                "seed word %r printed by %r" % (w, result.args)
            )
    private = iotlight.keypair_from_seed(seed).private_key
    assert iotlight.b58encode(private) not in text and private.hex() not in text


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path)
    yield c
    c.check_no_seed_in_output()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- keygen --------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000], ids="umask{:03o}".format)
def test_keygen_writes_a_private_15_word_seed(cli, umask):
    """keygen writes 15 BIP-39 English words, mode 0600 whatever the umask, and prints the address."""
    from mnemonic import Mnemonic

    path = cli.config(asset=False)  # keygen comes before the token exists
    result = cli.run("-c", str(path), "keygen", umask=umask)
    assert result.status == 0, result.err
    seed_path = cli.tmp / "device.seed"
    text = seed_path.read_text(encoding="utf-8")
    seed = text.rstrip("\n")
    cli.seeds.add(seed)
    assert text == seed + "\n"
    words = seed.split(" ")
    assert len(words) == 15 and set(words) <= set(Mnemonic("english").wordlist)
    assert _mode(seed_path) == 0o600
    address = iotlight.keypair_from_seed(seed).address("T")
    assert "address: %s" % address in result.out.splitlines()
    assert str(seed_path) in result.out
    assert result.err == ""


def test_keygen_refuses_to_overwrite_and_prints_that_seeds_address(cli):
    """A second keygen exits 2 with one error line, prints the existing seed's address, leaves the seed untouched."""
    path = cli.config()
    first = cli.run("-c", str(path), "keygen")
    assert first.status == 0, first.err
    seed_path = cli.tmp / "device.seed"
    before = seed_path.read_bytes()
    seed = before.decode().rstrip("\n")
    cli.seeds.add(seed)
    again = cli.run("-c", str(path), "keygen")
    assert (again.status, again.out) == (2, "address: %s\n" % iotlight.keypair_from_seed(seed).address("T"))
    assert again.err == (
        "iotlight: %s: a seed file exists already; keygen never overwrites one (its address is "
        "above)\n" % seed_path
    )
    assert seed_path.read_bytes() == before and _mode(seed_path) == 0o600


def test_keygen_over_an_existing_seed_of_our_own(cli):
    """keygen where the workshop's seed file already is: its address (as `address` prints it), exit 2."""
    cli.seed_file()
    again = cli.run("-c", str(cli.config(asset=False)), "keygen")
    assert (again.status, again.out) == (2, "address: %s\n" % SEED_ADDRESS_T)
    assert again.err.count("\n") == 1 and "never overwrites" in again.err


def test_keygen_twice_gives_two_accounts(cli):
    """Two keygens into two files give two different seeds and addresses."""
    addresses = set()
    for name in ("a", "b"):
        path = cli.config('[device]\nseed_file = "%s.seed"\n' % name, name=name + ".toml")
        result = cli.run("-c", str(path), "keygen")
        assert result.status == 0, result.err
        seed = (cli.tmp / (name + ".seed")).read_text(encoding="utf-8").rstrip("\n")
        cli.seeds.add(seed)
        addresses.add(iotlight.keypair_from_seed(seed).address("T"))
    assert len(addresses) == 2


def test_keygen_on_chain_z(cli):
    """On chain Z the printed address is a 0bs address (3Q...)."""
    path = cli.config(asset=False, chain="Z")
    result = cli.run("-c", str(path), "keygen")
    assert result.status == 0, result.err
    seed = (cli.tmp / "device.seed").read_text(encoding="utf-8").rstrip("\n")
    cli.seeds.add(seed)
    address = iotlight.keypair_from_seed(seed).address("Z")
    assert address.startswith("3Q") and "address: %s" % address in result.out.splitlines()


def test_keygen_into_a_missing_folder(cli):
    """A seed_file in a folder that does not exist: exit 2, one line, nothing written."""
    path = cli.config('[device]\nseed_file = "no/such/folder/device.seed"\n')
    seed_path = cli.tmp / "no" / "such" / "folder" / "device.seed"
    assert_one_line_error(
        cli.run("-c", str(path), "keygen"),
        "%s: cannot create the seed file: No such file or directory" % seed_path,
    )
    assert not (cli.tmp / "no").exists()


def test_keygen_seed_file_relative_to_configuration(cli):
    """keygen run from another folder writes the seed beside the configuration file."""
    conf = cli.tmp / "conf"
    conf.mkdir()
    elsewhere = cli.tmp / "elsewhere"
    elsewhere.mkdir()
    cli.config(folder=conf)
    result = cli.run("-c", "../conf/iotlight.toml", "keygen", cwd=elsewhere)
    assert result.status == 0, result.err
    assert (conf / "device.seed").is_file() and list(elsewhere.iterdir()) == []
    cli.seeds.add((conf / "device.seed").read_text(encoding="utf-8").rstrip("\n"))


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_keygen_on_a_dangling_link_names_it_and_writes_nothing_through_it(cli, target):
    """device.seed_file is a symbolic link to nowhere: keygen exits 2 with one line naming the link, where
    it points and what to do; nothing is created through the link. Doing what it says works."""
    (cli.tmp / "keys").mkdir()
    pointed = str(cli.tmp / "keys" / "device.seed") if target == "absolute" else "keys/device.seed"
    link = cli.tmp / "device.seed"
    link.symlink_to(pointed)
    path = cli.config(asset=False)
    assert_one_line_error(
        cli.run("-c", str(path), "keygen"),
        "%s is a symbolic link to %s, which does not exist; keygen writes no seed through a link: remove it "
        "(rm %s) and run keygen again, or point device.seed_file at a real file" % (link, pointed, link),
    )
    assert link.is_symlink() and os.readlink(link) == pointed
    assert list((cli.tmp / "keys").iterdir()) == [], "a seed was written through the link"
    assert sorted(p.name for p in cli.tmp.iterdir()) == ["device.seed", "iotlight.toml", "keys"]
    link.unlink()  # what the message says
    result = cli.run("-c", str(path), "keygen")
    assert result.status == 0, result.err
    assert not link.is_symlink() and _mode(link) == 0o600
    cli.seeds.add(link.read_text(encoding="utf-8").rstrip("\n"))


@pytest.mark.parametrize("command", ["address", "check", "run"])
def test_a_dangling_seed_link_is_named_by_every_command(cli, command):
    """address, check and run on a seed file that is a link to nowhere: exit 2, one line naming the link and
    its target and what to fix, rather than "no seed file; create one with keygen"; no state is created."""
    link = cli.tmp / "device.seed"
    link.symlink_to("/nonexistent/iotlight/device.seed")
    assert_one_line_error(
        cli.run("-c", str(cli.config()), command),
        "%s: the seed file is a symbolic link to /nonexistent/iotlight/device.seed, which does not exist; "
        "fix the link or point device.seed_file at the seed file" % link,
    )
    assert sorted(p.name for p in cli.tmp.iterdir()) == ["device.seed", "iotlight.toml"]


# --- address and check ---------------------------------------------------------------------------------


def test_address_prints_address_and_public_key(cli):
    """address prints the address and the public key, two lines, nothing else; no asset id needed."""
    cli.seed_file()
    path = cli.config(asset=False)
    result = cli.run("-c", str(path), "address")
    keys = iotlight.keypair_from_seed(SEED)
    assert result.status == 0, result.err
    assert result.out == "address: %s\npublic key: %s\n" % (
        SEED_ADDRESS_T,
        iotlight.b58encode(keys.public_key),
    )
    assert result.err == ""


def test_address_of_a_published_seed(cli):
    """The docs' seed gives the docs' testnet address (accounts.json)."""
    docs_seed = (
        "manage manual recall harvest series desert melt police rose hollow moral pledge kitten position add"
    )
    cli.seed_file(docs_seed)
    result = cli.run("-c", str(cli.config()), "address")
    assert result.status == 0, result.err
    assert result.out.splitlines()[0] == "address: 3NBaYzWT2odsyrZ2u1ghsrHinBm4xFRAgLX"
    assert result.out.splitlines()[1] == "public key: HBqhfdFASRQ5eBBpu2y6c6KKi1az6bMx8v1JxX4iW1Q8"


@pytest.mark.parametrize("text", [SEED, SEED + "\n", SEED + "\r\n"], ids=["none", "lf", "crlf"])
def test_seed_file_line_ending(cli, text):
    """One trailing newline (LF or CRLF) ends the seed; it is not part of it."""
    cli.seed_file(text=text)
    cli.fixed_seeds.add(SEED)
    result = cli.run("-c", str(cli.config()), "address")
    assert result.status == 0, result.err
    assert result.out.splitlines()[0] == "address: %s" % SEED_ADDRESS_T


def test_check_valid(cli, chain):
    """check with a good configuration, seed and node: exit 0, the summary and what the node says."""
    cli.seed_file()
    chain.fund(SEED_ADDRESS_T, waves=10**8)
    result = cli.run("-c", str(cli.config(node=chain.url, asset=chain.asset)), "check")
    assert result.status == 0, result.output
    assert SEED_ADDRESS_T in result.out and chain.asset in result.out
    assert "  node %s: network 'T' (testnet), height 1\n" % chain.url in result.out
    assert (
        "  token %s: IoT-Light, 2 decimals, issued by %s\n" % (chain.asset, chain.treasury.address("T"))
        in result.out
    )
    assert "  device holds 1 WAVES: fees for 1000 Data transaction(s) at 0.001 WAVES each\n" in result.out
    assert "problem" not in result.out and result.out.endswith("the node agrees: all good\n")
    assert "Traceback" not in result.output


def test_check_without_a_node(cli):
    """No node answers: check says so and exits 1."""
    cli.seed_file()
    result = cli.run("-c", str(cli.config()), "check")
    assert result.status == 1, result.output
    assert "problem: no node answered (%s): " % OFFLINE_NODE in result.out
    assert "check node.urls" in result.out and "Traceback" not in result.output


def test_check_finds_a_wrong_network(cli, chain):
    """chain_id "W" against a testnet node: exit 1, the node's network named and the fix."""
    cli.seed_file()
    result = cli.run("-c", str(cli.config(chain="W", node=chain.url, asset=chain.asset)), "check")
    assert result.status == 1, result.output
    assert (
        "problem: the node %s runs network 'T' (testnet), not node.chain_id = 'W' (mainnet): "
        "set chain_id = \"T\" in [node], or point node.urls at a 'W' (mainnet) node (then run keygen for "
        "that network's address)\n" % chain.url
    ) in result.out
    assert result.out.endswith("check found 1 problem(s)\n")


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside-a-testnet-node"])
def test_check_names_a_node_of_another_network(cli, chain, beside):
    """node.urls holding a mainnet node on a testnet device: a `problem:` line names that node and its
    network (with the fix) and check exits 1, whether or not a node of the right network is listed too;
    the mainnet node is asked nothing but its last block's header."""
    from fakenode import FakeNode

    cli.seed_file()
    chain.fund(SEED_ADDRESS_T, waves=10**8)
    with FakeNode("W") as mainnet:
        urls = [mainnet.url, chain.url] if beside else [mainnet.url]
        result = cli.run("-c", str(cli.config(node=urls, asset=chain.asset)), "check")
        asked = {r.path for r in mainnet.requests}
    assert result.status == 1, result.output
    problems = [line for line in result.out.splitlines() if line.startswith("problem: ")]
    assert problems == [
        "problem: the node %s runs network 'W' (mainnet), not node.chain_id = 'T' (testnet): set chain_id = "
        "\"W\" in [node], or point node.urls at a 'T' (testnet) node (then run keygen for that network's "
        "address)" % mainnet.url
    ]
    assert result.out.endswith("check found 1 problem(s)\n")
    assert asked == {"/blocks/headers/last"}
    if beside:  # the testnet node answered the rest
        assert "  node %s: network 'T' (testnet), height 1\n" % chain.url in result.out
        assert "  device holds 1 WAVES: fees for 1000 Data transaction(s)" in result.out


def test_check_finds_a_token_that_does_not_exist(cli, chain):
    """A valid-looking asset id with a typo (32 bytes, never issued): exit 1, named with the fix."""
    cli.seed_file()
    chain.fund(SEED_ADDRESS_T, waves=10**8)
    typo = ASSET  # well-formed, never issued on the fake chain
    result = cli.run("-c", str(cli.config(node=chain.url, asset=typo)), "check")
    assert result.status == 1, result.output
    assert 'problem: payment.asset_id = "%s": no such token on the node\'s chain' % typo in result.out
    assert "copy the id from the output of issue" in result.out
    assert result.out.endswith("check found 1 problem(s)\n")


def test_check_finds_a_device_without_coins_for_fees(cli, chain):
    """An unfunded device: exit 1, how many WAVES it lacks and the pay --asset WAVES command that funds it."""
    cli.seed_file()
    result = cli.run("-c", str(cli.config(node=chain.url, asset=chain.asset)), "check")
    assert result.status == 1, result.output
    assert "  device holds 0 WAVES: fees for 0 Data transaction(s) at 0.001 WAVES each\n" in result.out
    assert (
        "problem: the device %s holds 0 WAVES, less than one Data transaction's fee (0.001 WAVES): presses "
        "and receipts cannot be written; send it coins: iotlight.py pay --seed-file FUNDED.seed --asset WAVES "
        "%s 1\n" % (SEED_ADDRESS_T, SEED_ADDRESS_T)
    ) in result.out


def test_check_finds_a_clock_that_is_off(cli):
    """A node whose clock is 3 hours ahead of this machine's: exit 1, the skew and how to set the clock."""
    import time

    from harness import start_chain

    chain = start_chain("T", now_ms=lambda: int((time.time() + 3 * 3600) * 1000))
    try:
        cli.seed_file()
        chain.fund(SEED_ADDRESS_T, waves=10**8)
        result = cli.run("-c", str(cli.config(node=chain.url, asset=chain.asset)), "check")
    finally:
        chain.stop()
    assert result.status == 1, result.output
    assert re.search(
        r"problem: this machine's clock is 10[78]\d\d s behind the node's: set it \(sudo timedatectl "
        r"set-ntp true",
        result.out,
    ), result.out
    assert result.out.endswith("check found 1 problem(s)\n")


@pytest.mark.parametrize("fee, status", [(99_999, 1), (1, 1), (100_000, 0), (700_000, 0)])
def test_check_names_a_data_fee_below_the_minimum(cli, fee, status):
    """data.fee below the node's minimum for the smallest Data transaction: check names it, with the fix
    (the daemon sends the minimum instead), and exits 1; a fee at or above it passes."""
    cli.seed_file()
    result = cli.run("-c", str(cli.config("[data]\nfee = %d\n" % fee)), "check", "--offline")
    assert result.status == status, result.output
    assert "Traceback" not in result.output
    named = [line for line in result.out.splitlines() if line.startswith("problem: data.fee = %d " % fee)]
    if status:
        assert len(named) == 1 and "minimum fee of 100000" in named[0] and "data.fee = 0" in named[0]
    else:
        assert named == [] and "data fee: %d" % fee in result.out


def test_check_without_seed_file(cli):
    """check before keygen: exit 2, one line saying how to create the seed."""
    path = cli.config()
    assert_one_line_error(
        cli.run("-c", str(path), "check"),
        "%s: no seed file; create one with: iotlight.py keygen" % (cli.tmp / "device.seed"),
    )


@pytest.mark.parametrize("text", ["", "\n", "   \n"], ids=["empty", "newline", "blank"])
def test_empty_seed_file(cli, text):
    """An empty (or blank) seed file is refused, not turned into a key."""
    path = cli.seed_file("", text=text)
    cli.fixed_seeds.discard("")
    assert_one_line_error(cli.run("-c", str(cli.config()), "address"), "%s: the seed file is empty" % path)


def test_seed_file_is_a_folder(cli):
    """A folder where the seed file should be: exit 2, one line."""
    (cli.tmp / "device.seed").mkdir(mode=0o700)
    assert_one_line_error(
        cli.run("-c", str(cli.config()), "check"),
        "%s: the seed file is not a regular file" % (cli.tmp / "device.seed"),
    )


def test_check_offline_asks_no_node(cli, chain):
    """check --offline validates the configuration and the seed only: exit 0, and the node listed (one that
    would answer) gets no request."""
    cli.seed_file()
    result = cli.run("-c", str(cli.config(node=chain.url, asset=chain.asset)), "check", "--offline")
    assert result.status == 0, result.output
    assert SEED_ADDRESS_T in result.out and result.out.endswith("the node was not asked (--offline)\n")
    assert result.err == ""
    assert chain.requests == []


# --- seed file permissions --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o704], ids="mode{:03o}".format)
@pytest.mark.parametrize("command", ["address", "check", "run", "keygen"])
def test_open_seed_file_is_refused(cli, command, mode):
    """Every command refuses a seed file readable by group or others, saying `chmod 600 PATH`."""
    seed_path = cli.seed_file(mode=mode)
    before = seed_path.read_bytes()
    result = cli.run("-c", str(cli.config()), command)
    assert_one_line_error(
        result,
        "%s: the seed file is readable by group or others (mode %03o); "
        "fix it with: chmod 600 %s" % (seed_path, mode, seed_path),
    )
    assert seed_path.read_bytes() == before and _mode(seed_path) == mode
    assert not (cli.tmp / "iotlight.db").exists(), "no state may be created before the seed is accepted"


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids="mode{:03o}".format)
def test_private_seed_file_modes_are_accepted(cli, mode):
    """Owner-only modes are fine."""
    cli.seed_file(mode=mode)
    result = cli.run("-c", str(cli.config()), "address")
    assert result.status == 0, result.err
    assert result.out.startswith("address: %s\n" % SEED_ADDRESS_T)


def test_chmod_600_fixes_it(cli):
    """Following the message's advice makes the command work."""
    seed_path = cli.seed_file(mode=0o644)
    assert cli.run("-c", str(cli.config()), "address").status == 2
    seed_path.chmod(0o600)
    result = cli.run("-c", str(cli.config()), "address")
    assert result.status == 0 and SEED_ADDRESS_T in result.out


# --- device.address ------------------------------------------------------------------------------------

DOCS_ADDRESS_T = "3NBaYzWT2odsyrZ2u1ghsrHinBm4xFRAgLX"


@pytest.mark.parametrize("command", ["address", "check", "run"])
def test_device_address_mismatch(cli, command):
    """A seed that does not give device.address (wrong seed file or network) stops every command with exit 2."""
    seed_path = cli.seed_file()
    path = cli.config('[device]\naddress = "%s"\n' % DOCS_ADDRESS_T)
    result = cli.run("-c", str(path), command)
    assert_one_line_error(
        result,
        "%s: device.address: the seed file %s gives %s on chain 'T', not %s "
        "(wrong seed file or wrong network?)" % (path.resolve(), seed_path, SEED_ADDRESS_T, DOCS_ADDRESS_T),
    )
    assert not (cli.tmp / "iotlight.db").exists()


def test_device_address_match(cli, chain):
    """A matching device.address passes check."""
    cli.seed_file()
    chain.fund(SEED_ADDRESS_T, waves=10**8)
    path = cli.config('[device]\naddress = "%s"\n' % SEED_ADDRESS_T, node=chain.url, asset=chain.asset)
    result = cli.run("-c", str(path), "check")
    assert result.status == 0, result.output


# --- version, usage, verbose -------------------------------------------------------------------------------


def test_version(cli):
    """--version prints `iotlight VERSION` and exits 0, with no configuration anywhere."""
    result = cli.run("--version")
    assert (result.status, result.out, result.err) == (0, "iotlight %s\n" % iotlight.__version__, "")
    assert re.fullmatch(r"\d+\.\d+\.\d+", iotlight.__version__)


@pytest.mark.parametrize("args", [("bogus",), ("--frobnicate", "check"), ("-c",)])
def test_usage_errors(cli, args):
    """An unknown command or option: exit 2, one line starting `iotlight: usage:`."""
    result = cli.run(*args)
    assert result.status == 2 and result.out == "" and "Traceback" not in result.err
    assert result.err.startswith("iotlight: usage: ") and result.err.count("\n") == 1


def test_help(cli):
    """--help lists the commands and exits 0."""
    result = cli.run("--help")
    assert result.status == 0 and result.err == ""
    for command in ("run", "keygen", "address", "check", "status", "issue", "pay", "monitor", "gpio-off"):
        assert re.search(r"^\s+%s\s" % command, result.out, re.MULTILINE), command


def test_verbose_does_not_leak_the_seed(cli, chain):
    """-v (debug logging) on address and check still never prints the seed."""
    cli.seed_file()
    chain.fund(SEED_ADDRESS_T, waves=10**8)
    path = cli.config(node=chain.url, asset=chain.asset)
    for command in ("address", "check"):
        result = cli.run("-v", "-c", str(path), command)
        assert result.status == 0, result.err


@pytest.mark.parametrize(
    "command, words",
    [
        ("run", "Run the daemon until SIGINT or SIGTERM"),
        ("keygen", "Write a new 15-word seed phrase"),
        ("address", "Print the device's address"),
        ("check", "ask the node what only the chain can tell"),
        ("status", "a warning line when the device cannot pay its fees"),
        ("issue", "Create a token with an Issue transaction"),
        ("pay", "with --asset WAVES, coins of the chain"),
        ("monitor", "Connect to the running daemon's monitor"),
        ("gpio-off", "Switch the light.gpio_pin output off"),
    ],
)
def test_every_command_help_says_what_it_does(cli, command, words):
    """`COMMAND --help` exits 0 with a description of what the command does, not only its usage line."""
    result = cli.run(command, "--help")
    assert result.status == 0 and result.err == ""
    assert words in " ".join(result.out.split()), result.out


# --- the real command: exit statuses and one-line errors end to end ---------------------------------------


@pytest.mark.process
def test_the_real_command_exits_0_1_and_2(cli):
    """`python iotlight.py ...` as a user runs it: --version and a good check exit 0; a check that finds a
    problem exits 1; a usage error, a missing seed and an open seed (for run, the daemon) exit 2 with
    exactly one `iotlight: ...` line on stderr and nothing on stdout; no traceback anywhere."""
    version = cli.run_process("--version")
    assert (version.status, version.out, version.err) == (0, "iotlight %s\n" % iotlight.__version__, "")
    usage = cli.run_process("bogus")
    assert (usage.status, usage.out) == (2, "") and re.fullmatch(r"iotlight: usage: [^\n]+\n", usage.err)
    path = cli.config()
    assert_one_line_error(
        cli.run_process("-c", str(path), "address"),
        "%s: no seed file; create one with: iotlight.py keygen" % (cli.tmp / "device.seed"),
    )
    seed_path = cli.seed_file()
    offline = cli.run_process("-c", str(path), "check", "--offline")
    assert (offline.status, offline.err) == (0, ""), offline.output
    assert offline.out.endswith("the node was not asked (--offline)\n")
    no_node = cli.run_process("-c", str(path), "check")
    assert no_node.status == 1 and "Traceback" not in no_node.output, no_node.output
    assert no_node.out.endswith("check found 1 problem(s)\n")
    seed_path.chmod(0o644)
    assert_one_line_error(
        cli.run_process("-c", str(path), "run"),
        "%s: the seed file is readable by group or others (mode 644); fix it with: chmod 600 %s"
        % (seed_path, seed_path),
    )
    assert not (cli.tmp / "iotlight.db").exists()


@pytest.mark.process
def test_the_real_keygen_writes_once_then_exits_2(cli):
    """`python iotlight.py keygen` writes a 0600 seed and exits 0; again, it prints that seed's address,
    one error line, and exits 2."""
    path = cli.config(asset=False)
    first = cli.run_process("-c", str(path), "keygen")
    assert (first.status, first.err) == (0, ""), first.output
    seed_path = cli.tmp / "device.seed"
    seed = seed_path.read_text(encoding="utf-8").rstrip("\n")
    cli.seeds.add(seed)
    assert _mode(seed_path) == 0o600
    address = iotlight.keypair_from_seed(seed).address("T")
    again = cli.run_process("-c", str(path), "keygen")
    assert (again.status, again.out) == (2, "address: %s\n" % address)
    assert again.err == (
        "iotlight: %s: a seed file exists already; keygen never overwrites one (its address is above)\n"
        % seed_path
    )


# --- the node's refusals in plain words -----------------------------------------------------------------

NO_COINS = (
    "the sender has too few {coin} to pay for it (fees are paid in {coin}); send it some: "
    "iotlight.py pay --seed-file FUNDED.seed --asset {coin} ADDRESS 1"
)
CLOCK = "set this machine's clock (e.g. sudo timedatectl set-ntp true)"
NO_TOKEN = "the token does not exist on the node's chain; check the asset id and node.urls"
OTHER_NETWORK = "the node runs another network than node.chain_id; fix node.chain_id or node.urls"

# (a node's refusal text as Waves nodes word it, the kind, the plain line with {coin} for the chain's coin)
REFUSAL_TEXTS = [
    ("Transaction 5sRzv3 is already in the state", "known", "the node has this transaction already"),
    ("State check failed. Reason: Accounts balance errors", "no_coins", NO_COINS),
    (
        "State check failed. Reason: Attempt to transfer unavailable funds: Transaction application leads to "
        "negative waves balance to (at least) temporary negative state, current balance equals 0, spends "
        "equals -100000, result is -100000",
        "no_coins",
        NO_COINS,
    ),
    (
        "State check failed. Reason: Attempt to transfer unavailable funds: Transaction application leads to "
        "negative asset '5FKs' balance to (at least) temporary negative state, current balance is 0, spends "
        "equals -1, result is -1",
        "no_tokens",
        "the sender holds too few of the token for this transfer",
    ),
    ("Attempt to transfer unavailable funds", "no_coins", NO_COINS),
    ("negative effective balance", "no_coins", NO_COINS),
    ("Not enough balance", "no_coins", NO_COINS),
    ("Insufficient balance for the fee", "no_coins", NO_COINS),
    (
        "Transaction timestamp 1700000000000 is more than 5400000ms in the future relative to block timestamp 1",
        "timestamp",
        "the transaction's time is ahead of the node's clock; " + CLOCK,
    ),
    (
        "Transaction timestamp 1 is more than 7200000ms in the past relative to previous block timestamp 2",
        "timestamp",
        "the transaction's time is behind the node's clock; " + CLOCK,
    ),
    ("Invalid timestamp", "timestamp", "the node refused the transaction's time; " + CLOCK),
    ("Wrong chain-id. Expected - 84, provided - 87", "other_network", OTHER_NETWORK),
    ("invalid address", "other_network", OTHER_NETWORK),
    ("State check failed. Reason: Unissued assets are not allowed", "no_token", NO_TOKEN),
    ("Asset does not exist: 5FKs", "no_token", NO_TOKEN),
    ("Invalid asset id", "bad_asset", "that is not an asset id; check the asset id"),
    (
        "Fee for DataTransaction (100000 in WAVES) does not exceed minimal value of 200000 WAVES.",
        "fee",
        "the fee is below the node's minimum; set data.fee = 0 (automatic)",
    ),
    (
        "Alias 'alias:T:lamp-one' doesn't exist",
        "no_alias",
        "no such alias on the node's chain; check the recipient",
    ),
]


@pytest.mark.parametrize(
    "node_text, kind, plain",
    REFUSAL_TEXTS,
    ids=[kind + "-" + str(i) for i, (_, kind, _) in enumerate(REFUSAL_TEXTS)],
)
def test_refusal_of_gives_the_kind_and_the_plain_line(node_text, kind, plain):
    """The node's common refusals get their kind (what the daemon does about them) and one plain line with the
    fix; describe_refusal shows that line, with the chain's coin, and the node's own text only at debug level."""
    assert iotlight.refusal_of(node_text) == iotlight.Refusal(kind, plain)
    error = iotlight.NodeRejected(node_text, status=400, code=112)
    assert error.refusal == iotlight.refusal_of(node_text, status=400, code=112)
    assert iotlight.describe_refusal(error) == plain.format(coin="WAVES")


def test_describe_refusal_names_the_forks_coin(caplog):
    """On 0bs rules the coin for fees is ZBS; the node's text goes to the debug log."""
    caplog.set_level(logging.DEBUG, "iotlight.node")
    error = iotlight.NodeRejected("State check failed. Reason: Accounts balance errors", status=400)
    assert iotlight.describe_refusal(error, rules="0bs") == NO_COINS.format(coin="ZBS")
    assert iotlight.describe_refusal(error, rules="waves") == NO_COINS.format(coin="WAVES")
    said = [r.getMessage() for r in caplog.records if r.name == "iotlight.node"]
    assert said == ["the node said: State check failed. Reason: Accounts balance errors"] * 2


@pytest.mark.parametrize(
    "text, status, kind", [("Script too complex", 400, "refused"), ("Service Unavailable", 503, "error")]
)
def test_other_refusals_are_left_in_the_nodes_words(caplog, text, status, kind):
    """A refusal no row knows is "refused" (a 4xx) or "error" (a 5xx), shown as the node put it, with no
    debug line repeating it; a NodeError that is no refusal at all is shown as it is."""
    caplog.set_level(logging.DEBUG, "iotlight.node")
    assert iotlight.refusal_of(text, status=status) == iotlight.Refusal(kind, text)
    assert iotlight.describe_refusal(iotlight.NodeRejected(text, status=status)) == text
    outage = iotlight.NodeError("no node answered (http://a): timed out")
    assert iotlight.describe_refusal(outage) == "no node answered (http://a): timed out"
    assert caplog.records == []


def test_error_303_is_the_transactions_time_whatever_its_text():
    """Waves' error 303 is a timestamp refusal, worded or not."""
    assert iotlight.refusal_of("something else", code=303) == iotlight.Refusal(
        "timestamp", "the node refused the transaction's time; " + CLOCK
    )


def test_every_row_of_the_refusal_table_can_match():
    """The first matching row wins: no row is shadowed by an earlier one (its own words reach it), and
    every plain line is one line that shows without a left-over placeholder on both rule sets."""
    for words, kind, plain in iotlight.REFUSALS:
        assert iotlight.refusal_of(" ".join(words).upper()) == (kind, plain), words
        for rules in ("waves", "0bs"):
            shown = iotlight.describe_refusal(iotlight.NodeRejected(" ".join(words), status=400), rules=rules)
            assert (
                "{" not in shown
                and "\n" not in shown
                and shown == plain.format(coin=iotlight.coin_name(rules))
            )
    assert {kind for _, kind, _ in REFUSAL_TEXTS} == {kind for _, kind, _ in iotlight.REFUSALS}


@pytest.mark.parametrize(
    "units, text",
    [(100000, "0.001 WAVES"), (5 * 10**8, "5 WAVES"), (0, "0 WAVES"), (123456789, "1.23456789 WAVES")],
)
def test_format_coins(units, text):
    """Coins with their name, trailing zeros dropped."""
    assert iotlight.format_coins(units, "waves") == text
    assert iotlight.format_coins(units, "0bs") == text.replace("WAVES", "ZBS")
