# Sampling (1/2/4 steps, the teacher at its own step count) and scoring happen in one stage per model,
# against the FID reference of rules/fid_reference.smk, read and never computed here (--ref-cached).
# The world is scored by its judge (`tbcm world-eval`), MJHQ-30k by Inception-v3 and OpenAI CLIP from
# evaluate.weights_dir (`tbcm evaluate`).
# evaluate.processes > 1 (source: sana): `tbcm evaluate` launches that many processes on the job's node, one
# per GPU, each generating and scoring its share of the images; the main one gathers the scores. The command
# is the same for any count.
EVALUATE = "world-eval" if WORLD else "evaluate"
EVAL_PROCESSES = config["evaluate"]["processes"]
# CPUs: per process, itself and its evaluate.decode_workers (reading images back for the metrics); with source:
# sana at least 2, for the PNG-writing threads beside sampling. The world: one each, side by side or beside distill.
EVAL_THREADS = (1 + DECODE_WORKERS) if WORLD else max(2, 1 + DECODE_WORKERS) * EVAL_PROCESSES
# Host memory: every process loads the model, Inception-v3 and CLIP at once, the Slurm profile's default for one
# (the teacher's weights read and CLIP loaded peaked at 11.5 GB at Sana-Sprint 0.6B in fp32, mostly mapped
# files; docs/host-memory.md), plus what its decode workers hold in shared memory (DECODE_MEM_MB, fid_reference.smk).
EVAL_MEM_MB = (16000 + DECODE_MEM_MB) * EVAL_PROCESSES
JUDGE = {"judge": f"{R}/world/judge"} if WORLD else {}


def judge_flag(wildcards, input):
    return f"--judge {shlex.quote(input.judge)}" if WORLD else ""


rule evaluate_teacher:
    input: model=TEACHER, data=EVAL_SET, ref=FID_REF, **JUDGE
    output: metrics=f"{R}/metrics/teacher.json", grids=directory(f"{R}/grids/teacher")
    params: cfg=stage_params("evaluate_teacher"), judge=judge_flag
    log: f"{R}/logs/evaluate_teacher.log"
    threads: EVAL_THREADS
    resources: gpu=EVAL_PROCESSES, nodes=1, mem_mb=EVAL_MEM_MB
    shell:
        "tbcm {EVALUATE} --params {PARAMS:q} --teacher --samples {R}/samples/teacher --model {input.model:q} --data {input.data:q} {params.judge} "
        "--ref-dir {input.ref:q} --ref-cached --grids {output.grids:q} --out {output.metrics:q} > {log} 2>&1"

rule evaluate_student:
    input: model=f"{R}/student", data=EVAL_SET, ref=FID_REF, **JUDGE
    output: metrics=f"{R}/metrics/student.json", grids=directory(f"{R}/grids/student")
    params: cfg=stage_params("evaluate_student"), judge=judge_flag
    log: f"{R}/logs/evaluate_student.log"
    threads: EVAL_THREADS
    resources: gpu=EVAL_PROCESSES, nodes=1, mem_mb=EVAL_MEM_MB
    shell:
        "tbcm {EVALUATE} --params {PARAMS:q} --samples {R}/samples/student --model {input.model:q} --data {input.data:q} {params.judge} "
        "--ref-dir {input.ref:q} --ref-cached --grids {output.grids:q} --out {output.metrics:q} > {log} 2>&1"
