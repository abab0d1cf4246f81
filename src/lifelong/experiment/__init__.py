"""The experiment layer: one experiment model for every command that computes, above the library.

`base.Experiment`: a config dataclass (its fields, with their help texts, are the command's options and
config keys: `configs`) -> units of work -> records -> a summary table and a run folder (config.json,
results.json of a versioned schema), resumable per unit. One module per command:

    continual   `lifelong run`       RunConfig, RunExperiment, run, make_strategy, make_stream, write_run_dir
    transfer    `lifelong transfer`  CurveConfig, TransferExperiment, learning_curve, write_curve_dir
    adapt       `lifelong adapt`     AdaptConfig, AdaptExperiment, run_adaptation, grid_scores
    meta        `lifelong meta`      MetaConfig, MetaExperiment, run_meta, make_learner, write_meta_dir
    pretrain    `lifelong pretrain`  PretrainConfig, PretrainExperiment
    rl          `lifelong rl`        RLConfig, RLExperiment (continual reinforcement learning, extra `rl`)

`commands.EXPERIMENTS` lists them by command name. The CLI is a thin front over these; Python users can
call them too. Imports point down only: this package uses `training`, `transfer`, `meta` and below,
and nothing under it imports it (tests/test_layers.py).
"""

from ..results import RESULTS_SCHEMA, load_results
from .adapt import AdaptConfig, AdaptExperiment, grid_scores, run_adaptation
from .base import (Experiment, Record, Unit, check_out_dir, check_unfinished, claim_out_dir,
                   resumable)
from .commands import EXPERIMENTS, SCHEMAS
from .continual import (RECORD_KEYS, RunConfig, RunExperiment, config_keys, make_strategy, make_stream, run,
                        write_run_dir)
from .meta import MetaConfig, MetaExperiment, make_learner, run_meta, write_meta_dir
from .pretrain import PretrainConfig, PretrainExperiment
from .transfer import CurveConfig, TransferExperiment, learning_curve, write_curve_dir

__all__ = [
    "EXPERIMENTS", "RECORD_KEYS", "RESULTS_SCHEMA", "SCHEMAS", "AdaptConfig", "AdaptExperiment", "CurveConfig",
    "Experiment", "MetaConfig", "MetaExperiment", "PretrainConfig", "PretrainExperiment", "Record", "RunConfig",
    "RunExperiment", "TransferExperiment", "Unit", "check_out_dir", "check_unfinished", "claim_out_dir",
    "config_keys", "grid_scores", "learning_curve", "load_results", "make_learner", "make_stream", "make_strategy",
    "resumable", "run", "run_adaptation", "run_meta", "write_curve_dir", "write_meta_dir", "write_run_dir",
]
