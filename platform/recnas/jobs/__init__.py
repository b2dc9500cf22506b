"""Job specs, the pipeline stages and cluster submission."""
