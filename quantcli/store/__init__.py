"""The versioned Parquet dataset store."""
