rule distill:
    input: teacher=TEACHER, prompts=f"{R}/prompts/prompts.txt", black=f"{R}/black_latent.pt"
    output: student=directory(f"{R}/student"), live=directory(f"{R}/student_live")
    params: cfg=config["distill"]
    log: f"{R}/logs/distill.log"
    # One thread: the world's distillation step is no faster on two (2.2 steps/s either way), so
    # evaluate_teacher runs beside it. Sana scale runs on the GPU and reads only a prompt file.
    threads: 1
    priority: 10  # before evaluate_teacher: distill is on the critical path
    resources: gpu=1
    shell:
        "tbcm distill --params {PARAMS} --teacher {input.teacher} --prompts {input.prompts} "
        "--black-latent {input.black} --out {output.student} --live {output.live} --resume latest > {log} 2>&1"
