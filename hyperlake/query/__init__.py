"""The read side: DuckDB views over the lake (``catalog``), polars and Arrow loaders
(``loaders``), query results in a format (``sql_output``) and CSV export
(``export_csv``). Everything here only reads the lake; atomic writes are for the
files a user asks for."""
