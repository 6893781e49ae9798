"""Seed 000's invariant deep-hedging study: environments, policies (ERM, head-only IRM, V-REx),
the scorecard with its files and MLflow runs, and the figures. Plain logic in compute/hedging/.

hedging_environments[e] -> hedge_policy[method_strength_seedN] (low, medium, high only) ->
hedging_scorecard[preset] (every stored policy of the preset on every environment) -> hedging_figures[preset].
An irm_head policy starts from the stored erm policy of its seed. That is read from storage, not as an
input: Dagster allows an asset to depend on its own partitions only along a time dimension
("Asset depends on itself" for a static mapping, measured on 1.13.27); materialise erm_0_seedN first.
"""

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from quantlab_assets.compute.hedging.config import (
    ERM,
    HOLDOUT,
    IRM_HEAD,
    TRAIN,
    VALIDATION,
    HedgingConfig,
    parse_policy_key,
    policy_key,
)
from quantlab_assets.compute.hedging.environments import environment_frame, paths_from_frame, simulate_environment
from quantlab_assets.compute.models.tracking import log_model_run
from quantlab_assets.compute.schemas.base import empty_frame, schema_failures, validate
from quantlab_assets.compute.schemas.hedging import HedgePolicySchema, HedgingMetricsSchema, HedgingPathsSchema
from quantlab_assets.compute.storage import StorageLayout, read_parquet_file
from quantlab_assets.defs.checks import Outputs, outputs_then_checks
from quantlab_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from quantlab_assets.defs.groups import HEDGING
from quantlab_assets.defs.io_managers import (
    KeyedFrames,
    MissingUpstreamPartitionError,
    PartitionedParquetIOManager,
    optional_input,
)
from quantlab_assets.defs.partitions import (
    hedge_policy_partitions,
    hedging_environment_partitions,
    hedging_policies_of_study,
    hedging_study_partitions,
    hedging_training_environments,
)
from quantlab_assets.defs.resources import HedgingStudyResource, MlflowTrackingResource, TorchDeviceResource

# torch (policies, training, evaluation) and matplotlib (figures) are imported in the functions that use them:
# every Dagster run process imports all the definitions, and torch alone takes about 1.5 s to import.
if TYPE_CHECKING:
    from quantlab_assets.compute.hedging.training import TrainedPolicy

GROUP = HEDGING
EXPERIMENT = "quantlab_hedging"


@dg.asset(partitions_def=hedging_environment_partitions, group_name=GROUP, backfill_policy=dg.BackfillPolicy.single_run(),
          kinds={"numpy"})
def hedging_environments(context: dg.AssetExecutionContext, hedging_study: HedgingStudyResource) -> KeyedFrames:
    """Seeded spot paths and cost rates of each environment of the run (low / medium / high vol, crisis, stress)."""
    config, frames, summary = hedging_study.config(), {}, {}
    for name in context.partition_keys:
        paths = simulate_environment(config, name)
        frames[name] = validate(HedgingPathsSchema, environment_frame(paths), asset="hedging_environments", partition=name)
        summary[name] = {"paths": paths.n_paths, "premium": round(paths.premium, 6), "fingerprint": paths.fingerprint(),
                         "squeezed_steps": int((paths.cost_rate > config.cost_rate).sum())}
    context.add_output_metadata({"environments": dg.MetadataValue.json(summary)})
    return frames


def _policy_row(key: str, trained: "TrainedPolicy", config_hash: str) -> pl.DataFrame:
    from quantlab_assets.compute.hedging.training import sha

    method, strength, seed = parse_policy_key(key)
    return pl.DataFrame([{
        "policy": key, "method": method, "strength": strength, "seed": seed, "state": trained.state,
        "state_sha": sha(trained.state), "erm_state_sha": trained.erm_state_sha, "best_iteration": trained.best_iteration,
        "validation_cvar": trained.validation_cvar, "seen_environments": json.dumps(trained.seen, sort_keys=True),
        "history": json.dumps(trained.history.to_dicts()), "config_hash": config_hash,
    }], schema=empty_frame(HedgePolicySchema).schema)


def stored_erm_policy(layout: StorageLayout, seed: int) -> bytes:
    """The state of hedge_policy[erm_0_seedN] as the IO manager stored it (an earlier partition of hedge_policy)."""
    key = policy_key(ERM, 0.0, seed)
    path = layout.partition_file("hedge_policy", key)
    if not path.exists():
        raise MissingUpstreamPartitionError(f"irm_head trains the head of the ERM policy of seed {seed}: input "
                                            f"hedge_policy [{key}] is not materialised: materialise hedge_policy [{key}] first")
    return read_parquet_file(path)["state"][0]


@dg.asset(
    kinds={"torch"},
    partitions_def=hedge_policy_partitions,
    group_name=GROUP,
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"hedging_environments": dg.AssetIn(partition_mapping=hedging_training_environments)},
    check_specs=[dg.AssetCheckSpec("hedge_policy_crisis_unseen", asset="hedge_policy", blocking=True,
                                   description="Schema; only low, medium (training) and high (selection) reached the policy.")],
)
def hedge_policy(
    context: dg.AssetExecutionContext,
    hedging_environments: KeyedFrames,
    hedging_study: HedgingStudyResource,
    torch_device: TorchDeviceResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Train each policy of the run (method x strength x seed) on low + medium, checkpoint chosen on high;
    a run's erm policies train first, so one run can hold a whole seed."""
    from quantlab_assets.compute.hedging.training import train_policy

    config = hedging_study.config()
    paths = {name: paths_from_frame(frame) for name, frame in hedging_environments.items()}
    device = torch_device.choice()
    rows: KeyedFrames = {}
    problems = []
    for key in sorted(context.partition_keys, key=lambda k: parse_policy_key(k)[0] != ERM):
        method, strength, seed = parse_policy_key(key)
        erm_key = policy_key(ERM, 0.0, seed)
        erm_state = None
        if method == IRM_HEAD:
            erm_state = rows[erm_key]["state"][0] if erm_key in rows else stored_erm_policy(io_manager.layout, seed)
        context.log.info(f"training {key} on {device.describe()} with {sorted(paths)}")
        trained = train_policy(config, method, strength, seed, {n: paths[n] for n in TRAIN}, paths[VALIDATION],
                               device.device, erm_state)
        rows[key] = _policy_row(key, trained, config.hash())
        problems += [p for p in [schema_failures(HedgePolicySchema, rows[key], asset="hedge_policy", partition=key)] if p]
        if set(trained.seen) != {*TRAIN, VALIDATION} or set(paths) & set(HOLDOUT):
            problems.append(f"{key}: environments that reached training or selection: {sorted(set(trained.seen) | set(paths))}")
    summary = {key: {"best_iteration": row["best_iteration"][0], "validation_cvar": round(row["validation_cvar"][0], 6),
                     "state_sha": row["state_sha"][0], "erm_state_sha": row["erm_state_sha"][0]} for key, row in rows.items()}
    check = dg.AssetCheckResult(check_name="hedge_policy_crisis_unseen", passed=not problems,
                                metadata={"problems": "\n".join(problems) or "none", "environments_read": sorted(paths)})

    def outputs() -> Outputs:
        yield dg.Output(rows, metadata={"device": dg.MetadataValue.json(device.describe()), "config_hash": config.hash(),
                                        "policies": dg.MetadataValue.json(summary)})
    yield from outputs_then_checks(outputs, check)


def seen_data_problems(policies: KeyedFrames, fingerprints: dict[str, str]) -> list[str]:
    """Policies not trained on the stored low/medium/high data, or that saw a held-out fingerprint."""
    held_out = {fingerprints[n] for n in HOLDOUT if n in fingerprints}
    problems = []
    for key, frame in policies.items():
        seen = json.loads(frame["seen_environments"][0])
        if set(seen) != {*TRAIN, VALIDATION} or set(seen.values()) & held_out:
            problems.append(f"{key} saw {sorted(seen)}")
        stale = [n for n, fp in seen.items() if fingerprints.get(n) not in (None, fp)]
        if stale:
            problems.append(f"{key} was trained on other data than the stored {stale}: re-materialise it")
    return problems


def frozen_extractor_problems(policies: KeyedFrames, config: HedgingConfig) -> list[str]:
    """irm_head policies whose extractor differs (bit for bit) from the stored ERM of the same seed."""
    import torch
    
    from quantlab_assets.compute.hedging.policy import load_policy

    problems = []
    for key, frame in policies.items():
        method, _, seed = parse_policy_key(key)
        erm = policies.get(policy_key(ERM, 0.0, seed))
        if method != IRM_HEAD:
            continue
        if erm is None or frame["erm_state_sha"][0] != erm["state_sha"][0]:
            problems.append(f"{key}: started from an ERM state that is not the stored erm policy of seed {seed}")
            continue
        head_only = load_policy(config, frame["state"][0]).extractor.state_dict()
        baseline = load_policy(config, erm["state"][0]).extractor.state_dict()
        if any(not torch.equal(head_only[n], baseline[n]) for n in baseline):
            problems.append(f"{key}: extractor differs from the ERM extractor")
    return problems


@dg.asset(
    kinds={"torch"},
    partitions_def=hedging_study_partitions,
    group_name=GROUP,
    # Optional inputs: the policies and environments of the preset that are stored (a study evaluates what
    # was trained; its checks name a policy trained under another configuration).
    ins={"hedge_policy": optional_input(partition_mapping=hedging_policies_of_study),
         "hedging_environments": optional_input(partition_mapping=dg.AllPartitionMapping())},
    check_specs=[
        dg.AssetCheckSpec("hedging_scorecard_finite", asset="hedging_scorecard", blocking=True,
                          description="Schema; CVaR, mean P&L and turnover finite for every policy x environment."),
        dg.AssetCheckSpec("hedging_scorecard_crisis_unseen", asset="hedging_scorecard", blocking=True,
                          description="Every policy was trained under this configuration, on the stored low/medium/high data only."),
        dg.AssetCheckSpec("hedging_scorecard_extractor_frozen", asset="hedging_scorecard", blocking=True,
                          description="Every irm_head extractor equals its seed's stored ERM extractor bit for bit."),
    ],
)
def hedging_scorecard(
    context: dg.AssetExecutionContext,
    hedge_policy: KeyedFrames,
    hedging_environments: KeyedFrames,
    hedging_study: HedgingStudyResource,
    torch_device: TorchDeviceResource,
    mlflow: MlflowTrackingResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Every stored policy of the preset (the partition) on every environment; the success criterion across
    seeds; study files and MLflow runs."""
    from quantlab_assets.compute.hedging.evaluation import diagnostics, evaluate_policies, success_table
    from quantlab_assets.compute.hedging.study_files import run_metadata, write_study_files

    preset = context.partition_key
    config = hedging_study.config(preset)
    # A policy trained under another configuration (network size, paths, ...) is not comparable: the
    # check below names it, and it is left out of the evaluation.
    policies = {k: f for k, f in hedge_policy.items() if f["config_hash"][0] == config.hash()}
    other_config = [f"{k} was trained under config {f['config_hash'][0]}, not {config.hash()}: re-materialise it"
                    for k, f in hedge_policy.items() if k not in policies]
    environments = {k: paths_from_frame(f) for k, f in hedging_environments.items()}
    fingerprints = {name: paths.fingerprint() for name, paths in environments.items()}
    device = torch_device.choice()
    metrics = evaluate_policies({k: f["state"][0] for k, f in policies.items()}, environments, config, device.device)
    diagnostic, success = diagnostics(metrics), success_table(metrics, config)
    metadata = run_metadata(config, fingerprints, device.describe())
    files = write_study_files(io_manager.layout.hedging_study_folder(preset), metrics, diagnostic, success, metadata)
    mlflow.ensure_store()
    run_ids = {key: log_model_run(
        mlflow.uri(), EXPERIMENT, f"hedge_policy|{key}",
        config={"policy": key, "config_hash": config.hash(), **fingerprints, **device.describe()},
        metrics={f"{row['environment']}.{name}": row[name] for row in metrics.filter(pl.col("policy") == key).to_dicts()
                 for name in ("cvar95", "mean_pnl", "turnover", "sharpe", "msi")},
        frames={"history": pl.DataFrame(json.loads(frame["history"][0]))}, artifact_root=mlflow.artifact_root(),
    ) for key, frame in policies.items()}

    finite = [p for p in [schema_failures(HedgingMetricsSchema, metrics, asset="hedging_scorecard", partition=preset)] if p]
    bad = metrics.filter(~pl.all_horizontal(pl.col(n).is_finite() for n in ("cvar95", "mean_pnl", "turnover")))
    finite += [f"{r['policy']} on {r['environment']}: not finite" for r in bad.to_dicts()]
    if missing := sorted(set(hedging_environments) - set(environments)):
        finite.append(f"environments not materialised: {missing}")
    checks = [
        dg.AssetCheckResult(check_name=name, passed=not problems, metadata={"problems": "\n".join(problems) or "none"})
        for name, problems in (("hedging_scorecard_finite", finite),
                               ("hedging_scorecard_crisis_unseen", other_config + seen_data_problems(policies, fingerprints)),
                               ("hedging_scorecard_extractor_frozen", frozen_extractor_problems(policies, config)))
    ]

    def outputs() -> Outputs:
        crisis = metrics.filter(pl.col("environment") == "crisis").select("policy", "cvar95", "turnover", "mean_pnl")
        yield dg.Output({preset: metrics}, metadata={
            "policies": len(policies), "config_hash": config.hash(),
            "success": dg.MetadataValue.json(success.with_columns(pl.selectors.float().round(4)).to_dicts()),
            "crisis": dg.MetadataValue.json(crisis.with_columns(pl.selectors.float().round(4)).to_dicts()),
            **{name: dg.MetadataValue.path(str(path)) for name, path in files.items()},
            "mlflow_run_ids": dg.MetadataValue.json(run_ids),
            "not_materialised": dg.MetadataValue.json(sorted(set(hedge_policy) - set(policies))),
        })
    yield from outputs_then_checks(outputs, checks)


@dg.asset(
    kinds={"matplotlib"},
    partitions_def=hedging_study_partitions,
    group_name=GROUP,
    ins={"hedging_scorecard": dg.AssetIn(), "hedge_policy": optional_input(partition_mapping=hedging_policies_of_study),
         "hedging_environments": dg.AssetIn(partition_mapping=dg.SpecificPartitionsPartitionMapping(["crisis"]))},
)
def hedging_figures(
    context: dg.AssetExecutionContext,
    hedging_scorecard: KeyedFrames,
    hedge_policy: KeyedFrames,
    hedging_environments: KeyedFrames,
    hedging_study: HedgingStudyResource,
    torch_device: TorchDeviceResource,
    io_manager: dg.ResourceParam[PartitionedParquetIOManager],
) -> dg.MaterializeResult:
    """PNG figures: CVaR frontier, QQ plot of crisis P&L (ERM vs the IRM selected on high), lambda/beta sweeps;
    and the study page (study.html) with them and the success-criterion table."""
    from quantlab_assets.compute.hedging import figures
    from quantlab_assets.compute.hedging.evaluation import policy_pnl, success_table

    preset = context.partition_key
    config, scorecard = hedging_study.config(preset), hedging_scorecard[preset]
    folder = io_manager.layout.hedging_study_folder(preset)
    written = {"cvar_frontier": figures.frontier(scorecard, config, folder / "figures" / "cvar_frontier.png"),
               "sweeps": figures.sweeps(scorecard, config, folder / "figures" / "lambda_beta_sweeps.png")}
    selection = success_table(scorecard, config).filter(pl.col("method") == IRM_HEAD, pl.col("selected"))
    policies = hedge_policy
    seeds = sorted({parse_policy_key(k)[2] for k in policies})
    if selection.height and seeds:
        strength = selection["strength"][0]
        # The lowest seed that has both policies; which seed is shown is fixed before looking at any result.
        seed = next((s for s in seeds if policy_key(ERM, 0.0, s) in policies and policy_key(IRM_HEAD, strength, s) in policies), None)
        if seed is not None:
            crisis = paths_from_frame(hedging_environments["crisis"])
            pnl = {m: policy_pnl(policies[policy_key(m, s, seed)]["state"][0], crisis, config, torch_device.choice().device)
                   for m, s in ((ERM, 0.0), (IRM_HEAD, strength))}
            written["qq_crisis"] = figures.qq_plot(pnl[ERM], pnl[IRM_HEAD], f"irm_head lambda={strength:g} (seed {seed})",
                                                   folder / "figures" / "qq_crisis_erm_vs_irm.png")
    page = figures.study_page(written, success_table(scorecard, config), config, folder / "study.html")
    # A path, not a file:// url: a browser does not open file:// links from the UI's http page.
    return dg.MaterializeResult(metadata={
        **{name: dg.MetadataValue.path(str(path)) for name, path in written.items()},
        "study_page": dg.MetadataValue.path(str(page)),
    })
