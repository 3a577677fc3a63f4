rule report:
    input:
        teacher=f"{R}/metrics/teacher.json", student=f"{R}/metrics/student.json", student_dir=f"{R}/student",
        world=[f"{R}/world/{k}" for k in ("vae", "judge", "teacher")] if WORLD else [],
    output: report=f"{R}/report.md", plots=directory(f"{R}/plots")
    log: f"{R}/logs/report.log"
    params: world=f"--world {R}/world" if WORLD else ""
    shell: "tbcm report --params {PARAMS} --teacher {input.teacher} --student {input.student} --train-log {input.student_dir}/train_log.json {params.world} --out {output.report} > {log} 2>&1"
