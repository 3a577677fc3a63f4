rule report:
    input: teacher=f"{R}/metrics/teacher.json", student=f"{R}/metrics/student.json", student_dir=f"{R}/student"
    output: f"{R}/report.md"
    log: f"{R}/logs/report.log"
    shell: "tbcm report --params {PARAMS} --teacher {input.teacher} --student {input.student} --train-log {input.student_dir}/train_log.json --out {output} > {log} 2>&1"
