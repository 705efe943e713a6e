"""A writer that works in its own thread, so that the network makes the next frames while the last are written.

`BackgroundWriter(writer)` takes anything with `write(frames)`, `close()` and `abort()` (a
`video.VideoWriter`). Batches pass through a queue of `depth` batches, so memory stays flat: when the
writer falls behind, `write` waits. The video encoders release the GIL, so the two really run at once.
An error in the thread is raised again by the next `write` or by `close`, in the caller's thread;
the inner writer is then aborted (it writes atomically: nothing is left at its path).
"""
from __future__ import annotations

import queue
import threading
import time

_DONE = object()


class BackgroundWriter:
    def __init__(self, writer, depth: int = 2):
        self.writer = writer
        self.busy_seconds = 0.0     # time the thread spent writing (overlaps the caller's work)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dnv-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE or self._stop.is_set():
                return
            t0 = time.perf_counter()
            try:
                self.writer.write(item)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e
                self._stop.set()
                return
            finally:
                self.busy_seconds += time.perf_counter() - t0

    def _put(self, item) -> None:
        while True:
            self._raise_error()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():     # it failed while the queue was full
                    self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            self._thread.join()
            self.writer.abort()
            raise self._error

    def write(self, frames) -> None:
        self._put(frames)

    def close(self) -> None:
        """Wait for every batch to be written, then finish the file."""
        self._put(_DONE)
        self._thread.join()
        self._raise_error()
        t0 = time.perf_counter()
        self.writer.close()
        self.busy_seconds += time.perf_counter() - t0

    def abort(self) -> None:
        """Stop at once and leave no file."""
        self._stop.set()
        try:
            self._queue.put_nowait(_DONE)   # wakes a thread that waits for a batch
        except queue.Full:
            pass                            # it is not waiting: it sees the stop before the next batch
        self._thread.join()
        self.writer.abort()
