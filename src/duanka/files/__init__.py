"""Reading posts from CSV, JSONL and Parquet files, row by row, with errors that name the row."""
