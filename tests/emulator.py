"""EmulatedHat: the emulator side of sense_emu, played by a test, with real files and sockets.

sense_emu_gui normally owns these; here the test does, without a GUI:
  - EmulatorLock('sense_emu') held by this process (so sense_emu.SenseHat()
    never spawns the GUI),
  - the screen file (64 RGB565 uint16 + 32 gamma bytes) the client writes,
  - the humidity and pressure register files, via sense_emu's own
    HumidityServer / PressureServer with noise off and settable values,
  - a stick server on sense_emu.stick.stick_address() speaking the GUI's
    protocol: clients send b'hello', the server sends evdev structs ('llHHI').

Everything lives at fixed paths in /dev/shm: never run two at once.
"""

from __future__ import annotations

import errno
import io
import os
import select
import socket
import struct
import threading
import time

from sense_emu.humidity import HumidityServer, humidity_filename
from sense_emu.imu import imu_filename
from sense_emu.lock import EmulatorLock, lock_filename
from sense_emu.pressure import PressureServer, pressure_filename
from sense_emu.screen import GAMMA_DEFAULT, screen_filename
from sense_emu.stick import SenseStick, stick_address

KEY_CODES = {
    "up": SenseStick.KEY_UP,
    "down": SenseStick.KEY_DOWN,
    "left": SenseStick.KEY_LEFT,
    "right": SenseStick.KEY_RIGHT,
    "middle": SenseStick.KEY_ENTER,
}
KEY_STATES = {
    "pressed": SenseStick.STATE_PRESS,
    "released": SenseStick.STATE_RELEASE,
    "held": SenseStick.STATE_HOLD,
}
EV_SYN = 0


def rgb565(rgb) -> int:
    """Encode (r, g, b) the way sense_emu's SenseHat.set_pixels does."""
    r, g, b = rgb
    return ((r >> 3) & 0x1F) << 11 | ((g >> 2) & 0x3F) << 5 | ((b >> 3) & 0x1F)


def decode565(value: int):
    """Decode one RGB565 word to 8-bit (r, g, b), scaling 5/6-bit to 0..255."""
    r5, g6, b5 = value >> 11, (value >> 5) & 0x3F, value & 0x1F
    return ((r5 * 255 + 15) // 31, (g6 * 255 + 31) // 63, (b5 * 255 + 15) // 31)


def quantize(rgb):
    """What pixels() reads back after a client wrote ``rgb``."""
    return decode565(rgb565(rgb))


class EmulatedHat:
    """Plays sense_emu_gui for tests. Use as a context manager."""

    def __init__(self, *, temperature=20.0, humidity=45.0, pressure=1013.0):
        self._created = []
        self._lock = EmulatorLock("sense_emu")
        try:
            self._lock.acquire()  # breaks a stale lock (dead pid)
        except FileExistsError:
            raise RuntimeError(
                "a live process holds the sense_emu lock %s (sense_emu_gui or "
                "another test run): stop it first" % lock_filename()
            ) from None
        self._humidity = self._pressure = None
        self._server = None
        self._stop = threading.Event()
        self._clients = set()
        self._cond = threading.Condition()
        self.delivered = []
        self._screen_path = screen_filename()
        try:
            with io.open(self._screen_path, "wb") as f:  # fresh, whatever was left before
                f.write(b"\x00\x00" * 64 + bytes(GAMMA_DEFAULT))
            self._created.append(self._screen_path)
            _remove_stale_clients(os.path.dirname(self._screen_path))
            for path in (humidity_filename(), pressure_filename()):
                _unlink(path)  # stale register values from an earlier run
                self._created.append(path)
            self._created.append(imu_filename())  # the client creates it; we remove it
            self._humidity = HumidityServer(simulate_noise=False)
            self._pressure = PressureServer(simulate_noise=False)
            self.set_environment(temperature, humidity, pressure)
            self._start_stick_server()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- screen

    def pixels(self):
        """The 64 (r, g, b) on the screen, row-major from the top-left."""
        with io.open(self._screen_path, "rb") as f:
            words = struct.unpack("64H", f.read(128))
        return [decode565(w) for w in words]

    def lit_count(self) -> int:
        return sum(1 for p in self.pixels() if p != (0, 0, 0))

    # -- sensors

    def set_environment(self, temperature, humidity, pressure):
        """Set the sensor values (NaN marks a reading invalid)."""
        self._humidity.set_values(humidity, temperature)
        self._pressure.set_values(pressure, temperature)

    # -- joystick

    def _start_stick_server(self):
        family, kind, addr = stick_address()
        self._stick_path = addr
        _unlink(addr)  # a stale socket from an earlier run
        self._server = socket.socket(family, kind)
        self._server.bind(addr)
        self._created.append(addr)
        self._thread = threading.Thread(target=self._serve, name="emulated-stick", daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self._server], [], [], 0.1)
            if not ready:
                continue
            try:
                data, addr = self._server.recvfrom(64)
            except OSError:
                continue
            if data == b"hello" and addr:
                with self._cond:
                    self._clients.add(addr)
                    self._cond.notify_all()

    def wait_for_stick_client(self, timeout: float, pid: int = None) -> bool:
        """Wait until at least one client said hello (with ``pid``: the client of that process)."""
        with self._cond:
            if pid is None:
                return self._cond.wait_for(lambda: bool(self._clients), timeout)
            return self._cond.wait_for(lambda: self.has_stick_client(pid), timeout)

    def has_stick_client(self, pid: int) -> bool:
        """Whether the stick client of process ``pid`` said hello (and was not found gone since)."""
        name = "rpi-sense-emu-client-%d" % pid
        with self._cond:
            return any(isinstance(c, str) and os.path.basename(c) == name for c in self._clients)

    def press(self, direction: str, action: str = "pressed", ts: float = None) -> float:
        """Send one key event (then EV_SYN) to every client; return its timestamp.

        ``self.delivered`` then lists the clients whose socket took both datagrams."""
        ts = time.time() if ts is None else ts
        delivered = []
        sec = int(ts)
        usec = int(round((ts - sec) * 1_000_000))
        key = struct.pack(
            SenseStick.EVENT_FORMAT, sec, usec, SenseStick.EV_KEY, KEY_CODES[direction], KEY_STATES[action]
        )
        syn = struct.pack(SenseStick.EVENT_FORMAT, sec, usec, EV_SYN, 0, 0)
        with self._cond:
            clients = list(self._clients)
        for client in clients:
            for buf in (key, syn):
                try:
                    self._server.sendto(buf, client)
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                        raise
                    with self._cond:
                        self._clients.discard(client)
                    break
            else:
                delivered.append(client)
        self.delivered = delivered
        return sec + usec / 1_000_000

    def click(self, direction: str):
        """Press then release; return both timestamps."""
        return self.press(direction, "pressed"), self.press(direction, "released")

    # -- teardown

    def close(self):
        self._stop.set()
        if self._server is not None:
            self._thread.join()
            self._server.close()
            self._server = None
        for server in (self._humidity, self._pressure):
            if server is not None:
                server.close()
        self._humidity = self._pressure = None
        for path in self._created:
            _unlink(path)
        # the socket sense_emu's stick client of this process bound beside ours
        _unlink(os.path.join(os.path.dirname(self._screen_path), "rpi-sense-emu-client-%d" % os.getpid()))
        self._created = []
        if self._lock.mine:
            self._lock.release()


def _remove_stale_clients(folder):
    """Remove stick client sockets (rpi-sense-emu-client-<pid>) of dead processes."""
    prefix = "rpi-sense-emu-client-"
    for name in os.listdir(folder):
        if not name.startswith(prefix):
            continue
        try:
            pid = int(name[len(prefix) :])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            _unlink(os.path.join(folder, name))
        except PermissionError:
            continue


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
