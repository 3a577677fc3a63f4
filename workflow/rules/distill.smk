rule distill:
    input: teacher=TEACHER, prompts=f"{R}/prompts/prompts.txt", black=f"{R}/black_latent.pt"
    output: student=directory(f"{R}/student"), live=directory(f"{R}/student_live")
    params: cfg=stage_params("distill")
    log: f"{R}/logs/distill.log"
    # The world: one thread, as a distillation step is no faster on two (2.2 steps/s either way), so
    # evaluate_teacher runs beside it. Sana scale: the GPU does the work, the CPUs feed it.
    threads: 1 if WORLD else 2
    priority: 10  # before evaluate_teacher: distill is on the critical path
    resources: gpu=1
    shell:
        "tbcm distill --params {PARAMS} --teacher {input.teacher} --prompts {input.prompts} "
        "--black-latent {input.black} --out {output.student} --live {output.live} --resume latest > {log} 2>&1"
