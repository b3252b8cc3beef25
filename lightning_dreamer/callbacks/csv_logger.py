"""A CSVLogger that appends across resumed runs instead of deleting the earlier metrics."""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


def cut_rows(path: str, keep) -> list[dict[str, str]]:
    """Rewrite the CSV at ``path`` (atomically) with only the rows ``keep(row)`` accepts; return them."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        header, rows = reader.fieldnames or [], list(reader)
    kept = [row for row in rows if keep(row)]
    if len(kept) == len(rows):
        return kept
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)
    return kept


class _AppendingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, resume_step: int | None = None):
        self.resume_step = resume_step  # read by _check_log_dir_exists, which the parent's __init__ calls
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        # Lightning's writer removes an existing metrics.csv here; a resumed run keeps it and
        # continues it, with the columns it already had, from the checkpoint's step: rows the
        # stopped run wrote after its last checkpoint describe work that is done again now.
        self._fs.makedirs(self.log_dir, exist_ok=True)
        if self._fs.isfile(self.metrics_file_path):
            if self.resume_step is not None:
                cut_rows(self.metrics_file_path, lambda row: not row.get("step") or int(float(row["step"])) <= self.resume_step)
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys = sorted(header)


class AppendingCSVLogger(CSVLogger):
    """``resume_step``: the step of the checkpoint being resumed (rows after it are dropped)."""

    def __init__(self, *args, resume_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    def experiment(self) -> _AppendingWriter:
        if not isinstance(self._experiment, _AppendingWriter):
            self._experiment = _AppendingWriter(self.log_dir, self.resume_step)
        return self._experiment
