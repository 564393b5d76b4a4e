# unlearn-repro: the whole paper as one DAG. `snakemake --cores all` (embedded profile by default);
# `snakemake --profile profiles/paper` for the hub models on GPUs. Rules live in rules/*.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


from unlearn_repro import config as params_config

# Validated once (every profile block too) and resolved: a bad key or value stops here, named with its valid
# choices (schemas/params.schema.yaml completed by the method and optimizer registries). Rules read CFG.
CFG = params_config.resolve(config, config.get("profile"))


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/base_models.smk"
include: "rules/unlearn.smk"
include: "rules/evaluate.smk"
include: "rules/main.smk"
include: "rules/discussions.smk"
include: "rules/memorization.smk"
include: "rules/privacy.smk"
include: "rules/verdicts.smk"
include: "rules/tofu.smk"
include: "rules/tdec.smk"


rule all:  # every study
    default_target: True
    input:
        rules.main.input,
        rules.discussions.input,
        rules.memorization.input,
        rules.privacy.input,
        rules.verdicts.output,
        rules.tofu.input,
        rules.tdec.input,
