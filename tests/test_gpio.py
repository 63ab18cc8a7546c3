"""light.gpio_pin: a GPIO output switched with the light, on gpiozero's mock pins (in-process and the
real daemon with GPIOZERO_PIN_FACTORY=mock)."""

import asyncio
import os
import re
import signal
import threading
import time

import pytest

gpiozero = pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory  # noqa: E402
from harness import wait_until  # noqa: E402

import iotlight  # noqa: E402

ASSET = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"
NOW = 1_795_000_000.0


class FakeClock:
    def __init__(self):
        self.wall, self.mono = NOW, 1000.0

    def time(self):
        return self.wall

    def monotonic(self):
        return self.mono

    def advance(self, seconds):
        self.wall += seconds
        self.mono += seconds


class Screen:
    """Stands in for the HardwareRunner: remembers whether the last frame was the lit matrix."""

    def __init__(self):
        self.lit = None

    async def show(self, pixels):
        self.lit = sum(1 for p in pixels if p != (0, 0, 0)) >= 56
        return True


def config(tmp_path, **light):
    return iotlight.parse_config(
        {"payment": {"asset_id": ASSET}, "light": dict({"gpio_pin": 17}, **light)}, str(tmp_path / "c.toml")
    )


@pytest.mark.parametrize("active_high, on_level", [(True, True), (False, False)])
def test_switch_drives_the_pin_level_for_active_high_and_active_low_boards(active_high, on_level):
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


def test_the_pin_follows_the_light_on_a_fake_clock(tmp_path):
    """On at credit, off at the paid end, on again after a restart inside a paid span (the
    stored span resumed), off at a clean stop; the matrix and the pin agree at every step."""
    clock = FakeClock()
    store = iotlight.Store(str(tmp_path / "s.db"))
    factory = MockFactory()
    pin = factory.pin(17)
    cfg = config(tmp_path, gpio_active_high=False)
    events = []

    async def run_lamp(steps):
        gpio = iotlight.GpioSwitch(17, active_high=False, pin_factory=factory)
        screen = Screen()
        lamp = iotlight.Lamp(
            cfg, screen, clock, store=store, publish=events.append, status=lambda: "ok", gpio=gpio
        )
        lamp.load(*store.light())
        stop = asyncio.Event()
        task = asyncio.ensure_future(lamp.run(stop))
        seen = []
        for step in steps:
            step(lamp)
            lamp.wake.set()
            for _ in range(20):
                await asyncio.sleep(0)
            seen.append((screen.lit, pin.state))
        stop.set()
        await task
        lamp.switch_gpio(False)  # what Daemon.run does at a clean stop
        gpio.close()
        return seen

    def pay(seconds):
        def step(lamp):
            start, until = lamp.span()
            store.credit_payments(
                [("P%043d" % len(events), "3Msender", 100, 1, seconds)],
                now=clock.time(),
                max_seconds=3600,
                light=(start, until),
            )
            lamp.credited(store.light()[1])

        return step

    def wait(seconds):
        return lambda lamp: clock.advance(seconds)

    # low level = relay on (active-low board)
    seen = asyncio.run(run_lamp([wait(0), pay(10.0), wait(5.0), wait(5.1), pay(30.0), wait(3.0)]))
    assert seen == [(False, True), (True, False), (True, False), (False, True), (True, False), (True, False)]
    assert pin.state is True  # clean stop: off (high on an active-low board)
    seen = asyncio.run(run_lamp([wait(0), wait(26.0), wait(1.1)]))  # restarted with 27 s left
    assert seen == [(True, False), (True, False), (False, True)]
    # run 1: off at start, on, off at the end, on, off at the stop; run 2: on at start, off, off at the stop
    assert [e["on"] for e in events if e["type"] == "gpio"] == [
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        False,
    ]
    store.close()


# --- end to end: the daemon with gpiozero's mock pins ------------------------

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
            time.sleep(0.01)


@pytest.mark.timeout(240)
def test_the_daemons_pin_timeline_matches_the_matrix(chain, device, hat):
    """Payment, paid end, a SIGKILL inside a paid span and the restart, a clean stop: every
    change of the mock pin comes within one poll interval of the matrix's."""
    poll = 0.5
    device.configure(
        hardware__backend="sense-emu",
        light__gpio_pin=17,
        light__gpio_active_high=False,
        node__poll_interval=poll,
    )
    env = {"GPIOZERO_PIN_FACTORY": "mock"}
    device.start(env=env)
    timeline = Timeline(device, hat)
    timeline.start()
    try:
        wait_until(
            lambda: timeline.pin and timeline.pin[-1][1] == ("off", "high"), 15, what="the pin off at start"
        )
        chain.transfer(chain.treasury, device.address, 200, asset_id=chain.asset)
        wait_until(lambda: timeline.pin[-1][1] == ("on", "low"), 15, what="the pin on at credit")
        wait_until(lambda: timeline.pin[-1][1] == ("off", "high"), 15, what="the pin off at the paid end")
        chain.transfer(chain.treasury, device.address, 1000, asset_id=chain.asset)
        wait_until(lambda: timeline.pin[-1][1] == ("on", "low"), 15, what="the pin on again")
        device.kill(signal.SIGKILL)
        device.start(env=env)  # restart inside the paid span
        wait_until(
            lambda: (
                "resuming the light" in device.output()
                and timeline.pin[-1][1] == ("on", "low")
                and timeline.matrix[-1][1]
            ),
            20,
            what="the pin on after the restart",
        )
        time.sleep(0.5)
        device.stop()  # clean stop inside the span: off
        wait_until(
            lambda: timeline.pin[-1][1] == ("off", "high") and not timeline.matrix[-1][1],
            15,
            what="the pin off at the clean stop",
        )
        time.sleep(0.3)
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


@pytest.mark.timeout(120)
def test_the_pin_works_with_no_display(chain, device):
    """hardware.backend = "none": the pin alone is the lamp; on with the light, off at its end,
    and the monitor's snapshot names the pin."""
    device.configure(light__gpio_pin=5, light__gpio_active_high=True)
    device.start(env={"GPIOZERO_PIN_FACTORY": "mock"})
    wait_until(lambda: "gpio pin 5 off (level low)" in device.output(), 15, what="the pin off at start")
    chain.transfer(chain.treasury, device.address, 150, asset_id=chain.asset)
    wait_until(
        lambda: "gpio pin 5 on (level high)" in device.output() and "light on" in device.output(),
        15,
        what="the pin on with the light",
    )
    wait_until(
        lambda: device.output().count("gpio pin 5 off (level low)") == 2, 15, what="the pin off at the end"
    )
    assert device.stop() == 0
    assert device.output().count("gpio pin 5 off (level low)") == 3


def test_run_without_gpiozero_stops_with_one_line(chain, device, tmp_path):
    """A pin set but no gpiozero: exit 1 with one line naming the package, no traceback."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "gpiozero.py").write_text("raise ImportError('no gpiozero here')\n")
    device.configure(light__gpio_pin=5)
    import os

    device.start(ready=False, env={"PYTHONPATH": str(shadow) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert device.proc.wait(30) == 1
    out = device.output()
    assert "python3-gpiozero" in out and "Traceback" not in out
