"""Writing many rows of one table fast: what accepting a 50,000-request batch needs.

The ORM's bulk insert costs ~80 µs a row here (every value goes through its type's bind
processing, and executemany re-reads each parameter set); a batch of 50,000 then takes
seconds. This writes through the driver instead: values shared by every row are
processed once, per-row values by the column type's own processor (only where the type
has one, and never for columns the caller hands in already bound), and PostgreSQL gets
one COPY per chunk. SQLite gets one statement per chunk too, its rows as one JSON array
read by ``json_each``: executemany binds each row in Python and gives up and takes back
the GIL once a row, which starves a thread checking the next requests meanwhile (and
costs more). Rows come in chunks, so a caller validating a stream of requests never holds
more than a chunk of them.
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
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(
                f"COPY {self.table.name} ({', '.join(self.names)}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row + self.tail)
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

    def _process(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index, process in self.processors:
            values[index] = process(values[index])
        return tuple(values)


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
