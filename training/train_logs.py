"""The training loop's logs: CSV files of rows, and whether to draw progress bars."""

import csv
import os
import sys
from typing import Any, List, Mapping, Optional


class CSVLog:
    """Append rows to a CSV file; the header is fixed by the first row written."""

    def __init__(self, path: str):
        self.path = path
        self.fields: Optional[List[str]] = None
        if os.path.isfile(path):
            with open(path, 'r', encoding='utf-8', newline='') as handle:
                header = handle.readline().strip()
            self.fields = header.split(',') if header else None

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (keys not in the header are dropped)."""
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, 'a', encoding='utf-8', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction='ignore')
            if new:
                writer.writeheader()
            writer.writerow(row)


def progress_enabled(setting) -> bool:
    """Return whether to draw tqdm bars: 'auto' means on a terminal and not in CI."""
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ('true', 'false'):
        return str(setting).lower() == 'true'
    return sys.stderr.isatty() and not os.environ.get('CI')
