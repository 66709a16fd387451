"""What every dataset reader shares: its two error classes and one CSV reader.

A reader raises `DatasetNotFoundError` when the release is not where the config says
(the message says where it looked and how to get it) and `ManifestError` when an index
file is there but malformed (the message names the file, and the row where there is
one). `data_prep.manifest` and `data_prep.merge` re-export them under their old names.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
  import pandas as pd


class ManifestError(ValueError):
  """A manifest or index CSV that cannot be read; the message names the file (and row)."""


class DatasetNotFoundError(FileNotFoundError):
  """A release that is missing or incomplete; the message says where and what."""


def number(value: str) -> float:
  """The number in a CSV cell (surrounding spaces allowed), NaN when it is empty or
  not a number."""
  try:
    return float(value)
  except ValueError:
    return float('nan')


def read_csv(path: str, columns: Sequence[str], **pandas_kwargs: Any) -> pd.DataFrame:
  """Every cell of the CSV at `path` as a str ('' for an empty cell, never NaN).

  Column names are stripped of surrounding spaces (DEAM pads them), then `columns` are
  required. `pandas_kwargs` go to `pd.read_csv` (e.g. `encoding='utf-8-sig'`,
  `skipinitialspace=True`).

  Returns:
    The table, [rows, columns], with the stripped column names.

  Raises:
    ManifestError naming the file, the missing columns, the required and the found
    ones; or naming the file and pandas' message for a row that cannot be parsed or
    text that is not in the encoding.
  """
  import pandas as pd  # Here: the prediction command imports this module, reads no CSV.
  try:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, **pandas_kwargs)
  except pd.errors.EmptyDataError:  # 0 bytes or only blank lines: not even a header.
    raise ManifestError(f'{path}: empty file ({os.path.getsize(path)} bytes): a header '
                        f'row with the columns {", ".join(columns)} is needed') from None
  except (pd.errors.ParserError, UnicodeDecodeError) as e:
    raise ManifestError(f'{path}: cannot be read as CSV ({str(e).strip()})') from None
  df.columns = [c.strip() for c in df.columns]
  missing = [c for c in columns if c not in df.columns]
  if missing:
    raise ManifestError(f'{path}: missing column(s) {", ".join(missing)}; required: '
                        f'{", ".join(columns)}; found {", ".join(df.columns)}')
  return df
