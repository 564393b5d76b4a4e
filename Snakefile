# unlearn-repro: the whole paper as one DAG. `snakemake --cores all` (embedded profile by default);
# `snakemake --profile profiles/paper` for the hub models on GPUs. Rules live in rules/*.smk: the shared
# steps included below by name, then every declared study's (src/unlearn_repro/studies/).
from snakemake.utils import min_version

min_version("9.0")


import sys

from unlearn_repro import config as params_config

# params.yaml < its profile block < each --configfile < --config (docs/configuration.md), resolved by the same
# function as every CLI command, validated once: a bad key or value stops here, named with the file (and line)
# or --config that set it and the valid choices. A user's value that a later layer replaces is reported.
# params.yaml is read here, not by a `configfile:` directive, so that its YAML errors name the file and line.
try:
    _LAYERED = params_config.resolve_layers(
        "params.yaml", workflow.overwrite_configfiles, workflow.config_settings.config
    )
    params_config.check_profile_flag(sys.argv, _LAYERED.cfg.profile)
except params_config.ConfigError as e:
    raise WorkflowError(f"ConfigError: {e}") from None
for _warning in _LAYERED.warnings:
    print(f"[config] warning: {_warning}", file=sys.stderr)
CFG = _LAYERED.cfg


# One job server per local run: the jobs fork from a process that imported torch and transformers once
# (src/unlearn_repro/jobserver.py; UNLEARN_JOBSERVER=off runs each job as its own process, as on a cluster).
from unlearn_repro.jobserver import Workflow as JobServer, end_idle_timers

JOBSERVER = JobServer()


onstart:
    if workflow.local_exec:
        # the shell jobs it would fork (a target rule such as `all` runs nothing)
        JOBSERVER.start(jobs=sum(job.is_shell for job in workflow.dag.needrun_jobs()))


onsuccess:
    JOBSERVER.stop()
    end_idle_timers()


onerror:
    JOBSERVER.stop()
    end_idle_timers()


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/base_models.smk"
include: "rules/unlearn.smk"
include: "rules/evaluate.smk"

# The Snakemake report's front page (`make report`): every study's tables and figures, by category, each
# with its caption from report_captions/<study>/.
report: "report_captions/workflow.rst"


# Every study: the rule file that its declaration (src/unlearn_repro/studies/<name>.py) names, and its
# target rule's outputs (or inputs, when it has none) in the default target (docs/design.md: a study).
from unlearn_repro.studies import STUDIES

STUDY_TARGETS = []
for _study in map(STUDIES.get, STUDIES.names()):
    if not Path(workflow.basedir, _study.rule_file).is_file():
        raise WorkflowError(f"study {_study.name!r} (src/unlearn_repro/studies/{_study.name}.py): its rule "
                            f"file {_study.rule_file} is missing")
    include: _study.rule_file
    try:
        _target = getattr(rules, _study.target)
    except WorkflowError:  # Snakemake's own message does not say which study
        raise WorkflowError(f"study {_study.name!r}: {_study.rule_file} has no target rule "
                            f"{_study.target!r}") from None
    if _study.default:
        STUDY_TARGETS.append(_target.output or _target.input)


rule all:  # every study's target
    default_target: True
    input:
        STUDY_TARGETS,
