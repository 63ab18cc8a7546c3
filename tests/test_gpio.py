"""light.gpio_pin: a GPIO output switched with the light, on gpiozero's mock pins: the switch, the
lamp and the whole daemon in-process on the virtual clock (tests/scenario.py); the real daemon
(marked process, GPIOZERO_PIN_FACTORY=mock) beside the emulator's matrix through a SIGKILL and
`gpio-off` after it, and its exit status without gpiozero."""

import functools
import logging
import os
import re
import signal
import threading
import time

import pytest

gpiozero = pytest.importorskip("gpiozero")
from clirun import run_cli  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402
from harness import wait_until  # noqa: E402
from scenario import Scenario  # noqa: E402

import iotlight  # noqa: E402

ASSET = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"


@pytest.fixture(autouse=True)
def quiet_httpx(caplog):
    logging.getLogger("httpx").setLevel(logging.WARNING)
    caplog.set_level(logging.INFO, logger="iotlight")


def config(tmp_path, **light):
    return iotlight.parse_config(
        {"payment": {"asset_id": ASSET}, "light": dict({"gpio_pin": 17}, **light)}, str(tmp_path / "c.toml")
    )


@pytest.mark.parametrize("active_high, on_level", [(True, True), (False, False)])
def test_switch_drives_the_pin_level_for_active_high_and_active_low_boards(active_high, on_level):
    """GpioSwitch starts off, drives the pin's level for on and off (inverted on an active-low
    board), reads the level back, and a close leaves it off and released."""
    factory = MockFactory()
    switch = iotlight.GpioSwitch(17, active_high=active_high, pin_factory=factory)
    pin = factory.pin(17)
    assert pin.state == (not on_level)  # starts off
    assert switch.switch(True) == on_level and pin.state == on_level
    assert switch.switch(False) == (not on_level) and pin.state == (not on_level)
    switch.switch(True)
    switch.close()  # a clean stop: off, then released
    assert pin.state == (not on_level)
    assert pin.function == "input"


def test_missing_gpiozero_is_one_line_naming_the_package(monkeypatch):
    """A pin set without gpiozero installed is one IotlightError naming python3-gpiozero."""
    import builtins

    real = builtins.__import__

    def no_gpiozero(name, *args, **kwargs):
        if name.startswith("gpiozero"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gpiozero)
    with pytest.raises(iotlight.IotlightError, match="python3-gpiozero"):
        iotlight.GpioSwitch(17, active_high=True)


def test_check_says_when_gpiozero_is_missing(tmp_path, monkeypatch, capsys):
    """`check` passes with no pin or with gpiozero, names the BCM pin, and fails (1) with the apt
    command when a pin is set but gpiozero is missing."""
    assert iotlight.check_gpio(config(tmp_path, gpio_pin=-1)) == 0
    assert iotlight.check_gpio(config(tmp_path)) == 0
    assert "BCM pin 17" in capsys.readouterr().out
    monkeypatch.setattr(iotlight, "_module_installed", lambda name: name != "gpiozero")
    assert iotlight.check_gpio(config(tmp_path)) == 1
    assert "apt install python3-gpiozero" in capsys.readouterr().out


@pytest.mark.parametrize("active_high, off_level", [(True, False), (False, True)])
def test_gpio_off_switches_off_a_pin_a_dead_daemon_left_on(
    tmp_path, monkeypatch, capsys, active_high, off_level
):
    """`gpio-off`, the unit's ExecStopPost: a pin a killed daemon left driven "on" is switched off
    and released, for both kinds of board; refused (exit 2, the pin untouched) while a daemon holds
    the state file's lock; a no-op with light.gpio_pin = -1."""
    factory = MockFactory()
    monkeypatch.setattr(gpiozero.Device, "pin_factory", factory)
    state = tmp_path / "state" / "iotlight.db"
    state.parent.mkdir()
    conf = tmp_path / "iotlight.toml"
    conf.write_text(
        '[device]\nstate_file = "%s"\n[light]\ngpio_pin = 17\ngpio_active_high = %s\n'
        % (state, "true" if active_high else "false")
    )
    pin = factory.pin(17)
    pin.function = "output"
    pin.state = not off_level  # what the dead daemon left: on

    def gpio_off():  # main() minus its logging set-up (which would outlive this test)
        return iotlight.cmd_gpio_off(iotlight.load_config(str(conf), require_asset=False), None)

    running = iotlight.lock_state_file(str(state))  # a daemon runs on this state file
    try:
        with pytest.raises(iotlight.ConfigError, match="already running on this state file") as refused:
            gpio_off()
    finally:
        os.close(running)
    assert refused.value.exit_status == 2
    assert pin.state == (not off_level) and pin.function == "output", "a running daemon's pin is its own"

    lock_file = tmp_path / "state" / "iotlight.db.lock"
    lock_file.write_text("4242      \n")  # the pid of the daemon that died
    assert gpio_off() == 0
    assert pin.state == off_level and pin.function == "input"  # off, then released
    assert lock_file.read_text() == "4242      \n", "gpio-off holds the lock without claiming it"
    assert (
        "gpio pin 17 off (level %s), released" % ("high" if off_level else "low") in capsys.readouterr().out
    )

    conf.write_text('[device]\nstate_file = "%s"\n[light]\ngpio_pin = -1\n' % state)
    assert gpio_off() == 0
    assert "no pin to switch off" in capsys.readouterr().out


# --- the whole daemon in-process, on the virtual clock ------------------------------


class GpioScenario(Scenario):
    """A Scenario whose daemon drives light.gpio_pin on gpiozero's mock pins (`factory`): a new
    GpioSwitch at each start, as each daemon process opens its own (run_daemon: open_gpio). (A
    candidate for tests/scenario.py: Scenario(gpio=...).)"""

    def __init__(self, folder, factory, **settings):
        super().__init__(folder, **settings)
        self.factory = factory

    def start(self):
        c = self.config
        switch = iotlight.GpioSwitch(c.gpio_pin, active_high=c.gpio_active_high, pin_factory=self.factory)
        daemon = iotlight.Daemon
        iotlight.Daemon = functools.partial(daemon, gpio=switch)
        try:
            return super().start()
        finally:
            iotlight.Daemon = daemon


class Screenless:
    """hardware.backend = "none" as the Daemon sees it: no matrix, no sensors, no joystick."""

    name = "none"

    async def show(self, pixels):
        return False

    async def read_environment(self):
        return {"temperature_c": None, "humidity_pct": None, "pressure_hpa": None}

    def start_joystick(self, callback):
        return False

    async def close(self):
        pass


def wait_contact(s):
    """Until the daemon has reached the node once."""
    s.run_until(lambda: s.store.get_meta("horizon"), 300, "the daemon's first contact with the node")


def lit_frame(frame) -> bool:
    return sum(p != (0, 0, 0) for p in frame) >= 56


def changes(marks):
    """(time, state) marks reduced to the changes of state."""
    out = []
    for t, state in marks:
        if not out or out[-1][1] != state:
            out.append((t, state))
    return out


def test_the_pin_follows_the_light_in_the_daemon(tmp_path):
    """On at credit, off at the paid end, on again after a restart inside a paid span (the
    stored span resumed), off at a clean stop; the matrix and the pin agree at every step, each
    change of the pin at the very moment of the matrix's."""
    factory = MockFactory()
    pin = factory.pin(17)
    settings = dict(light__gpio_pin=17, light__gpio_active_high=False, node__poll_interval=1.0)
    with GpioScenario(tmp_path, factory, **settings) as s:

        def agree(on):  # low level = relay on (active-low board)
            matrix = bool(s.hw.frames) and lit_frame(s.hw.frames[-1][1])
            assert (s.lit(), matrix, pin.state) == (on, on, not on), s.clock.monotonic()

        def gpio():
            return [(t, f["on"]) for t, kind, f in s.told if kind == "gpio"]

        wait_contact(s)
        agree(False)
        s.pay(10)
        s.run_until(s.lit, 60, "the light")
        agree(True)
        on_at = gpio()[-1][0]
        s.run_for(5)
        agree(True)
        s.run_for(4.5)
        agree(True)
        s.run_until(lambda: not s.lit(), 60, "the paid end", step=0.01)
        agree(False)
        assert s.clock.monotonic() - on_at == pytest.approx(10, abs=0.02)
        s.pay(30)
        s.run_until(s.lit, 60, "the light again")
        agree(True)
        end = s.clock.monotonic() + s.daemon.lamp.state()["remaining"]
        s.run_for(3)
        agree(True)
        first = s.hw
        assert s.stop() == 0
        assert pin.state is True and pin.function == "input", "clean stop: off (high), released"
        s.restart()  # with 27 s left
        s.run_until(lambda: s.hw.frames, 1, "the first frame")
        agree(True)
        s.run_for(end - s.clock.monotonic() - 1)
        agree(True)
        s.run_until(lambda: not s.lit(), 5, "the paid end after the restart", step=0.01)
        agree(False)
        assert s.clock.monotonic() == pytest.approx(end, abs=0.02)
        second = s.hw
        assert s.stop() == 0
        assert pin.state is True and pin.function == "input"
        changed = gpio()
        # run 1: off at start, on, off at the end, on, off at the stop; run 2: on at start, off, off at the stop
        assert [on for _, on in changed] == [False, True, False, True, False, True, False, False]
        # the matrix is blanked by the hardware's close at a stop: the pin's other changes are its own
        running = changes(changed[:4] + changed[5:7])
        assert running == changes([(t, lit_frame(f)) for hw in (first, second) for t, f in hw.frames])


def test_the_pin_works_with_no_display(tmp_path, caplog):
    """hardware.backend = "none": the pin alone is the lamp; on with the light, off at its end
    and at the stop, and the monitor's snapshot names the pin."""
    factory = MockFactory()
    pin = factory.pin(5)
    s = GpioScenario(tmp_path, factory, light__gpio_pin=5, light__gpio_active_high=True)
    s.hw = Screenless()
    with s:
        wait_contact(s)
        assert "gpio pin 5 off (level low)" in caplog.text and pin.state is False
        s.pay(1.5)
        s.run_until(lambda: "gpio pin 5 on (level high)" in caplog.text, 300, "the pin on with the light")
        assert "light on" in caplog.text and pin.state is True
        assert s.daemon.snapshot()["gpio"] == {"pin": 5, "active_high": True}
        s.run_until(
            lambda: caplog.text.count("gpio pin 5 off (level low)") == 2, 60, "the pin off at the end"
        )
        assert pin.state is False and not s.lit()
        assert s.stop() == 0
        assert caplog.text.count("gpio pin 5 off (level low)") == 3
        assert pin.function == "input"


# --- end to end: the real daemon with gpiozero's mock pins ----------------------------

GPIO_LINE = re.compile(r"gpio pin 17 (on|off) \(level (high|low)\)")


class Timeline(threading.Thread):
    """Samples, every 10 ms, whether the emulator's matrix is lit and the pin state the daemon
    last logged (read back from its mock pin); records the transitions of each."""

    def __init__(self, device, hat):
        super().__init__(daemon=True)
        self.device, self.hat = device, hat
        self.matrix, self.pin = [], []
        self.done = threading.Event()

    def run(self):
        last_m = last_p = None
        while not self.done.is_set():
            t = time.monotonic()
            lines = GPIO_LINE.findall(self.device.log_path.read_text(errors="replace"))
            p = lines[-1] if lines else None
            m = self.hat.lit_count() >= 56
            if m != last_m:
                self.matrix.append((t, m))
                last_m = m
            if p != last_p:
                self.pin.append((t, p))
                last_p = p
            self.done.wait(0.01)


@pytest.mark.process
@pytest.mark.timeout(240)
def test_the_daemons_pin_timeline_matches_the_matrix(chain, device, hat, monkeypatch):
    """Payment, paid end, a SIGKILL inside a paid span, `gpio-off` (the unit's ExecStopPost: exit 0
    after the crash, exit 2 and the pin left alone while a daemon runs) and the restart, a clean
    stop: every change of the mock pin comes within one poll interval of the matrix's."""
    poll = 0.5
    device.configure(
        hardware__backend="sense-emu",
        light__gpio_pin=17,
        light__gpio_active_high=False,
        node__poll_interval=poll,
    )
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")  # the daemon's and gpio-off's
    gpio_off = ("-c", str(device.config_path), "gpio-off")
    device.start()
    timeline = Timeline(device, hat)
    timeline.start()
    try:
        wait_until(
            lambda: timeline.pin and timeline.pin[-1][1] == ("off", "high"), 30, what="the pin off at start"
        )
        chain.transfer(chain.treasury, device.address, 200, asset_id=chain.asset)
        wait_until(lambda: timeline.pin[-1][1] == ("on", "low"), 30, what="the pin on at credit")
        wait_until(lambda: timeline.pin[-1][1] == ("off", "high"), 30, what="the pin off at the paid end")
        chain.transfer(chain.treasury, device.address, 1000, asset_id=chain.asset)
        wait_until(lambda: timeline.pin[-1][1] == ("on", "low"), 30, what="the pin on again")
        refused = run_cli(*gpio_off, cwd=device.folder)
        assert refused.status == 2 and "already running on this state file" in refused.err, refused
        assert "Traceback" not in refused.output and refused.out == ""
        assert device.alive() and timeline.pin[-1][1] == ("on", "low"), "a running daemon's pin is its own"
        device.kill(signal.SIGKILL)
        after_crash = run_cli(*gpio_off, cwd=device.folder)
        assert (after_crash.status, after_crash.out) == (0, "gpio pin 17 off (level high), released\n"), (
            after_crash
        )
        device.start()  # restart inside the paid span
        wait_until(
            lambda: (
                "resuming the light" in device.output()
                and timeline.pin[-1][1] == ("on", "low")
                and timeline.matrix[-1][1]
            ),
            30,
            what="the pin on after the restart",
        )
        device.stop()  # clean stop inside the span: off
        wait_until(
            lambda: timeline.pin[-1][1] == ("off", "high") and not timeline.matrix[-1][1],
            30,
            what="the pin off at the clean stop",
        )
    finally:
        timeline.done.set()
        timeline.join()
    # the SIGKILLed run logged nothing more; the restarted one logs its start state (on): the same
    # state twice in a row is one state, as on the matrix
    pin = [(t, s[0] == "on") for t, s in timeline.pin if s is not None]
    pin = [p for i, p in enumerate(pin) if i == 0 or p[1] != pin[i - 1][1]]
    matrix = [m for m in timeline.matrix if m[0] >= pin[0][0] - poll]
    assert [s for _, s in pin] == [s for _, s in matrix], (pin, matrix)
    gaps = [abs(tp - tm) for (tp, _), (tm, _) in zip(pin, matrix)]
    print("pin vs matrix transition gaps (s):", ["%.3f" % g for g in gaps])
    assert max(gaps) <= poll, gaps


@pytest.mark.process
def test_run_without_gpiozero_stops_with_one_line(chain, device, tmp_path):
    """A pin set but no gpiozero: exit 1 with one line naming the package, no traceback."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "gpiozero.py").write_text("raise ImportError('no gpiozero here')\n")
    device.configure(light__gpio_pin=5)
    device.start(ready=False, env={"PYTHONPATH": str(shadow) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert device.proc.wait(60) == 1
    out = device.output()
    assert "python3-gpiozero" in out and "Traceback" not in out
