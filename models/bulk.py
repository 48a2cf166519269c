"""Writing many rows of one table fast: what accepting a 50,000-request batch needs.

The ORM's bulk insert costs ~80 µs a row here (every value goes through its type's bind
processing, and executemany re-reads each parameter set); a batch of 50,000 then takes
seconds. This writes through the driver instead: values shared by every row are
processed once, per-row values by the column type's own processor (only where the type
has one, and never for columns the caller hands in already bound). PostgreSQL gets one
binary COPY for all the chunks (see ``_CopyStream``). SQLite gets one statement per chunk,
its rows as one JSON array read by ``json_each``: executemany binds each row in Python
and gives up and takes back the GIL once a row, which starves a thread checking the next
requests meanwhile (and costs more). Rows come in chunks, so a caller validating a
stream of requests never holds more than a chunk of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.orm import Session


def _default(column: Column[Any]) -> Any:
    default = column.default
    if default is None:
        return None
    arg = getattr(default, "arg", None)
    return arg(None) if callable(arg) else arg


class RowWriter:
    """Inserts rows of one table, chunk by chunk, within the session's transaction.

    ``varying`` names the columns each row gives, in the order of its tuple; ``constants``
    holds values every row shares; any other column takes its Python-side default (an
    autoincrement primary key is left to the database). Columns named in ``bound`` are
    given as the driver takes them (a JSON column as its text, say).
    """

    def __init__(
        self,
        session: Session,
        table: Table,
        varying: Sequence[str],
        constants: Mapping[str, Any],
        bound: Collection[str] = (),
    ) -> None:
        self.session = session
        self.table = table
        self.bound = frozenset(bound)
        self.stream: _CopyStream | None = None
        dialect = session.connection().dialect
        self.postgres = dialect.name == "postgresql"
        columns = [c for c in table.columns if not (c.primary_key and c.autoincrement)]
        by_name = {c.name: c for c in columns}
        self.processors: list[tuple[int, Callable[[Any], Any]]] = []
        for index, name in enumerate(varying):
            process = by_name[name].type._cached_bind_processor(dialect)
            if process is not None and name not in bound:
                self.processors.append((index, process))
        shared: dict[str, Any] = {}
        for column in columns:
            if column.name in varying:
                continue
            value = constants[column.name] if column.name in constants else _default(column)
            if value is None and column.nullable and column.server_default is None:
                continue  # the database writes NULL: one parameter fewer per row
            process = column.type._cached_bind_processor(dialect)
            shared[column.name] = process(value) if process else value
        self.names = [*varying, *shared]
        self.tail = tuple(shared.values())
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(self.names)})"
            f" VALUES ({', '.join([mark] * len(self.names))})"
        )
        # SQLite: the rows as one JSON array of arrays, the shared values bound once.
        self.json_sql = ""
        if dialect.name == "sqlite":
            picks = [f"json_extract(value, '$[{i}]')" for i in range(len(varying))]
            self.json_sql = (
                f"INSERT INTO {table.name} ({', '.join(self.names)})"
                f" SELECT {', '.join([*picks, *['?'] * len(shared)])} FROM json_each(?)"
            )

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert one chunk of rows."""
        if not rows:
            return
        if self.processors:
            rows = [self._process(row) for row in rows]
        connection = self.session.connection()
        if self.postgres:
            if self.stream is None:
                dbapi = connection.connection.dbapi_connection
                self.stream = _CopyStream(dbapi, self.table.name, self.names, self.bound)
            self.stream.write(rows, self.tail)
            return
        if self.json_sql:
            try:
                array = _ROWS_ENCODER.encode(rows)
            except (TypeError, ValueError):
                pass  # a value JSON does not carry as it is (bytes, NaN): bound row by row
            else:
                connection.exec_driver_sql(self.json_sql, (*self.tail, array))
                return
        tail = self.tail
        connection.exec_driver_sql(self.sql, [row + tail for row in rows])

    def close(self, error: BaseException | None = None) -> None:
        """End the writing (PostgreSQL: the COPY, which reports its rows' errors here); with
        ``error``, abandon it instead (the caller's transaction then rolls back)."""
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close(error)

    def _process(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index, process in self.processors:
            values[index] = process(values[index])
        return tuple(values)


class _CopyStream:
    """One binary COPY for every chunk of a PostgreSQL write: the server stores rows while
    the next ones are checked, instead of stopping at the end of each chunk's COPY. Binary,
    so the server parses no numbers or timestamps; columns given as JSON text go as text
    (a json value's binary form is its text)."""

    def __init__(self, dbapi: Any, table: str, names: Sequence[str], bound: Collection[str]):
        self.cursor = dbapi.cursor()
        columns = ", ".join(names)
        self.cursor.execute(f"SELECT {columns} FROM {table} WHERE false")
        types = [
            _TEXT_OID if name in bound and column.type_code == _JSON_OID else column.type_code
            for name, column in zip(names, self.cursor.description, strict=True)
        ]
        self.manager = self.cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)")
        self.copy = self.manager.__enter__()
        self.copy.set_types(types)

    def write(self, rows: Sequence[tuple[Any, ...]], tail: tuple[Any, ...]) -> None:
        try:
            for row in rows:
                self.copy.write_row(row + tail)
        except BaseException as exc:
            self.close(exc)
            raise

    def close(self, error: BaseException | None) -> None:
        if error is None:
            self.manager.__exit__(None, None, None)
        else:
            self.manager.__exit__(type(error), error, error.__traceback__)
        self.cursor.close()


_JSON_OID = 114
_TEXT_OID = 25
# Text as it is (SQLite reads UTF-8); NaN is no JSON for SQLite: refused, not guessed at.
_ROWS_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def insert_rows(
    session: Session,
    table: Table,
    constants: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert ``rows`` (mappings of column name to value) into ``table`` at once."""
    if not rows:
        return
    varying = list(rows[0])
    writer = RowWriter(session, table, varying, constants)
    writer.write([tuple(row[name] for name in varying) for row in rows])
    writer.close()
