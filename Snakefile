# tbcm: prompts -> black latent -> TBCM distillation -> 1/2/4-step sampling -> evaluation -> report.
# Every rule is a `tbcm <stage>` command over the library; settings come from params.yaml.
from snakemake.utils import validate

configfile: "params.yaml"
validate(config, "workflow/schemas/params.schema.yaml")

R = "results"
# Stages read the same file Snakemake was configured with (a --configfile replaces params.yaml whole).
PARAMS = str(list(workflow.overwrite_configfiles)[-1]) if workflow.overwrite_configfiles else "params.yaml"

include: "workflow/rules/world.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/black_latent.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"

rule all:
    input:
        f"{R}/report.md",
