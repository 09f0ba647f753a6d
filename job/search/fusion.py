"""How many trials a worker fuses into one group (`spec.distribution.fuseTrials`).

A number is used as it is. `auto` is measured on the search's own trials, with no trial spent on
measuring: the worker runs its first trial alone (a warm-up: imports and first compilations make it
slow, so it is not counted), then a second alone, then groups of 2, 4, ... Each group's time per
member-epoch (its wall time, compilation included, over its members' epochs) is compared with the
size before, and the size doubles while that time still falls by at least `GAIN`, up to `MOST`.
When a doubling stops paying, the worker goes back to the size that paid and stays there: on a CPU,
where a trial of a small MLP is bound by arithmetic, that is usually 1 (one trial at a time); on a
GPU that one trial keeps a few per cent busy, it grows. A group that runs out of device memory caps
the size at half (the worker halves it and tries again; see `search/worker.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

GAIN = 0.10  # a doubling must cut the time per member-epoch by this fraction to be kept
MOST = 16
START = 1


@dataclass
class GroupWidth:
    """The size of the next fused group, from the spec or, for `auto`, from measurement."""

    setting: int | Literal["auto"]
    size: int = field(init=False)
    settled: bool = field(init=False)
    cap: int = MOST
    timings: dict[int, float] = field(default_factory=dict)  # size: seconds per member-epoch
    warmed: bool = False  # the worker's first trial is not counted

    def __post_init__(self) -> None:
        self.size = START if self.setting == "auto" else self.setting
        self.settled = self.setting != "auto"

    def measured(self, members: int, seconds: float, member_epochs: int) -> None:
        """A group of `members` took `seconds` for `member_epochs` epochs in all."""
        if self.settled or members != self.size or member_epochs == 0:
            return
        if not self.warmed:
            self.warmed = True
            return
        per = seconds / member_epochs
        self.timings[members] = per
        smaller = self.timings.get(members // 2)
        if smaller is not None and per > smaller * (1 - GAIN):
            self.size, self.settled = members // 2, True
            log.info(
                "fuseTrials auto: %d trials a group (%.2f s a member-epoch; %d took %.2f s)",
                self.size,
                smaller,
                members,
                per,
            )
        elif members * 2 > self.cap:
            self.settled = True
            log.info("fuseTrials auto: %d trials a group (%.2f s a member-epoch)", self.size, per)
        else:
            self.size = members * 2

    def out_of_memory(self, members: int) -> None:
        """A group of `members` did not fit on the device: never again as many."""
        self.cap = max(1, members // 2)
        self.size = min(self.size, self.cap)
