"""Datasets: raw readers, ingest to Parquet splits, vocabularies, the loader."""
