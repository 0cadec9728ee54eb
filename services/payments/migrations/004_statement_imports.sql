-- The last statement (or Fio fetch) imported per account of ours, empty ones included
-- (bank_statement.imported.v1), for the overdue-import alert.
CREATE TABLE statement_imports (
    account     text        PRIMARY KEY,
    imported_at timestamptz NOT NULL,
    file        text,
    movements   integer     NOT NULL
);
