rule report:
    input:
        teacher=f"{R}/metrics/teacher.json", student=f"{R}/metrics/student.json", student_dir=f"{R}/student",
        world=[f"{R}/world/{k}" for k in ("vae", "judge", "teacher")] if WORLD else [],
    output: report=f"{R}/report.md", plots=directory(f"{R}/plots")
    log: f"{R}/logs/report.log"
    params: world=f"--world {R}/world" if WORLD else ""
    shell: "tbcm report --params {PARAMS:q} --teacher {input.teacher:q} --student {input.student:q} --train-log {input.student_dir:q}/train_log.json {params.world} --out {output.report:q} > {log} 2>&1"
