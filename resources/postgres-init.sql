-- Runs once when the PostgreSQL volume is created: MLflow keeps its tracking store beside Dagster's.
CREATE DATABASE mlflow OWNER quantlab;
