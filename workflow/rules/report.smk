rule report:
    input: teacher=f"{R}/metrics/teacher.json", student=f"{R}/metrics/student.json", student_dir=f"{R}/student"
    output: report=f"{R}/report.md", plots=directory(f"{R}/plots")
    log: f"{R}/logs/report.log"
    shell: "tbcm report --params {PARAMS} --teacher {input.teacher} --student {input.student} --train-log {input.student_dir}/train_log.json --out {output.report} > {log} 2>&1"
