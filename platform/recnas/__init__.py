"""recnas: neural architecture search for click-through-rate models on Ray.

The package follows the pipeline: ``data`` turns raw files into Parquet splits,
``space`` describes architectures, ``models`` builds them, ``train`` trains them
on Ray Train, ``search`` explores the space with Ray Tune, ``tracking`` records
everything in MLflow and ``jobs`` chains the stages behind the ``recnas`` CLI.
"""

__version__ = "0.1.0"
