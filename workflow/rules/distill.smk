# distill.processes > 1: `tbcm distill` launches that many processes on the job's node, one per GPU, with
# accelerate (DDP or FSDP, distill.parallel; without a GPU a gloo group of CPU processes), so the command, and
# dvc.yaml with it, is the same for any count. Several nodes need a launcher per node, which this rule does not do.
PROCESSES = config["distill"]["processes"]

rule distill:
    input: teacher=TEACHER, prompts=f"{R}/prompts/prompts.txt", black=f"{R}/black_latent.pt"
    output: student=directory(f"{R}/student"), live=directory(f"{R}/student_live")
    params: cfg=stage_params("distill")
    log: f"{R}/logs/distill.log"
    # The world: one thread a process, as a distillation step is no faster on two (2.2 steps/s either way), so
    # evaluate_teacher runs beside it. Sana scale: the GPUs do the work, two CPUs a process feed them.
    threads: PROCESSES * (1 if WORLD else 2)
    priority: 10  # before evaluate_teacher: distill is on the critical path
    # Host memory: each process loads the teacher, Gemma-2-2B and the student before moving them to its GPU, at
    # the same time as the others. A whole 1-step run at Sana-Sprint 0.6B with everything on the CPU (student,
    # gradients, AdamW included) peaked at 18.1 GB (docs/host-memory.md): a bound, less CUDA's own memory.
    resources: gpu=PROCESSES, nodes=1, mem_mb=max(64000, 24000 * PROCESSES)
    shell:
        "tbcm distill --params {PARAMS:q} --teacher {input.teacher:q} --prompts {input.prompts:q} "
        "--black-latent {input.black:q} --out {output.student:q} --live {output.live:q} --resume latest > {log} 2>&1"
