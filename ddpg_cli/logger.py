"""TensorBoard logging under RUN_DIR/tensorboard (torch.utils.tensorboard), or nothing when disabled."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ddpg_cli.layout import TENSORBOARD_DIR


class RunLogger:
    def __init__(self, run_dir: Path, enabled: bool, purge_step: int | None = None) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

            # purge_step drops events that a crashed run logged after its last checkpoint, so a resumed
            # run's curves carry on without a fold.
            self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=purge_step)

    def scalars(self, group: str, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{group}/{name}", value, step)

    def text(self, tag: str, text: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
