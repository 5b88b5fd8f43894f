"""Dates in many spellings → ISO dates: "the 7th of April, 2023" → "2023-04-07".

A task that needs cross-attention: the target reorders and translates the source (month
names to numbers, ordinals and weekdays dropped, days zero-padded), so no decoder can copy it,
yet every reader knows the answer. Days run from 1900-01-01 to 2099-12-31; a seeded
permutation of them gives the held-out days, so no held-out date appears in training in any
spelling and a model must compose year, month and day rather than recall them.

`python -m gpt_jax.tasks.dates --out=DIR` writes train.tsv and val.tsv, byte for byte the
files shipped in gpt_jax/data/dates/.
"""

from __future__ import annotations

import datetime
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from absl import flags

from gpt_jax import cli
from gpt_jax.errors import UserError
from gpt_jax.user_files import user_path

SEED = 20230407
N_TRAIN = 40_000
N_VAL = 2_000
FIRST_DAY = datetime.date(1900, 1, 1)
LAST_DAY = datetime.date(2099, 12, 31)
TRAIN_FILE, VAL_FILE = "train.tsv", "val.tsv"

# Our own English tables, so that the output never depends on the locale.
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# One numeric form per order: day.month.year with dots and year/month/day with slashes, never
# day/month beside month/day, so that no source can be read as two dates.
FORMATS = (
    "{d} {Month} {Y}",              # 7 April 2023
    "{Month} {d}, {Y}",             # April 7, 2023
    "{Mon} {d} {Y}",                # Apr 7 2023
    "{d} {Mon} {Y}",                # 7 Apr 2023
    "the {dth} of {Month}, {Y}",    # the 7th of April, 2023
    "{Month} {dth}, {Y}",           # April 7th, 2023
    "{dth} {Month} {Y}",            # 7th April 2023
    "{Weekday}, {d} {Month} {Y}",   # Friday, 7 April 2023
    "{Weekday}, {Month} {d}, {Y}",  # Friday, April 7, 2023
    "{Wkd} {d} {Mon} {Y}",          # Fri 7 Apr 2023
    "{month} {d}, {Y}",             # april 7, 2023
    "{dd} {MON} {Y}",               # 07 APR 2023
    "{dd}-{Mon}-{Y}",               # 07-Apr-2023
    "{dd}.{mm}.{Y}",                # 07.04.2023
    "{Y}/{mm}/{dd}",                # 2023/04/07
)


def ordinal(day: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, 22nd, 23rd, ..., 31st."""
    suffix = "th" if day in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def spell(day: datetime.date, template: str) -> str:
    """`day` written as one of FORMATS."""
    month, weekday = MONTHS[day.month - 1], WEEKDAYS[day.weekday()]
    return template.format(
        Y=f"{day.year:04d}", mm=f"{day.month:02d}", dd=f"{day.day:02d}", d=str(day.day),
        dth=ordinal(day.day), Month=month, Mon=month[:3], month=month.lower(),
        MON=month[:3].upper(), Weekday=weekday, Wkd=weekday[:3])


def generate(seed: int = SEED, n_train: int = N_TRAIN,
             n_val: int = N_VAL) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, val) pairs of (spelling, ISO date); each day once, no val day in train."""
    n_days = LAST_DAY.toordinal() - FIRST_DAY.toordinal() + 1
    if n_train + n_val > n_days:
        raise UserError(f"{n_train} + {n_val} pairs need more than the {n_days} days "
                        f"from {FIRST_DAY} to {LAST_DAY}")
    rng = np.random.default_rng(seed)
    days = FIRST_DAY.toordinal() + rng.permutation(n_days)[:n_val + n_train]
    formats = rng.integers(0, len(FORMATS), size=n_val + n_train)
    pairs = []
    for ordinal_day, f in zip(days.tolist(), formats.tolist(), strict=True):
        day = datetime.date.fromordinal(ordinal_day)
        pairs.append((spell(day, FORMATS[f]), day.isoformat()))
    return pairs[n_val:], pairs[:n_val]


def shipped_dir() -> Path:
    """gpt_jax/data/dates/, inside the installed package."""
    return Path(str(resources.files("gpt_jax") / "data" / "dates"))


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> None:
    """One `source<TAB>target` line per pair, UTF-8, '\\n' line ends on every platform."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{source}\t{target}\n" for source, target in pairs)


_FLAGS = flags.FlagValues()  # private, so importing this module adds no global flags
flags.DEFINE_string("out", None, "Folder for train.tsv and val.tsv.", flag_values=_FLAGS)


USAGE = "usage: python -m gpt_jax.tasks.dates --out=DIR"


def _main(argv: list[str]) -> None:
    if any(arg in ("--help", "-h") for arg in argv[1:]):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        return
    try:
        _FLAGS(argv)
    except flags.Error as e:
        raise UserError(str(e)) from None
    if _FLAGS.out == "":  # a variable that was not set, as every command says it
        raise UserError("--out is empty: give a path")
    if _FLAGS.out is None:
        raise UserError(f"--out is missing; {USAGE}")
    out = user_path(_FLAGS.out)  # ~ expanded, as for every path flag (bash leaves --out=~/x)
    try:
        out.mkdir(parents=True, exist_ok=True)
        train, val = generate()
        write_tsv(out / TRAIN_FILE, train)
        write_tsv(out / VAL_FILE, val)
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}") from None
    print(f"{len(train)} pairs → {out / TRAIN_FILE}, {len(val)} pairs → {out / VAL_FILE}")


def main() -> None:
    cli.run(lambda: _main(sys.argv))


if __name__ == "__main__":
    main()
