"""One TCP session with an indiserver: indipyclient's asyncio client on a private event-loop thread, a
thread-safe mirror of every property the server has defined, and blocking send-and-wait calls with deadlines.

indipyclient (0.9.4) never notices end-of-file on its socket (it keeps polling a closed stream), so the
client here watches the stream itself and declares the session lost as soon as the server goes away;
every wait then fails at once with `DriverError`. Nothing here retries: the driver opens a new session.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from indipyclient import IPyClient, getfloat

from astropolis.tools.errors import DriverError

T = TypeVar("T")

# DRIVER_INFO.DRIVER_INTERFACE bits (libindi basedevice.h).
TELESCOPE_INTERFACE = 1 << 0
CCD_INTERFACE = 1 << 1
FILTER_INTERFACE = 1 << 4
WEATHER_INTERFACE = 1 << 7

_EOF_POLL_S = 0.05


@dataclass(frozen=True)
class Vector:
    """A copy of one property vector as the server last described it."""

    device: str
    name: str
    state: str
    values: Mapping[str, Any]
    seq: int = 0
    message: str = ""

    def number(self, member: str) -> float:
        """A number member as a float (INDI sexagesimal strings included)."""
        return float(getfloat(self.values[member]))

    def switch(self, member: str) -> bool:
        """Whether a switch member is On."""
        return self.values.get(member) == "On"


class _Client(IPyClient):
    """indipyclient's client, forwarding every event to the session and watching for end-of-file."""

    def __init__(self, session: IndiSession) -> None:
        super().__init__(indihost=session.host, indiport=session.port)
        self.session = session
        self.enableBLOBdefault = "Also"  # frames arrive inline, as setBLOBVector
        self.set_vector_timeouts(timeout_enable=False)  # the session keeps its own deadlines

    async def rxevent(self, event: Any) -> None:
        self.session._on_event(event)

    async def hardware(self) -> None:
        while not self.stop:
            await asyncio.sleep(_EOF_POLL_S)
            reader = self._reader
            if reader is not None and reader.at_eof():
                self.session._mark_lost("indiserver closed the connection")
                self.shutdown()
                return


class IndiSession:
    """A connection to one indiserver and a live mirror of its devices' properties."""

    def __init__(self, host: str, port: int, *, label: str, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.label, self.timeout_s = host, port, label, timeout_s
        self._changed = threading.Condition(threading.RLock())
        self._vectors: dict[tuple[str, str], Vector] = {}
        self._messages: dict[str, collections.deque[str]] = {}
        self._seq = 0
        self._last_define = time.monotonic()
        self._connected = False
        self.lost: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._run: Future[Any] | None = None
        self._client: _Client | None = None

    @property
    def address(self) -> str:
        """host:port of the server."""
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------------------------- lifecycle
    def open(self, timeout_s: float) -> None:
        """Connect (DriverError at once if nothing listens, or after `timeout_s` if the server stays silent)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=min(timeout_s, 5.0)):
                pass
        except OSError as error:
            raise DriverError(f"{self.label}: cannot reach indiserver at {self.address} ({error})") from None
        library_log = logging.getLogger("indipyclient")
        if library_log.level == logging.NOTSET:
            library_log.setLevel(logging.ERROR)  # its connection chatter is ours to report, as DriverError
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._serve, args=(loop,), name=f"indi-{self.label}", daemon=True)
        self._thread.start()
        self._client = _Client(self)
        self._run = asyncio.run_coroutine_threadsafe(self._client.asyncrun(), loop)
        try:
            self.wait_for(f"indiserver at {self.address} to answer", lambda: self._connected or None, timeout_s)
        except DriverError:
            self.close()
            raise

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        """Disconnect and stop the event-loop thread (idempotent)."""
        loop, client, run = self._loop, self._client, self._run
        if loop is None:
            return
        self._mark_lost("session closed")
        if client is not None and not loop.is_closed():
            loop.call_soon_threadsafe(client.shutdown)
        if run is not None:
            try:
                run.result(timeout=3.0)
            except Exception:  # closing must not fail; a stuck client is cancelled
                run.cancel()
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=3.0)
        self._loop = self._client = self._run = self._thread = None

    # ------------------------------------------------------------------------------- event handling
    def _on_event(self, event: Any) -> None:
        """Runs on the loop thread: fold one indipyclient event into the mirror and wake the waiters."""
        kind = event.eventtype
        with self._changed:
            self._seq += 1
            if kind == "ConnectionMade":
                self._connected = True
            elif kind == "ConnectionLost":
                self._mark_lost("connection to indiserver lost")
                if self._client is not None:
                    self._client.shutdown()  # no silent reconnects: the driver opens a new session
            elif kind in ("Define", "DefineBLOB", "Set", "SetBLOB") and event.vector is not None:
                vector = event.vector
                values = {name: vector[name] for name in vector}
                state = getattr(event, "state", None) or vector.state
                message = getattr(event, "message", "") or ""
                self._vectors[(event.devicename, event.vectorname)] = Vector(
                    event.devicename, event.vectorname, state, values, self._seq, message
                )
                if message:
                    self._messages.setdefault(event.devicename, collections.deque(maxlen=5)).append(message)
                if kind.startswith("Define"):
                    self._last_define = time.monotonic()
            elif kind == "Delete":
                for key in [k for k in self._vectors if k[0] == event.devicename]:
                    if event.vectorname in (None, key[1]):
                        del self._vectors[key]
            elif kind == "Message" and event.devicename and event.message:
                self._messages.setdefault(event.devicename, collections.deque(maxlen=5)).append(event.message)
            self._changed.notify_all()

    def _mark_lost(self, reason: str) -> None:
        with self._changed:
            if self.lost is None:
                self.lost = reason
            self._changed.notify_all()

    # ------------------------------------------------------------------------------------- reading
    def vector(self, device: str, name: str) -> Vector | None:
        """The latest copy of a property, or None if the server has not defined it."""
        with self._changed:
            return self._vectors.get((device, name))

    def has(self, device: str, name: str) -> bool:
        """Whether the server has defined this property."""
        return self.vector(device, name) is not None

    def devices(self) -> list[str]:
        """Names of every device seen, sorted."""
        with self._changed:
            return sorted({device for device, _ in self._vectors})

    def devices_with(self, interface: int) -> list[str]:
        """Devices whose DRIVER_INFO says they implement `interface`, sorted by name."""
        found = []
        for device in self.devices():
            info = self.vector(device, "DRIVER_INFO")
            try:
                bits = int(str(info.values.get("DRIVER_INTERFACE", "0"))) if info is not None else 0
            except ValueError:
                bits = 0
            if bits & interface:
                found.append(device)
        return found

    def device_connected(self, device: str) -> bool:
        """Whether the device's CONNECTION switch is On."""
        connection = self.vector(device, "CONNECTION")
        return connection is not None and connection.switch("CONNECT")

    def last_message(self, device: str) -> str:
        """The device's most recent message, or ''."""
        with self._changed:
            recent = self._messages.get(device)
            return recent[-1] if recent else ""

    # ------------------------------------------------------------------------------------- waiting
    def wait_for(self, what: str, check: Callable[[], T | None], timeout_s: float) -> T:
        """Block until `check()` returns something other than None; DriverError on timeout or a lost session."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                if self.lost is not None:
                    raise DriverError(f"{self.label}: {self.lost} ({self.address}) while waiting for {what}")
                result = check()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DriverError(
                        f"{self.label}: no answer from {self.address} in {timeout_s:g} s waiting for {what}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def wait_defined(self, device: str, name: str, timeout_s: float) -> Vector:
        """Wait until the server defines a property."""
        return self.wait_for(f"{device}.{name}", lambda: self.vector(device, name), timeout_s)

    def find_device(self, spec: str, interface: int, role: str, timeout_s: float) -> str:
        """A device by name, or by number N: the N-th device (by name) implementing `interface`."""

        def check() -> str | None:
            if spec.isdigit():
                candidates = self.devices_with(interface)
                return candidates[int(spec)] if len(candidates) > int(spec) else None
            return spec if self.has(spec, "CONNECTION") else None

        try:
            return self.wait_for(f"the {role} device {spec!r}", check, timeout_s)
        except DriverError as error:
            if self.lost is not None:
                raise
            seen = ", ".join(self.devices()) or "none"
            raise DriverError(f"{error}; devices on {self.address}: {seen}") from None

    def settle(self, timeout_s: float, quiet_s: float = 0.3) -> None:
        """Wait until no device has defined a property for `quiet_s` (all drivers have answered)."""
        self.wait_for("devices to finish defining properties", lambda: self._quiet(quiet_s), timeout_s)

    def _quiet(self, quiet_s: float) -> bool | None:
        return True if time.monotonic() - self._last_define >= quiet_s else None

    # ------------------------------------------------------------------------------------- sending
    def send(self, device: str, name: str, members: Mapping[str, Any]) -> int:
        """Send a new value for a property; return the event number to wait past for the answer."""
        loop, client = self._loop, self._client
        with self._changed:
            if self.lost is not None or loop is None or client is None:
                why = self.lost or "not connected"
                raise DriverError(f"{self.label}: {why} ({self.address}); cannot set {device}.{name}")
            if (device, name) not in self._vectors:
                raise DriverError(f"{self.label}: device {device!r} has no property {name} on {self.address}")
            seq = self._seq
        future = asyncio.run_coroutine_threadsafe(client.send_newVector(device, name, members=dict(members)), loop)
        try:
            future.result(timeout=self.timeout_s)
        except FutureTimeout:
            future.cancel()
            raise DriverError(f"{self.label}: sending {device}.{name} to {self.address} timed out") from None
        except Exception as error:
            raise DriverError(f"{self.label}: sending {device}.{name} to {self.address} failed: {error}") from error
        return seq

    def _answer(self, device: str, name: str, after: int, what: str) -> Vector | None:
        """The property's first settled (not Busy) state after event `after`; DriverError if it is Alert."""
        vector = self.vector(device, name)
        if vector is None:
            raise DriverError(f"{self.label}: {device}.{name} disappeared while waiting for {what}")
        if vector.seq <= after or vector.state == "Busy":
            return None
        if vector.state == "Alert":
            why = vector.message or self.last_message(device) or "no reason given"
            raise DriverError(f"{self.label}: {device} refused {what}: {why}")
        return vector

    def set_numbers(
        self, device: str, name: str, values: Mapping[str, float], *, timeout_s: float | None = None
    ) -> Vector:
        """Set number members and wait until the device reports Ok."""
        what = f"{name} = {dict(values)}"
        after = self.send(device, name, values)
        return self.wait_for(
            f"{device} to accept {what}", lambda: self._answer(device, name, after, what), timeout_s or self.timeout_s
        )

    def set_switch(self, device: str, name: str, member: str, *, timeout_s: float | None = None) -> Vector:
        """Turn one switch On and wait until the device reports it On and Ok."""
        what = f"{name}.{member}"
        after = self.send(device, name, {member: "On"})

        def check() -> Vector | None:
            answer = self._answer(device, name, after, what)
            if answer is not None and not answer.switch(member):
                raise DriverError(f"{self.label}: {device} did not switch {what} on: {answer.message or 'no reason'}")
            return answer

        return self.wait_for(f"{device} to switch {what} on", check, timeout_s or self.timeout_s)

    def ping(self, device: str, name: str, timeout_s: float) -> None:
        """Ask the server to describe one property again and wait for it: proof the server is alive now."""
        loop, client = self._loop, self._client
        if self.lost is not None or loop is None or client is None:
            raise DriverError(f"{self.label}: {self.lost or 'not connected'} ({self.address})")
        with self._changed:
            after = self._seq
        future = asyncio.run_coroutine_threadsafe(client.send_getProperties(device, name), loop)
        try:
            future.result(timeout=timeout_s)
        except FutureTimeout:
            future.cancel()
            raise DriverError(f"{self.label}: asking {self.address} for {device}.{name} timed out") from None

        def described() -> bool | None:
            vector = self.vector(device, name)
            return True if vector is not None and vector.seq > after else None

        self.wait_for(f"{device}.{name} from a live server", described, timeout_s)

    def set_text(self, device: str, name: str, values: Mapping[str, str], *, timeout_s: float | None = None) -> Vector:
        """Set text members and wait until the device reports Ok."""
        what = f"{name} = {dict(values)}"
        after = self.send(device, name, values)
        return self.wait_for(
            f"{device} to accept {what}", lambda: self._answer(device, name, after, what), timeout_s or self.timeout_s
        )

    def press(self, device: str, name: str, member: str) -> None:
        """Press a button-like switch (abort) and wait for the device to answer, whatever the answer."""
        after = self.send(device, name, {member: "On"})

        def check() -> bool | None:
            vector = self.vector(device, name)
            return True if vector is None or vector.seq > after else None

        self.wait_for(f"{device} to answer {name}", check, self.timeout_s)

    def connect_device(self, device: str, timeout_s: float) -> None:
        """Switch a device's CONNECTION on unless it already is."""
        connection = self.wait_defined(device, "CONNECTION", timeout_s)
        if not (connection.switch("CONNECT") and connection.state != "Alert"):
            self.set_switch(device, "CONNECTION", "CONNECT", timeout_s=timeout_s)

    def expose(self, camera: str, exposure_s: float, *, timeout_s: float, blob: str = "CCD1") -> bytes:
        """Start an exposure and return the frame BLOB; DriverError if the camera fails, vanishes or times out."""
        after = self.send(camera, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": exposure_s})

        def check() -> bytes | None:
            frame = self.vector(camera, blob)
            exposure = self.vector(camera, "CCD_EXPOSURE")
            if frame is None or exposure is None or not self.device_connected(camera):
                raise DriverError(f"{self.label}: camera {camera!r} disconnected during the exposure")
            if frame.seq > after:
                data = next((v for v in frame.values.values() if isinstance(v, bytes) and v), None)
                if data is not None:
                    return data
            if exposure.seq > after and exposure.state == "Alert":
                why = exposure.message or self.last_message(camera) or "no reason given"
                raise DriverError(f"{self.label}: camera {camera!r} reported an error during the exposure: {why}")
            return None

        try:
            return self.wait_for(f"a {exposure_s:g} s frame from {camera}", check, timeout_s)
        except DriverError:
            exposure = self.vector(camera, "CCD_EXPOSURE")
            still_busy = exposure is not None and exposure.state == "Busy"
            if self.lost is None and still_busy and self.has(camera, "CCD_ABORT_EXPOSURE"):
                try:  # past the deadline and still exposing: stop it, so the camera is free again
                    self.send(camera, "CCD_ABORT_EXPOSURE", {"ABORT": "On"})
                except DriverError:
                    pass
            raise
