"""Open a study's storage: SQLite in the sweep directory, or any SQLAlchemy URL shared by many workers.

Workers that start together on a fresh PostgreSQL database race to create Optuna's tables: each
checks that a table is missing, then creates it, and the slower one fails on a duplicate key
(found by tests/test_sweep_postgres.py). Such an error means another worker got there first, so the
open is tried again, when the tables exist. Any other failure (a bad URL, a missing driver, a server
that does not answer) is the user's to fix, in one line with the password hidden.

The heartbeat: a running trial writes one every HEARTBEAT_S seconds; one silent for three is a dead
worker's (on any machine) and is retried. `$TINYLM_SWEEP_HEARTBEAT_S` changes it (tests shorten it).
"""

from __future__ import annotations

import os
import re
import time
import warnings

from tinylm.errors import UserError
from tinylm.optional import require

optuna = require("optuna", "tinylm sweep")

HEARTBEAT_S = 20
HEARTBEAT_ENV = "TINYLM_SWEEP_HEARTBEAT_S"  # every worker of a study should use the same value
OPEN_TRIES = 4


def heartbeat_s() -> int:
    """HEARTBEAT_S, or $TINYLM_SWEEP_HEARTBEAT_S (whole seconds, as Optuna's storage takes them)."""
    text = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not text:
        return HEARTBEAT_S
    if not text.isdigit() or not 1 <= int(text) <= 3600:
        raise UserError(f"{HEARTBEAT_ENV}={text!r}: give whole seconds from 1 to 3600, or unset it "
                        f"(default {HEARTBEAT_S})")
    return int(text)


def open_storage_study(url: str, study_name: str, sampler=None, pruner=None) -> optuna.Study:
    """Create or load `study_name` in the storage at `url` (minimising), with the heartbeat set."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError  # optuna's own dependency

    beat = heartbeat_s()
    kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgres") else {}
    for attempt in range(OPEN_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=beat,
                                                 grace_period=3 * beat)
            return optuna.create_study(study_name=study_name, storage=rdb, sampler=sampler, pruner=pruner,
                                       direction="minimize", load_if_exists=True)
        except (IntegrityError, ProgrammingError) as e:  # another worker was creating the tables
            if attempt + 1 < OPEN_TRIES and _created_meanwhile(e):
                time.sleep(0.5 * (attempt + 1))
                continue
            raise _cannot_open(url, e) from None
        except Exception as e:  # sqlalchemy's errors, a missing driver, a bad URL: all the user's to fix
            raise _cannot_open(url, e) from None
    raise AssertionError("unreachable")


def _created_meanwhile(e: Exception) -> bool:
    text = str(e).lower()
    return "duplicate key" in text or "already exists" in text or "unique constraint" in text


def _cannot_open(url: str, e: Exception) -> UserError:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if url.startswith("postgres") and _missing_module(e):
        return UserError(f"cannot open study storage {hide_password(url)}: its driver is not installed "
                         f"({_missing_module(e)}); install it with: pip install 'tinylm[postgres]'")
    return UserError(f"cannot open study storage {hide_password(url)} ({reason[:200]}): give --storage as "
                     "sqlite:///PATH.db or postgresql://USER:PASS@HOST/DB with its driver installed")


def _missing_module(e: BaseException | None) -> str | None:
    """The module whose import failed somewhere in `e`'s chain (Optuna re-raises SQLAlchemy's ImportError)."""
    while e is not None:
        if isinstance(e, ModuleNotFoundError) and e.name:
            return e.name
        e = e.__cause__ or e.__context__
    return None


def hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
