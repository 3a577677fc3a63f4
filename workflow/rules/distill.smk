# distill.processes > 1: one process per GPU of one node, launched by accelerate (DDP or FSDP, distill.parallel);
# without a GPU the same command forms a gloo group of CPU processes. Mixed precision is distill.precision,
# not accelerate's flag. Several nodes need a launcher per node, which this rule does not do.
PROCESSES = config["distill"]["processes"]
DISTILL = "tbcm" if PROCESSES == 1 else (
    f"accelerate launch --multi_gpu --num_processes {PROCESSES} --num_machines 1 --mixed_precision no "
    "--dynamo_backend no -m tbcm.cli")

rule distill:
    input: teacher=TEACHER, prompts=f"{R}/prompts/prompts.txt", black=f"{R}/black_latent.pt"
    output: student=directory(f"{R}/student"), live=directory(f"{R}/student_live")
    params: cfg=stage_params("distill")
    log: f"{R}/logs/distill.log"
    # The world: one thread a process, as a distillation step is no faster on two (2.2 steps/s either way), so
    # evaluate_teacher runs beside it. Sana scale: the GPUs do the work, two CPUs a process feed them.
    threads: PROCESSES * (1 if WORLD else 2)
    priority: 10  # before evaluate_teacher: distill is on the critical path
    resources: gpu=PROCESSES, nodes=1
    shell:
        "{DISTILL} distill --params {PARAMS:q} --teacher {input.teacher:q} --prompts {input.prompts:q} "
        "--black-latent {input.black:q} --out {output.student:q} --live {output.live:q} --resume latest > {log} 2>&1"
