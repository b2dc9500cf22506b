"""The MLflow adapter: the only code that imports mlflow."""
