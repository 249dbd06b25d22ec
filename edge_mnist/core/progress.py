"""Progress for long steps: a tqdm bar with rate and ETA on a terminal, plain periodic lines in a log.

Everything goes to stderr, so stdout keeps only results. When stderr is not a terminal (CI logs,
pipes) a bar's carriage returns would make one unreadable line, so a step prints a plain line at
most every PLAIN_INTERVAL_S seconds and one when it ends. `--quiet` (set_quiet) silences both the
bars and the stage messages; errors and results are still printed.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

PLAIN_INTERVAL_S = 10.0
NOW = "now"  # the figure saying what a step without an ETA is doing; left out of its closing line
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and messages (the CLI's --quiet)."""
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    """Whether --quiet is in effect."""
    return _state["quiet"]


def say(msg: str) -> None:
    """A stage message on stderr (nothing under --quiet); on a terminal it goes above any open bar."""
    if _state["quiet"]:
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr, flush=True)


def clock(seconds: float) -> str:
    """Seconds as m:ss (or h:mm:ss)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Silent:
    """The bar under --quiet: counts, prints nothing."""

    def __init__(self, total: int):
        self.total, self.n = total, 0

    def update(self, n: int = 1, **postfix) -> None:
        """Advance by n."""
        self.n += n

    def close(self) -> None:
        """Nothing to finish."""

    def stop(self) -> None:
        """The step failed: nothing to say (the error is printed by whoever handles it)."""


class _Lines(_Silent):
    """The bar in a log: "desc: 40% (2,400/6,000 img), 1,850 img/s, ETA 0:02" every PLAIN_INTERVAL_S seconds;
    without `eta` (steps of unlike length): "desc: 2/6 steps, 1:05 elapsed, now <what it is doing>".

    A line is printed on an update once the interval has passed, and by a heartbeat thread when no
    update comes for an interval (a step that is one long call, such as building emulate's root
    filesystem), so a log never falls silent for longer than the interval.
    """

    def __init__(self, desc: str, total: int, unit: str, eta: bool = True):
        super().__init__(total)
        self.desc, self.unit, self.eta = desc, unit, eta
        self.show_rate = unit == "img"  # images/s means something; files/s or steps/s would not
        self.start = self.last = time.perf_counter()
        self.postfix: dict = {}
        self._lock, self._done = threading.Lock(), threading.Event()
        self._heartbeat = None
        if PLAIN_INTERVAL_S > 0:
            self._heartbeat = threading.Thread(target=self._beat, args=(PLAIN_INTERVAL_S,), daemon=True)
            self._heartbeat.start()

    def update(self, n: int = 1, **postfix) -> None:
        """Advance by n; print a line when the interval has passed."""
        super().update(n)
        with self._lock:  # the heartbeat and emulate's watcher read it from their threads
            self.postfix.update(postfix)
        self._maybe_print()

    def _maybe_print(self) -> None:
        """Print the running line if the interval has passed since the last one."""
        with self._lock:
            now = time.perf_counter()
            if now - self.last >= PLAIN_INTERVAL_S and self.n < self.total and not self._done.is_set():
                self.last = now
                print(self._line(now, done=False), file=sys.stderr, flush=True)

    def _beat(self, interval: float) -> None:
        """The heartbeat thread: a line whenever an interval passes without one."""
        while not self._done.wait(interval):
            self._maybe_print()

    def _finish(self, line: str) -> None:
        """Stop the heartbeat, then print the last line."""
        self._done.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        """The closing line: how much, how long, how fast."""
        self._finish(self._line(time.perf_counter(), done=True))

    def stop(self) -> None:
        """The step failed: say where it stopped, never "done"."""
        self._finish(f"{self.desc}: stopped at {self.n:,}/{self.total:,} {self.unit}")

    def _line(self, now: float, done: bool) -> str:
        """One progress line."""
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items() if v != "" and not (done and k == NOW))
        speed = f"{rate:,.0f} {self.unit}/s" if self.show_rate else ""
        if done:
            return f"{self.desc}: {self.n:,} {self.unit} in {clock(elapsed)}{f' ({speed})' if speed else ''}{extra}"
        if not self.eta:
            return f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}, {clock(elapsed)} elapsed{extra}"
        eta = clock((self.total - self.n) / rate) if rate > 0 else "?"
        return (f"{self.desc}: {100 * self.n / max(self.total, 1):.0f}% ({self.n:,}/{self.total:,} {self.unit}), "
                f"{speed + ', ' if speed else ''}ETA {eta}{extra}")


class _Bar(_Silent):
    """The bar on a terminal: tqdm with count, rate and ETA."""

    def __init__(self, desc: str, total: int, unit: str, eta: bool = True):
        from tqdm import tqdm

        super().__init__(total)
        remaining = "<{remaining}" if eta else " elapsed"
        layout = {} if unit == "img" and eta else {"bar_format": "{l_bar}{bar}| {n_fmt}/{total_fmt} {unit} "
                                                                 f"[{{elapsed}}{remaining}{{postfix}}]"}
        self.shown_postfix: dict = {}
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=total >= 10_000, file=sys.stderr,
                        dynamic_ncols=True, leave=True, **layout)  # a rate means something for images only

    def update(self, n: int = 1, **postfix) -> None:
        """Advance by n, showing the latest figures beside the bar."""
        super().update(n)
        if postfix:
            self.shown_postfix.update(postfix)  # an empty figure ("now" when a step's activity ends) is cleared
            self.bar.set_postfix({k: v for k, v in self.shown_postfix.items() if v != ""}, refresh=not n)
        self.bar.update(n)

    def close(self) -> None:
        """Leave the finished bar on screen."""
        self.bar.close()

    def stop(self) -> None:
        """The step failed: leave the bar where it stopped."""
        self.bar.close()


def silent() -> _Silent:
    """A bar that shows nothing: for library calls that run without a visible step."""
    return _Silent(0)


def bar(desc: str, total: int, unit: str = "img", eta: bool = True):
    """A progress bar for `total` units of work: tqdm on a terminal, plain lines otherwise, silent when quiet.
    Call .update(n, **figures) and .close(); or use `step`. `eta=False` for units of unlike length, whose
    count predicts nothing: elapsed time instead, and the figure `now` (update(0, now=...)) says what runs."""
    if _state["quiet"]:
        return _Silent(total)
    if sys.stderr.isatty():
        return _Bar(desc, total, unit, eta)
    return _Lines(desc, total, unit, eta)


@contextmanager
def step(desc: str, total: int, unit: str = "img", eta: bool = True) -> Iterator:
    """`bar` as a context manager: closed (its last line printed) when the block ends; when it raises,
    the bar says where it stopped instead of reporting the step done."""
    progress = bar(desc, total, unit, eta)
    try:
        yield progress
    except BaseException:
        progress.stop()
        raise
    progress.close()


def keras_callback(keras, desc: str, n_images: int, batch_size: int):
    """A Keras callback drawing one bar per epoch (images, images/s, ETA, running loss and accuracy) that
    ends with the epoch's test figures; it replaces Keras's own verbose output."""

    class KerasProgress(keras.callbacks.Callback):
        """The bars of one fit() call."""

        def on_train_begin(self, logs=None):
            """Learn the epoch count from fit()'s parameters."""
            self.epochs = self.params.get("epochs", 1)

        def on_epoch_begin(self, epoch, logs=None):
            """A new bar over the training images."""
            self.bar, self.seen = bar(f"{desc} epoch {epoch + 1}/{self.epochs}", n_images), 0

        def on_train_batch_end(self, batch, logs=None):
            """Advance by one batch (the last may be short), with the running loss and accuracy."""
            step_images = min(batch_size, n_images - self.seen)
            self.seen += step_images
            self.bar.update(step_images, **_figures(logs))

        def on_epoch_end(self, epoch, logs=None):
            """Close the bar with the epoch's test figures."""
            self.bar.update(0, **_figures(logs))
            self.bar.close()
            self.bar = None

        def stop(self):
            """fit() raised: an epoch's open bar says where it stopped."""
            if getattr(self, "bar", None) is not None:
                self.bar.stop()
                self.bar = None

    return KerasProgress()


def _figures(logs) -> dict[str, str]:
    """Keras logs -> short rounded figures for display (loss, accuracy, test loss, test accuracy)."""
    names = {"loss": "loss", "accuracy": "accuracy", "val_loss": "test loss", "val_accuracy": "test accuracy"}
    return {names[k]: f"{float(v):.4f}" for k, v in (logs or {}).items() if k in names}


__all__ = ["bar", "step", "silent", "say", "set_quiet", "is_quiet", "keras_callback", "clock", "PLAIN_INTERVAL_S",
           "NOW"]
