# unlearn-repro: the whole paper as one DAG. `snakemake --cores all` (embedded profile by default);
# `snakemake --profile profiles/paper` for the hub models on GPUs. Rules live in rules/*.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


from unlearn_repro import config as params_config

params_config.validate(config)  # a bad key or value stops here, named with its valid choices (the schema
# comes from schemas/params.schema.yaml completed by the method and optimizer registries)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/base_models.smk"
include: "rules/unlearn.smk"
include: "rules/evaluate.smk"
include: "rules/main.smk"
include: "rules/discussions.smk"
include: "rules/verdicts.smk"


rule all:  # every study
    default_target: True
    input:
        rules.main.input,
        rules.discussions.input,
        rules.verdicts.output,
