"""The hardware edge: render_matrix, backend choice, the emulator, the terminal, the runner; all
in-process (the emulator's client against EmulatedHat's files and socket, the terminal in a pty).

The sense_emu tests use fixed paths in /dev/shm (EmulatedHat): never run in parallel.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pty
import termios
import threading
import time

import pytest
from emulator import EmulatedHat, quantize
from harness import eventually

import iotlight

pytestmark = [
    pytest.mark.timeout(120),
    # sense_emu 1.2.1 loads its font with a Pillow API due to go in Pillow 14
    pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning"),
]

WHITE = (255, 255, 255)
ORANGE = (255, 128, 0)
BLACK = (0, 0, 0)
ENV_NONE = {"temperature_c": None, "humidity_pct": None, "pressure_hpa": None}


@pytest.fixture
def anyio_backend():
    return "asyncio"


# =============================================================================
# render_matrix
# =============================================================================


def test_lit_without_countdown_fills_the_matrix():
    """Lit without countdown: all 64 pixels in the colour."""
    assert (
        iotlight.render_matrix(on=True, fraction=0.3, color=ORANGE, countdown=False, status="ok")
        == [ORANGE] * 64
    )


def test_lit_countdown_half_lights_four_bar_pixels():
    """Half the time left: the first 4 bottom pixels full, the other 4 at 1/8."""
    pixels = iotlight.render_matrix(on=True, fraction=0.5, color=ORANGE, countdown=True, status="ok")
    assert pixels[:56] == [ORANGE] * 56
    assert pixels[56:] == [ORANGE] * 4 + [(32, 16, 0)] * 4


@pytest.mark.parametrize(
    "fraction, lit",
    [
        (1.0, 8),
        (0.875, 7),
        (0.5, 4),
        (0.3, 3),
        (0.125, 1),
        (0.01, 1),
        (0.0, 0),
        (1.5, 8),
        (-0.2, 0),
        (float("nan"), 0),
    ],
)
def test_countdown_bar_length_is_ceil_of_eight_times_fraction(fraction, lit):
    """The bar has ceil(8 * fraction) full pixels, fraction clamped to 0..1."""
    pixels = iotlight.render_matrix(on=True, fraction=fraction, color=WHITE, countdown=True, status="ok")
    assert pixels[56:] == [WHITE] * lit + [(32, 32, 32)] * (8 - lit)
    assert pixels[:56] == [WHITE] * 56


@pytest.mark.parametrize(
    "status, color",
    [
        ("ok", (0, 64, 0)),
        ("node_down", (64, 0, 0)),
        ("no_funds", (96, 48, 0)),
        ("starting", (0, 0, 64)),
    ],
)
def test_dark_matrix_shows_one_dim_status_pixel(status, color):
    """Dark: black except the bottom-right pixel in the status colour."""
    pixels = iotlight.render_matrix(on=False, fraction=0.5, color=ORANGE, countdown=True, status=status)
    assert pixels == [BLACK] * 63 + [color]


def test_render_matrix_rejects_unknown_status():
    """An unknown status is a ValueError naming it."""
    with pytest.raises(ValueError) as info:
        iotlight.render_matrix(on=False, fraction=0, color=WHITE, countdown=False, status="odd")
    assert str(info.value) == ("unknown lamp status 'odd': expected one of ok, node_down, no_funds, starting")


def test_render_matrix_rejects_bad_colour():
    """A colour channel out of 0..255 is a ValueError naming the colour."""
    with pytest.raises(ValueError) as info:
        iotlight.render_matrix(on=True, fraction=1, color=(0, 256, 0), countdown=False, status="ok")
    assert str(info.value) == "bad colour (0, 256, 0): expected [r, g, b] with each 0-255"


# =============================================================================
# Choosing a backend
# =============================================================================


class FakeHardware(iotlight.Hardware):
    """Stands in for an opened backend; records its name."""

    def __init__(self, name):
        self.name = name
        self.frames = []

    def set_pixels(self, pixels):
        self.frames.append(list(pixels))


@pytest.fixture
def probes(monkeypatch):
    """Pin what the auto probes see; backends open as FakeHardware."""
    state = {"modules": set(), "fb": False, "emulator": False, "fail": set(), "opened": []}
    monkeypatch.setattr(iotlight, "_module_installed", lambda name: name in state["modules"])
    monkeypatch.setattr(iotlight, "_sense_hat_framebuffer_present", lambda: state["fb"])
    monkeypatch.setattr(iotlight, "_emulator_running", lambda: state["emulator"])

    def open_backend(name):
        state["opened"].append(name)
        if name in state["fail"]:
            raise OSError("Cannot detect RPi-Sense FB device")
        if name == "none":
            return iotlight.NullHardware()
        return FakeHardware(name)

    monkeypatch.setattr(iotlight, "_open_backend", open_backend)
    monkeypatch.setattr(iotlight, "TerminalHardware", lambda: FakeHardware("terminal"))
    return state


def warnings_of(caplog):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "iotlight.hardware" and r.levelno == logging.WARNING
    ]


def test_auto_takes_the_real_hat_when_module_and_framebuffer_are_there(probes, caplog):
    """sense_hat importable and an "RPi-Sense FB" framebuffer: the real HAT, no warning."""
    probes["modules"] = {"sense_hat", "sense_emu"}
    probes["fb"] = True
    caplog.set_level(logging.INFO, "iotlight.hardware")
    hw = iotlight.open_hardware("auto", environ={"DISPLAY": ":0"}, stdout_isatty=True)
    assert hw.name == "sense-hat"
    assert warnings_of(caplog) == []


@pytest.fixture
def gui_path(tmp_path):
    """A PATH holding an executable sense_emu_gui, as the emulator's package installs it."""
    gui = tmp_path / "bin" / "sense_emu_gui"
    gui.parent.mkdir()
    gui.write_text("#!/bin/sh\nexit 0\n")
    gui.chmod(0o755)
    return str(gui.parent)


def test_auto_takes_the_emulator_with_a_desktop(probes, caplog, gui_path):
    """No sense_hat module, sense_emu and its GUI installed, DISPLAY set: the emulator, with the fix logged."""
    probes["modules"] = {"sense_emu", "gi"}
    caplog.set_level(logging.INFO, "iotlight.hardware")
    hw = iotlight.open_hardware("auto", environ={"DISPLAY": ":0", "PATH": gui_path}, stdout_isatty=True)
    assert hw.name == "sense-emu"
    assert warnings_of(caplog) == [
        "hardware: using sense-emu; not sense-hat: the python module sense_hat is not "
        "installed (install sense-hat: sudo apt install sense-hat)"
    ]


def test_auto_takes_the_emulator_under_wayland(probes, gui_path):
    """WAYLAND_DISPLAY counts as a desktop session too."""
    probes["modules"] = {"sense_emu", "gi"}
    hw = iotlight.open_hardware(
        "auto", environ={"WAYLAND_DISPLAY": "wayland-0", "PATH": gui_path}, stdout_isatty=False
    )
    assert hw.name == "sense-emu"


def test_auto_passes_the_emulator_whose_window_cannot_start(probes, caplog, tmp_path):
    """A desktop, but no sense_emu_gui or no PyGObject: the lamp would show nowhere, so the terminal."""
    probes["modules"] = {"sense_emu"}
    hw = iotlight.open_hardware("auto", environ={"DISPLAY": ":0", "PATH": str(tmp_path)}, stdout_isatty=True)
    assert hw.name == "terminal"
    assert "its window cannot be started here" in warnings_of(caplog)[0]


def test_terminal_log_lines_go_above_the_matrix():
    """A log line printed while the matrix is drawn lands above it; the matrix is drawn again below."""
    import io

    out = io.StringIO()
    term = iotlight.TerminalHardware(stdout=out, stdin=io.StringIO())
    term.set_pixels([(255, 0, 0)] * 64)
    frame = out.getvalue()
    out.truncate(0)
    out.seek(0)
    term.write_above("INFO iotlight: hello")
    text = out.getvalue()
    assert text.startswith("\x1b[8A\r\x1b[J" + "INFO iotlight: hello\n")
    assert text.endswith(frame)


def test_auto_takes_a_running_emulator_without_a_desktop(probes):
    """No display but a live emulator holds the lock: the emulator."""
    probes["modules"] = {"sense_emu"}
    probes["emulator"] = True
    hw = iotlight.open_hardware("auto", environ={}, stdout_isatty=False)
    assert hw.name == "sense-emu"


def test_auto_falls_back_to_the_terminal(probes, caplog):
    """A HAT library without its framebuffer, the emulator without a screen: the terminal."""
    probes["modules"] = {"sense_hat", "sense_emu"}
    hw = iotlight.open_hardware("auto", environ={}, stdout_isatty=True)
    assert hw.name == "terminal"
    assert probes["opened"] == []
    assert warnings_of(caplog) == [
        'hardware: using terminal; not sense-hat: no "RPi-Sense FB" framebuffer in '
        "/sys/class/graphics (is the HAT seated? check dtoverlay=rpi-sense in "
        "/boot/config.txt, then reboot); not sense-emu: no desktop session (DISPLAY and "
        "WAYLAND_DISPLAY unset) and no emulator running (start sense_emu_gui on a desktop)"
    ]


def test_auto_without_anything_is_none(probes, caplog):
    """Nothing installed and stdout not a terminal: none, every reason logged."""
    hw = iotlight.open_hardware("auto", environ={"DISPLAY": ":0"}, stdout_isatty=False)
    assert isinstance(hw, iotlight.NullHardware)
    [message] = warnings_of(caplog)
    assert message.startswith("hardware: using none; not sense-hat: the python module")
    assert (
        "not sense-emu: the python module sense_emu is not installed (install the "
        "emulator: sudo apt install python3-sense-emu sense-emu-tools)"
    ) in message
    assert message.endswith("not terminal: standard output is not a terminal")


def test_auto_passes_a_hat_that_fails_to_open(probes, caplog):
    """A probed HAT that raises on open is passed over with the reason."""
    probes["modules"] = {"sense_hat"}
    probes["fb"] = True
    probes["fail"] = {"sense-hat"}
    hw = iotlight.open_hardware("auto", environ={}, stdout_isatty=True)
    assert hw.name == "terminal"
    assert "not sense-hat: failed to open: Cannot detect RPi-Sense FB device" in warnings_of(caplog)[0]


def test_explicit_sense_hat_not_installed_is_one_line_error(probes):
    """An explicit sense-hat without its library raises IotlightError with the fix."""
    with pytest.raises(iotlight.IotlightError) as info:
        iotlight.open_hardware("sense-hat", environ={}, stdout_isatty=True)
    assert str(info.value) == (
        'hardware.backend = "sense-hat": the python module sense_hat '
        "is not installed: install sense-hat: sudo apt install sense-hat"
    )


def test_explicit_sense_hat_that_fails_to_open_is_one_line_error(probes):
    """A library error on open becomes one IotlightError line, no chained traceback."""
    probes["modules"] = {"sense_hat"}
    probes["fail"] = {"sense-hat"}
    with pytest.raises(iotlight.IotlightError) as info:
        iotlight.open_hardware("sense-hat", environ={}, stdout_isatty=True)
    assert str(info.value) == (
        'hardware.backend = "sense-hat": cannot open it: Cannot detect RPi-Sense FB device'
    )
    assert info.value.__suppress_context__


def test_explicit_sense_emu_without_a_screen_refuses_to_spawn_the_gui(probes):
    """sense-emu with no display and no running emulator raises instead of spawning a GUI."""
    probes["modules"] = {"sense_emu"}
    with pytest.raises(iotlight.IotlightError) as info:
        iotlight.open_hardware("sense-emu", environ={}, stdout_isatty=True)
    assert str(info.value) == (
        'hardware.backend = "sense-emu": no desktop session (DISPLAY and WAYLAND_DISPLAY '
        "unset) and no emulator running (start sense_emu_gui on a desktop), or set "
        'hardware.backend = "terminal"'
    )
    assert probes["opened"] == []


def test_explicit_choices_open_without_probing(probes):
    """terminal and none open as asked."""
    assert iotlight.open_hardware("terminal", environ={}, stdout_isatty=False).name == "terminal"
    assert iotlight.open_hardware("none", environ={}, stdout_isatty=True).name == "none"


def test_unknown_backend_is_a_config_error():
    """A backend name outside the contract is a ConfigError listing the choices."""
    with pytest.raises(iotlight.ConfigError) as info:
        iotlight.open_hardware("lcd", environ={}, stdout_isatty=True)
    assert str(info.value) == (
        'hardware.backend = "lcd": expected one of "auto", "sense-hat", "sense-emu", "terminal", "none"'
    )


def test_framebuffer_probe_reads_the_framebuffer_names(tmp_path):
    """Only a framebuffer named "RPi-Sense FB" counts as the HAT."""
    for fb, name in (("fb0", "simple\n"), ("fb1", "RPi-Sense FB\n")):
        (tmp_path / fb).mkdir()
        (tmp_path / fb / "name").write_text(name)
    pattern = str(tmp_path / "fb*" / "name")
    assert iotlight._sense_hat_framebuffer_present(pattern)
    (tmp_path / "fb1" / "name").write_text("vc4drmfb\n")
    assert not iotlight._sense_hat_framebuffer_present(pattern)


# =============================================================================
# The emulator, for real (fixed /dev/shm paths: serial only)
# =============================================================================


def dead_pid() -> int:
    """A pid no process has: the kernel hands out pids below /proc/sys/kernel/pid_max."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return pid


@pytest.fixture
def hat():
    with EmulatedHat(temperature=21.5, humidity=40.25, pressure=1001.5) as h:
        yield h


def test_emulator_lock_probe_sees_a_live_emulator_and_ignores_a_dead_one(hat):
    """_emulator_running is true while EmulatedHat holds the lock, false for a dead pid."""
    from sense_emu.lock import lock_filename

    assert iotlight._emulator_running()
    hat.close()
    assert not iotlight._emulator_running()
    with open(lock_filename(), "w") as f:
        f.write("%d\n" % dead_pid())
    try:
        assert not iotlight._emulator_running()
    finally:
        os.unlink(lock_filename())


def test_auto_finds_a_running_emulator_without_a_display(hat, monkeypatch, caplog):
    """No sense_hat, no DISPLAY, an emulator running: auto opens the real sense_emu client."""
    real = iotlight._module_installed
    monkeypatch.setattr(iotlight, "_module_installed", lambda n: n != "sense_hat" and real(n))
    hw = iotlight.open_hardware("auto", environ={}, stdout_isatty=False)
    try:
        assert isinstance(hw, iotlight.SenseEmuHardware)
        assert warnings_of(caplog)[0].startswith("hardware: using sense-emu; not sense-hat:")
    finally:
        hw.close()


@pytest.fixture
def emu(hat):
    hw = iotlight.open_hardware("sense-emu", environ={}, stdout_isatty=False)
    yield hw
    hw.close()


@pytest.mark.anyio
async def test_show_draws_the_frame_on_the_emulator_screen(hat, emu):
    """A rendered frame lands on the emulator's screen file, pixel for pixel."""
    runner = iotlight.HardwareRunner(emu)
    frame = iotlight.render_matrix(on=True, fraction=0.5, color=ORANGE, countdown=True, status="ok")
    assert await runner.show(frame)
    assert hat.pixels() == [quantize(p) for p in frame]
    dark = iotlight.render_matrix(on=False, fraction=0, color=ORANGE, countdown=True, status="node_down")
    assert await runner.show(dark)
    assert hat.pixels() == [BLACK] * 63 + [quantize((64, 0, 0))]
    assert hat.lit_count() == 1
    await runner.close()


@pytest.mark.anyio
async def test_show_skips_a_frame_identical_to_the_last(hat, emu):
    """The same frame twice is drawn once; the screen is not rewritten."""
    runner = iotlight.HardwareRunner(emu)
    frame = [WHITE] * 64
    assert await runner.show(frame)
    with open(hat._screen_path, "r+b") as f:  # someone else scribbles on the screen
        f.write(b"\x00\x00" * 64)
    assert not await runner.show(list(frame))
    assert hat.lit_count() == 0
    await runner.close()


@pytest.mark.anyio
async def test_close_blanks_the_matrix_and_is_idempotent(hat, emu):
    """close() leaves the emulator screen black; a later show draws nothing."""
    runner = iotlight.HardwareRunner(emu)
    await runner.show([WHITE] * 64)
    assert hat.lit_count() == 64
    await runner.close()
    assert hat.lit_count() == 0
    await runner.close()
    assert not await runner.show([ORANGE] * 64)
    assert hat.lit_count() == 0


@pytest.mark.anyio
async def test_joystick_events_arrive_on_the_loop(hat, emu):
    """Pressed, released and held events reach the callback on the event loop thread."""
    runner = iotlight.HardwareRunner(emu)
    got = []
    loop_thread = threading.get_ident()
    assert runner.start_joystick(lambda e: got.append((e, threading.get_ident())))
    assert hat.wait_for_stick_client(20)
    t_pressed, t_released = hat.click("up")
    t_held = hat.press("middle", "held")
    await eventually(lambda: len(got) >= 3, "three presses")
    assert [e for e, _ in got] == [
        iotlight.JoystickEvent("up", "pressed", round(t_pressed * 1000)),
        iotlight.JoystickEvent("up", "released", round(t_released * 1000)),
        iotlight.JoystickEvent("middle", "held", round(t_held * 1000)),
    ]
    assert {tid for _, tid in got} == {loop_thread}
    await runner.close()


@pytest.mark.anyio
async def test_joystick_ts_comes_from_the_event(hat, emu):
    """ts_ms is the evdev timestamp of the event, not the time it was read."""
    runner = iotlight.HardwareRunner(emu)
    got = []
    runner.start_joystick(got.append)
    assert hat.wait_for_stick_client(20)
    hat.press("left", ts=1700000000.123)
    hat.press("right", ts=1700000001.5)
    await eventually(lambda: len(got) >= 2, "two presses")
    assert got == [
        iotlight.JoystickEvent("left", "pressed", 1700000000123),
        iotlight.JoystickEvent("right", "pressed", 1700000001500),
    ]
    await runner.close()


@pytest.mark.anyio
async def test_close_stops_the_joystick_thread(hat, emu):
    """After close() the joystick thread has ended and no event is delivered."""
    runner = iotlight.HardwareRunner(emu)
    got = []
    runner.start_joystick(got.append)
    thread = runner._stick_thread
    assert thread.is_alive()
    await runner.close()
    assert not thread.is_alive()
    hat.wait_for_stick_client(20)
    hat.click("down")
    await asyncio.sleep(0)
    assert got == []


@pytest.mark.anyio
async def test_environment_readings_come_from_the_emulated_sensors(hat, emu):
    """Temperature (humidity sensor), humidity and pressure as the emulator set them."""
    runner = iotlight.HardwareRunner(emu)
    expected = {"temperature_c": 21.5, "humidity_pct": 40.25, "pressure_hpa": 1001.5}
    last = {}

    async def readings_are(want):
        last.update(await runner.read_environment())
        return last == want

    await eventually(lambda: readings_are(expected), "the readings %r" % expected)
    hat.set_environment(-3.25, 80.5, 990.0)
    want = {"temperature_c": -3.25, "humidity_pct": 80.5, "pressure_hpa": 990.0}
    await eventually(lambda: readings_are(want), "the readings %r" % want)
    await runner.close()


@pytest.mark.anyio
async def test_an_invalid_reading_is_none(hat, emu):
    """A sensor that reports its value invalid gives None, the others still read."""
    runner = iotlight.HardwareRunner(emu)
    hat.set_environment(float("nan"), 55.0, 1010.0)
    want = {"temperature_c": None, "humidity_pct": 55.0, "pressure_hpa": 1010.0}
    got = {}

    async def reads_want():
        got.update(await runner.read_environment())
        return got == want

    await eventually(reads_want, "the temperature None, the others read")
    await runner.close()


def test_emulated_hat_cleans_up_and_survives_stale_files():
    """EmulatedHat removes what it made, and starts over stale files and a dead lock."""
    from sense_emu.lock import lock_filename
    from sense_emu.screen import screen_filename
    from sense_emu.stick import stick_address

    stick = stick_address()[2]
    with open(lock_filename(), "w") as f:
        f.write("%d\n" % dead_pid())
    with open(screen_filename(), "wb") as f:
        f.write(b"\xff" * 300)
    with open(stick, "w") as f:
        f.write("stale")
    with EmulatedHat() as h:
        assert h.pixels() == [BLACK] * 64
        assert os.path.getsize(screen_filename()) == 160
    for path in (lock_filename(), screen_filename(), stick):
        assert not os.path.exists(path)


# =============================================================================
# HardwareRunner with fakes
# =============================================================================


class BrokenHardware(iotlight.Hardware):
    """Every call fails the way a loose I2C cable does."""

    name = "broken"

    def __init__(self):
        self.calls = 0

    def set_pixels(self, pixels):
        self.calls += 1
        raise OSError("[Errno 121] Remote I/O error")

    def read_environment(self):
        raise OSError("[Errno 121] Remote I/O error")


@pytest.mark.anyio
async def test_hardware_faults_are_logged_once_and_do_not_raise(caplog):
    """Failing frames and readings are logged once per kind, never raised."""
    hw = BrokenHardware()
    runner = iotlight.HardwareRunner(hw)
    for i in range(5):
        assert not await runner.show([(i, 0, 0)] * 64)
        assert await runner.read_environment() == ENV_NONE
    await runner.close()
    assert hw.calls == 6  # five frames and the blanking on close
    assert warnings_of(caplog) == [
        "broken: show failed: [Errno 121] Remote I/O error (logged once)",
        "broken: read_environment failed: [Errno 121] Remote I/O error (logged once)",
        "broken: clear failed: [Errno 121] Remote I/O error (logged once)",
    ]


@pytest.mark.anyio
async def test_runner_calls_hardware_from_one_worker_thread():
    """Every blocking call runs on the same thread, never the loop's."""
    seen = set()

    class Recording(FakeHardware):
        def set_pixels(self, pixels):
            seen.add(threading.get_ident())
            super().set_pixels(pixels)

        def read_environment(self):
            seen.add(threading.get_ident())
            return dict(ENV_NONE)

    hw = Recording("recording")
    runner = iotlight.HardwareRunner(hw)
    await asyncio.gather(*(runner.show([(i, i, i)] * 64) for i in range(10)), runner.read_environment())
    await runner.close()
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert hw.frames[-1] == [BLACK] * 64


@pytest.mark.anyio
async def test_no_joystick_means_no_thread():
    """NullHardware has no joystick: start_joystick says so and starts nothing."""
    runner = iotlight.HardwareRunner(iotlight.NullHardware())
    assert not runner.start_joystick(lambda e: None)
    assert runner._stick_thread is None
    await runner.close()


# =============================================================================
# TerminalHardware
# =============================================================================


def test_terminal_draws_truecolour_and_redraws_in_place():
    """Each frame is 8 lines of 2-character truecolour cells; later frames move up first."""
    out = io.StringIO()
    hw = iotlight.TerminalHardware(stdout=out, stdin=io.StringIO())
    assert not hw.has_joystick
    frame = iotlight.render_matrix(on=False, fraction=0, color=WHITE, countdown=False, status="starting")
    hw.set_pixels(frame)
    first = out.getvalue()
    black_row = "\r" + "\x1b[48;2;0;0;0m  " * 8 + "\x1b[0m\x1b[K\n"
    last_row = "\r" + "\x1b[48;2;0;0;0m  " * 7 + "\x1b[48;2;0;0;64m  " + "\x1b[0m\x1b[K\n"
    assert first == black_row * 7 + last_row
    hw.set_pixels([ORANGE] * 64)
    second = out.getvalue()[len(first) :]
    assert second == "\x1b[8A" + ("\r" + "\x1b[48;2;255;128;0m  " * 8 + "\x1b[0m\x1b[K\n") * 8
    hw.close()
    assert out.getvalue().endswith("\x1b[0m")


def test_parse_keys_splits_arrows_enter_and_keeps_a_partial_sequence():
    """Arrow keys and Enter map to directions; other keys are ignored; a cut escape waits."""
    assert iotlight.parse_keys(b"\x1b[A\x1b[Bx\x1b[C\x1b[D\r\n") == (
        ["up", "down", "right", "left", "middle", "middle"],
        b"",
    )
    assert iotlight.parse_keys(b"\x1bOA\x1b[") == (["up"], b"\x1b[")
    assert iotlight.parse_keys(b"\x1b[" + b"B") == (["down"], b"")


@pytest.fixture
def tty():
    master, slave = pty.openpty()
    stdin = os.fdopen(slave, "rb", buffering=0)
    yield master, stdin
    stdin.close()
    os.close(master)


def test_terminal_keys_become_joystick_events_and_the_tty_is_restored(tty):
    """In a pty: cbreak while open, arrow keys and Enter become press+release, close restores."""
    master, stdin = tty
    before = termios.tcgetattr(stdin.fileno())
    hw = iotlight.TerminalHardware(stdout=io.StringIO(), stdin=stdin, clock=lambda: 1700000000.25)
    assert hw.has_joystick
    lflag = termios.tcgetattr(stdin.fileno())[3]
    assert not lflag & (termios.ICANON | termios.ECHO)
    assert lflag & termios.ISIG  # Ctrl-C still stops the daemon
    assert hw.read_joystick(0.01) == []
    os.write(master, b"\x1b[A\r")
    events = []
    deadline = time.monotonic() + 20
    while len(events) < 4 and time.monotonic() < deadline:
        events += hw.read_joystick(0.5)
    ts = 1700000000250
    assert events == [
        iotlight.JoystickEvent("up", "pressed", ts),
        iotlight.JoystickEvent("up", "released", ts),
        iotlight.JoystickEvent("middle", "pressed", ts),
        iotlight.JoystickEvent("middle", "released", ts),
    ]
    hw.close()
    assert termios.tcgetattr(stdin.fileno()) == before


@pytest.mark.anyio
async def test_terminal_keys_through_the_runner(tty):
    """The runner's joystick thread delivers terminal keys on the loop and stops on close."""
    master, stdin = tty
    out = io.StringIO()
    runner = iotlight.HardwareRunner(iotlight.TerminalHardware(stdout=out, stdin=stdin))
    got = []
    assert runner.start_joystick(got.append)
    os.write(master, b"\x1b[D")
    await eventually(lambda: len(got) >= 2, "two presses")
    assert [(e.direction, e.action) for e in got] == [("left", "pressed"), ("left", "released")]
    assert abs(got[0].ts_ms - time.time() * 1000) < 60_000
    await runner.show([WHITE] * 64)
    await runner.close()
    assert out.getvalue().endswith(("\r" + "\x1b[48;2;0;0;0m  " * 8 + "\x1b[0m\x1b[K\n") * 8 + "\x1b[0m")
