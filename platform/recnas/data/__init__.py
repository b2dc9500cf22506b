"""Datasets: raw files in, Parquet splits and batches out.

The path of a row, module by module:

- ``readers/``: what each dataset's raw files look like (criteo, avazu,
  kdd2012, movielens) and how a parsed row becomes staged columns;
- ``textio``, ``fields``: byte-range chunks, blocks of lines, strict typed
  parsing with a reason for every rejected row;
- ``protocols``: the train/val/test split of every row (``autoctr_811``,
  ``random``, ``time``);
- ``vocab``: raw values to table ids (train vocabulary or modulo hashing);
- ``ingest``, ``passes``: the two passes over chunks (the driver and the
  per-chunk tasks), on Ray or threads, resumable;
- ``meta``: ``meta.json``, the record of a processed dataset;
- ``loader``: Parquet splits to ``features.Batch`` es for each worker;
- ``synth``: synthetic raw files with a real schema, for scale tests;
- ``storage``: local paths and ``s3://`` URIs;
- ``commands``: the ``recnas data`` commands.
"""
