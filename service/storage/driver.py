"""The event path's statements, run on the database driver's own cursor.

Statements stay SQLAlchemy Core (one definition for both databases); each is compiled
once per dialect, with its bind and result processors, and then run without SQLAlchemy's
per-execution machinery, which cost more than SQLite took to run the statement. On
PostgreSQL a group of statements goes out as one text: one round trip instead of one
per statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any] | None
Params = Mapping[str, Any]
Row = tuple[Any, ...]
POSTCOMPILE = "__[POSTCOMPILE_{}]"


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # parameter order (positional drivers)
    positional: bool
    binds: dict[str, Processor]
    result_types: tuple[Any, ...]
    lists: tuple[str, ...]  # expanding IN parameters
    dialect: Dialect
    # Result processors by the driver's column type codes (PostgreSQL's numeric
    # processor depends on the column's type oid).
    results: dict[tuple[Any, ...], tuple[Processor, ...]]

    def render(self, params: Params) -> tuple[str, Any]:
        sql = self.sql
        for name in self.lists:
            count = len(params[name])
            if count == 0:
                raise ValueError(f"{name}: an IN list needs at least one value")
            token = POSTCOMPILE.format(name)
            marks = [f"%({name}_{i})s" if not self.positional else "?" for i in range(count)]
            sql = sql.replace(token, ", ".join(marks))
        if self.positional:
            values: list[Any] = []
            for name in self.names:
                value = params[name]
                if name in self.lists:
                    values.extend(self._bound(name, v) for v in value)
                else:
                    values.append(self._bound(name, value))
            return sql, values
        named: dict[str, Any] = {}
        for name, value in params.items():
            if name in self.lists:
                for i, item in enumerate(value):
                    named[f"{name}_{i}"] = self._bound(name, item)
            else:
                named[name] = self._bound(name, value)
        return sql, named

    def _bound(self, name: str, value: Any) -> Any:
        processor = self.binds.get(name)
        return processor(value) if processor is not None and value is not None else value

    def rows(self, description: Sequence[Any], raw: Sequence[Row]) -> list[Row]:
        codes = tuple(column[1] for column in description)
        processors = self.results.get(codes)
        if processors is None:
            processors = tuple(
                kind._cached_result_processor(self.dialect, code)
                for kind, code in zip(self.result_types, codes, strict=True)
            )
            self.results[codes] = processors
        if not any(processors):
            return [tuple(row) for row in raw]
        return [
            tuple(p(v) if p is not None else v for p, v in zip(processors, row, strict=True))
            for row in raw
        ]


class Statement:
    """A Core statement compiled lazily for each dialect (and each set of inserted
    columns), cached for the life of the process. ``statement`` is the statement, or a
    function of the dialect's name giving it (upserts are written per dialect)."""

    def __init__(self, statement: ClauseElement | Callable[[str], ClauseElement]) -> None:
        self._statement = statement
        self._built: dict[str, ClauseElement] = {}
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def for_dialect(self, name: str) -> ClauseElement:
        if isinstance(self._statement, ClauseElement):
            return self._statement
        built = self._built.get(name)
        if built is None:
            built = self._built[name] = self._statement(name)
        return built

    def compiled(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        found = self._compiled.get((dialect.name, keys))
        if found is None:
            found = self._compile(dialect, keys)
            self._compiled[(dialect.name, keys)] = found
        return found

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        statement = self.for_dialect(dialect.name)
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
        binds = dict(compiled._bind_processors)
        lists = tuple(name for name, bind in compiled.binds.items() if bind.expanding)
        for name in lists:
            element_type = compiled.binds[name].type
            binds[name] = element_type._cached_bind_processor(dialect)
        return _Compiled(
            compiled.string,
            tuple(compiled.positiontup or ()),
            dialect.paramstyle == "qmark",
            binds,
            tuple(column[3] for column in compiled._result_columns),
            lists,
            dialect,
            {},
        )


class Driver:
    """Runs Statements on the driver connection under an open SQLAlchemy transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._dialect = connection.dialect
        self._raw: Any = None
        self.joins = self._dialect.name == "postgresql"

    @property
    def raw(self) -> Any:
        if self._raw is None:
            self._raw = self._connection.connection.driver_connection
        return self._raw

    def fetch(self, statement: Statement, params: Params) -> list[Row]:
        return self.fetch_all([(statement, params)])[0]

    def execute(self, statement: Statement, params: Params) -> None:
        self.fetch_all([(statement, params)], want_rows=False)

    def fetch_all(
        self, batch: Sequence[tuple[Statement, Params]], *, want_rows: bool = True
    ) -> list[list[Row]]:
        """Run the statements in order; on PostgreSQL as one multi-statement query (one
        round trip). Errors are SQLAlchemy's (IntegrityError for a unique key, ...), as
        Connection.execute raises them."""
        prepared = []
        for statement, params in batch:
            compiled = statement.compiled(self._dialect, self._keys(statement, params))
            prepared.append((compiled, *compiled.render(params)))
        dbapi = self._dialect.loaded_dbapi
        try:
            if self.joins:
                return self._joined(prepared, want_rows)
            return self._one_by_one(prepared, want_rows)
        except dbapi.Error as error:
            # As Connection.execute would: SQLAlchemy's exception classes, and a connection
            # found dead is invalidated (closed), not pooled again.
            lost = self._dialect.is_disconnect(error, self._connection.connection, None)
            if lost:
                self._connection.invalidate(error)
            raise DBAPIError.instance(
                f"{len(prepared)} statements of the event path",
                None,
                error,
                dbapi.Error,
                connection_invalidated=lost,
                dialect=self._dialect,
            ) from error

    def _one_by_one(
        self, prepared: list[tuple[_Compiled, str, Any]], want_rows: bool
    ) -> list[list[Row]]:
        answers = []
        cursor = self.raw.cursor()
        try:
            for compiled, sql, values in prepared:
                cursor.execute(sql, values)
                if want_rows:
                    description = cursor.description
                    rows = cursor.fetchall() if description is not None else []
                    answers.append(compiled.rows(description, rows) if rows else [])
        finally:
            cursor.close()
        return answers

    def _joined(
        self, prepared: list[tuple[_Compiled, str, Any]], want_rows: bool
    ) -> list[list[Row]]:
        # psycopg's pipeline mode would also make one round trip, but it polls the socket
        # for writing while it waits, spinning a core; one text of several statements,
        # with values quoted by libpq on the client, waits like any query.
        cursor = self._client_cursor()
        try:
            text = ";\n".join(cursor.mogrify(sql, values) for _c, sql, values in prepared)
            cursor.execute(text.encode(), prepare=False)
            if not want_rows:
                return []
            answers = []
            for compiled, _sql, _values in prepared:
                description = cursor.description
                rows = cursor.fetchall() if description is not None else []
                answers.append(compiled.rows(description, rows) if rows else [])
                cursor.nextset()
            return answers
        finally:
            cursor.close()

    def _client_cursor(self) -> Any:
        import psycopg

        return psycopg.ClientCursor(self.raw)

    def _keys(self, statement: Statement, params: Params) -> tuple[str, ...]:
        # Inserts compile for the columns given; other statements bind their own parameters.
        clause = statement.for_dialect(self._dialect.name)
        return tuple(params) if getattr(clause, "is_insert", False) else ()
