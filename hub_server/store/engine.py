"""The two database engines behind the store: SQLite (the embedded default) and PostgreSQL (psycopg 3).

Store functions take a :class:`Connection` and write the SQL both engines share (``INSERT ... ON CONFLICT``,
``RETURNING``, ``COALESCE``, table-qualified columns in ``DO UPDATE``) plus three SQLite spellings that the
PostgreSQL connection rewrites (:func:`pg_sql`): ``?`` placeholders, ``INSERT OR IGNORE`` and the scalar
``MAX(a, b)``/``MIN(a, b)``. Where meaning differs, the connection writes the fragment
(:meth:`Connection.truncate`). Rows answer by index and by column name on both. Errors of either driver arrive as this module's classes, so nothing outside the store
imports a driver. psycopg is imported only when a PostgreSQL store is opened: the SQLite hub needs no extra.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class DatabaseError(Exception):
    """A statement failed in the database."""


class IntegrityError(DatabaseError):
    """A constraint refused the statement (unique, foreign key, check, not null)."""


class OperationalError(DatabaseError):
    """The database could not run the statement (locked, unreachable, missing table)."""


class MissingTable(OperationalError):
    """The statement names a table the database does not have."""


class ProgrammingError(RuntimeError):
    """The store was used wrongly (a connection from another thread): a bug, not a database condition."""


class Row(Protocol):
    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


def is_postgres(location: Path | str) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


class Connection(ABC):
    """One connection, used by one thread. Autocommit unless inside :meth:`begin` ... :meth:`commit`."""

    dialect: ClassVar[str]

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def begin(self) -> None:
        """Start a write transaction (SQLite: IMMEDIATE, so two writers queue instead of failing later)."""

    @abstractmethod
    def close(self) -> None: ...

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    @abstractmethod
    def dump(self) -> Iterator[str]:
        """Everything stored, as text (for checks that a secret or personal datum is nowhere)."""

    @staticmethod
    def truncate(expression: str) -> str:
        """SQL for the expression's integer part (toward zero), as an integer."""
        return f"CAST({expression} AS INTEGER)"

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Statements sent without waiting for each one's answer (PostgreSQL): one round trip for the lot. A
        cursor returned inside is read after the block; an error surfaces at its end at the latest."""
        yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that see one state of the database. Outside a transaction each statement sees what was
        committed when it started; several instances writing meanwhile (a shared PostgreSQL store), two reads
        of related tables may disagree. Inside a transaction: that transaction's own rules."""
        yield

    @contextmanager
    def savepoint(self, name: str = "attempt") -> Iterator[None]:
        """A statement that may fail without spoiling the surrounding transaction (PostgreSQL aborts a whole
        transaction on any error unless it is inside a savepoint)."""
        if not self.in_transaction:
            yield
            return
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        self.execute(f"RELEASE SAVEPOINT {name}")


@contextmanager
def transaction(conn: Connection) -> Iterator[None]:
    """One write transaction, rolled back on any error (a failed COMMIT too)."""
    conn.begin()
    try:
        yield
        conn.commit()
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


# --- SQLite ------------------------------------------------------------------------------------------------------


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.ProgrammingError as exc:
        raise ProgrammingError(str(exc)) from exc
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise MissingTable(str(exc)) from exc
        raise OperationalError(str(exc)) from exc
    except sqlite3.Error as exc:
        raise DatabaseError(str(exc)) from exc


class SqliteConnection(Connection):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _sqlite_errors():
            raw = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=True)
            raw.row_factory = sqlite3.Row
            raw.execute("PRAGMA journal_mode=WAL")  # readers never block the ingest writer
            raw.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoint, never corrupt
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute("PRAGMA busy_timeout=30000")
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        with _sqlite_errors():
            return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with _sqlite_errors():
            self.raw.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def begin(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def dump(self) -> Iterator[str]:
        return self.raw.iterdump()

    def close(self) -> None:
        self.raw.close()


# --- PostgreSQL --------------------------------------------------------------------------------------------------


class PgRow(tuple[Any, ...]):
    """A row that answers by index and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __new__(cls, values: Iterable[Any], index: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _plain(value: Any) -> Any:
    # SUM over integers is NUMERIC in PostgreSQL; the store's callers expect what SQLite gives.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _pg_row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    names = [column.name for column in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow((_plain(v) for v in values), index)

    return make


_TOKENS = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*|\?|%|\b(?:MAX|MIN)\s*\(|\(|\)|,", re.IGNORECASE)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)


@lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """SQLite's spellings in PostgreSQL's: ``?`` as ``%s`` (a literal ``%`` doubled), ``INSERT OR IGNORE`` as
    ``ON CONFLICT DO NOTHING``, scalar ``MAX``/``MIN`` (two or more arguments) as ``GREATEST``/``LEAST``.
    A ``?`` in quoted text or a comment is left alone."""
    tokens = [(m.start(), m.end(), m.group(0)) for m in _TOKENS.finditer(sql)]
    replace: dict[int, tuple[int, str]] = {}  # start -> (end, new text)
    stack: list[tuple[int, int, str, bool]] = []  # open parens: (start, end, function name or "", has comma)
    for start, end, text in tokens:
        upper = text.upper()
        if text == "?":
            replace[start] = (end, "%s")
        elif "%" in text:  # psycopg reads % everywhere, quoted text included
            replace[start] = (end, text.replace("%", "%%"))
        elif upper.startswith(("MAX", "MIN")) and text.endswith("("):
            stack.append((start, end, upper[:3], False))
        elif text == "(":
            stack.append((start, end, "", False))
        elif text == "," and stack:
            stack[-1] = (*stack[-1][:3], True)
        elif text == ")" and stack:
            open_start, open_end, name, scalar = stack.pop()
            if name and scalar:
                replace[open_start] = (open_end, "GREATEST(" if name == "MAX" else "LEAST(")
    out, at = [], 0
    for start in sorted(replace):
        end, text = replace[start]
        out += [sql[at:start], text]
        at = end
    out.append(sql[at:])
    translated = "".join(out)
    if _OR_IGNORE.match(translated):
        translated = _OR_IGNORE.sub("INSERT INTO", translated, count=1).rstrip().rstrip(";")
        returning = _RETURNING.search(translated)
        if returning:
            head, tail = translated[: returning.start()], translated[returning.start() :]
            translated = f"{head} ON CONFLICT DO NOTHING{tail}"
        else:
            translated += " ON CONFLICT DO NOTHING"
    return translated


def _pg_param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)  # flags are INTEGER columns on both engines; psycopg would send a boolean
    if isinstance(value, str) and "\x00" in value:
        # PostgreSQL text cannot hold NUL (SQLite's can): as U+FFFD, a hostile name is stored or looked up
        # as text that cannot match a real one, instead of failing the request.
        return value.replace("\x00", "\ufffd")
    return value


@lru_cache(maxsize=64)
def _pg_binary_sql(sql: str) -> str:
    return pg_sql(sql).replace("%s", "%b")  # the statement's only parameters are the arrays


def _pg_params(params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_pg_param(p) for p in params)


PG_ARRAY_TYPES = {"t": "TEXT", "i": "BIGINT", "f": "DOUBLE PRECISION"}
"""The letters of :func:`pg_columns` and the array element type each stands for."""


def _pg_float(value: Any) -> Any:
    # psycopg refuses a list mixing int and float; the column is DOUBLE PRECISION either way.
    return None if value is None else float(value)


_PG_COLUMN = {"t": _pg_param, "i": _pg_param, "f": _pg_float}


def pg_columns(rows: Sequence[Sequence[Any]], types: str) -> list[list[Any]]:
    """Rows as one list per column, the parameters of ``unnest(CAST(? AS TEXT[]), ...)``: many rows in one
    statement (PostgreSQL). ``types`` has a letter per column (``PG_ARRAY_TYPES``); values are made what
    ``_pg_param`` makes them."""
    return [list(map(_PG_COLUMN[kind], column)) for kind, column in zip(types, zip(*rows, strict=True), strict=True)]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())  # libpq's messages run over several lines (with a hint after a tab)


@contextmanager
def _pg_errors() -> Iterator[None]:
    import psycopg

    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise MissingTable(_one_line(exc)) from exc
    except psycopg.IntegrityError as exc:
        raise IntegrityError(_one_line(exc)) from exc
    except psycopg.OperationalError as exc:
        raise OperationalError(_one_line(exc)) from exc
    except psycopg.Error as exc:
        raise DatabaseError(_one_line(exc)) from exc


class PostgresConnection(Connection):
    dialect = "postgresql"

    def __init__(self, url: str, *, any_thread: bool = False, **options: Any) -> None:
        """``any_thread``: the caller serialises use from several threads itself (a lock), as
        ``singleton.Singleton`` does with its dedicated connection. ``options``: further libpq parameters
        (``keepalives_idle``, ...)."""
        try:
            import psycopg
        except ImportError as exc:
            raise OperationalError(
                "a PostgreSQL store needs psycopg: pip install 'neighbourhood-hub[postgresql]'"
            ) from exc
        with _pg_errors():
            self.raw = psycopg.connect(url, autocommit=True, row_factory=_pg_row_factory, connect_timeout=10, **options)
            self.raw.execute("SET TIME ZONE 'UTC'")
        self._thread = None if any_thread else threading.get_ident()

    def _check_thread(self) -> None:
        # As sqlite3's check_same_thread: one connection per thread is the store's rule on both engines.
        if self._thread is not None and threading.get_ident() != self._thread:
            raise ProgrammingError("a store connection made in one thread was used in another")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._check_thread()
        with _pg_errors():
            if not params:
                return self.raw.execute(sql)  # no parameters: no placeholder parsing (a migration's % stays)
            cursor: Cursor = self.raw.execute(pg_sql(sql), _pg_params(params))
            return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._check_thread()
        with _pg_errors(), self.raw.cursor() as cursor:
            cursor.executemany(pg_sql(sql), [_pg_params(row) for row in rows])

    def execute_columns(self, sql: str, rows: Sequence[Sequence[Any]], types: str) -> None:
        """Many rows in one statement: ``sql`` takes one array per column (``unnest(CAST(? AS TEXT[]), ...)``),
        ``types`` a letter per column (``pg_columns``). Sent binary: psycopg escapes an array's text form one
        element at a time, costlier than the round trip per row it saves."""
        self._check_thread()
        with _pg_errors():
            self.raw.execute(_pg_binary_sql(sql), pg_columns(rows, types))

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        self._check_thread()
        with _pg_errors(), self.raw.pipeline():
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if self.in_transaction:
            yield
            return
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield
        finally:
            if self.in_transaction:
                self.rollback()  # read only: nothing to keep

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def begin(self) -> None:
        self.execute("BEGIN")

    def dump(self) -> Iterator[str]:
        tables = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
        for (table,) in tables:
            for row in self.execute(f'SELECT * FROM "{table}"').fetchall():  # noqa: S608 - names from the catalogue
                yield f"{table}: {tuple(row)!r}"

    def close(self) -> None:
        self.raw.close()

    @staticmethod
    def truncate(expression: str) -> str:
        return f"CAST(TRUNC({expression}) AS BIGINT)"  # CAST alone rounds on PostgreSQL


def connect(location: Path | str) -> Connection:
    """A new connection to the store at ``location``: a SQLite file path or a ``postgresql://`` URL."""
    if is_postgres(location):
        return PostgresConnection(str(location))
    return SqliteConnection(Path(location))
