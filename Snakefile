# tbcm: prompts -> black latent -> TBCM distillation -> 1/2/4-step sampling -> evaluation -> report.
# Every rule is a `tbcm <stage>` command over the library; settings come from params.yaml. Paths in the
# commands are quoted ({input:q}): a user's teacher or MJHQ-30k folder may have spaces in its path.
import shlex
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from tbcm.config import differing_keys, load_params
from tbcm.prompts import select_prompts

configfile: "params.yaml"

R = "results"
# Every stage reads its settings from one file, PARAMS: params.yaml, or the last --configfile. Snakemake
# merges a --configfile (and --config values) over params.yaml, which the stages would not see, so its
# config must equal that file alone: a partial file or a --config override stops the run here.
PARAMS = str(list(workflow.overwrite_configfiles)[-1]) if workflow.overwrite_configfiles else "params.yaml"
try:
    STAGE_CONFIG = load_params(PARAMS)
except ValueError as e:
    raise WorkflowError(f"{PARAMS}: {e}")
if STAGE_CONFIG != config:
    raise WorkflowError(f"the configuration differs from {PARAMS}, the file every stage reads, in "
                        f"{', '.join(differing_keys(config, STAGE_CONFIG))}: give one complete configuration "
                        "(params.yaml or --configfile FILE, with every key params.yaml has) and no --config overrides")
# Compared before Snakemake's validate, which would fill in schema defaults the stages never see.
validate(config, "workflow/schemas/params.schema.yaml")
WORLD = config["source"] == "world"  # the embedded world; otherwise a local Sana teacher and MJHQ-30k

# Which params.yaml keys each rule reads: one table for Snakemake's rerun triggers and dvc.yaml's params.
with open(Path(workflow.basedir) / "workflow" / "stage_params.yaml") as f:
    STAGE_PARAMS = yaml.safe_load(f)


def stage_params(rule: str) -> dict:
    """{key: value} of the params.yaml keys `rule` reads (workflow/stage_params.yaml), its rules' `params`."""
    out = {}
    for key in STAGE_PARAMS[rule]:
        value = config
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out

# A prompt file is read now, before any job starts: a missing file, a missing column or a set left
# empty by cleaning and the word filter stops the run with the key and the path named.
if config["prompts"]["file"]:
    try:
        select_prompts(config["prompts"]["file"], config["prompts"]["column"], config["prompts"]["min_words"],
                       config["prompts"]["max_words"])
    except ValueError as e:
        raise WorkflowError(f"prompts.file: {e}")
elif config["source"] == "sana":
    raise WorkflowError("prompts.file: source sana needs a prompt file (the caption grammar is the embedded world's)")

include: "workflow/rules/world.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/black_latent.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/fid_reference.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"

rule all:
    input:
        f"{R}/report.md",
