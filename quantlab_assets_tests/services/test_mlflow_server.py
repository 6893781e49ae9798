"""A training asset logs to the team's MLflow server; the client reads params, metrics and artifact back.

The lab's convention (docs/architecture.md): MLFLOW_TRACKING_URI names the tracking server;
docker-compose.yml sets it to the mlflow service.
"""

import json
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import Ridge

from quantlab_assets.defs.resources import MLFLOW_TRACKING_URI_ENV as TRACKING_URI_ENV

pytestmark = pytest.mark.services

ALPHA = 0.5


@dg.asset
def toy_ridge_model(context: dg.AssetExecutionContext) -> None:
    """Fits a ridge regression on seeded data and logs it to the tracking server (a training asset's shape)."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 3))
    target = features @ np.array([0.5, -0.2, 0.1]) + rng.normal(scale=0.1, size=200)
    model = Ridge(alpha=ALPHA).fit(features, target)
    mlflow.set_tracking_uri(dg.EnvVar(TRACKING_URI_ENV).get_value())
    mlflow.set_experiment("services-suite")
    with mlflow.start_run(run_name=context.run.run_id) as run:
        mlflow.log_params({"alpha": ALPHA, "n_samples": 200, "seed": 7})
        mlflow.log_metric("r2_in_sample", float(model.score(features, target)))
        mlflow.log_dict({"coefficients": model.coef_.round(6).tolist()}, "model/coefficients.json")
    context.add_output_metadata({"mlflow_run_id": run.info.run_id})


def test_a_training_asset_logs_to_the_server_and_the_client_reads_it_back(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(TRACKING_URI_ENV, mlflow_server)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([toy_ridge_model], instance=instance)
    assert result.success
    (materialisation,) = result.asset_materializations_for_node("toy_ridge_model")
    run_id = materialisation.metadata["mlflow_run_id"].value

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    assert run.data.params == {"alpha": str(ALPHA), "n_samples": "200", "seed": "7"}
    assert 0.8 < run.data.metrics["r2_in_sample"] <= 1.0
    assert run.info.run_name == result.run_id
    (folder,) = client.list_artifacts(run_id)
    assert [a.path for a in client.list_artifacts(run_id, folder.path)] == ["model/coefficients.json"]
    downloaded = Path(client.download_artifacts(run_id, "model/coefficients.json", str(tmp_path)))
    assert len(json.loads(downloaded.read_text())["coefficients"]) == 3
