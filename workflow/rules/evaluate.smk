# Sampling (1/2/4 steps, the teacher at its own step count) and scoring happen in one stage per model.
rule evaluate_teacher:
    input: model=TEACHER, data=f"{R}/world/data", judge=f"{R}/world/judge"
    output: metrics=f"{R}/metrics/teacher.json", grids=directory(f"{R}/grids/teacher")
    params: cfg={"sample": config["sample"], "evaluate": config["evaluate"]}
    log: f"{R}/logs/evaluate_teacher.log"
    threads: 2
    resources: gpu=1
    shell:
        "tbcm world-eval --params {PARAMS} --teacher --samples {R}/samples/teacher --model {input.model} --data {input.data} --judge {input.judge} "
        "--grids {output.grids} --out {output.metrics} > {log} 2>&1"

rule evaluate_student:
    input: model=f"{R}/student", data=f"{R}/world/data", judge=f"{R}/world/judge"
    output: metrics=f"{R}/metrics/student.json", grids=directory(f"{R}/grids/student")
    params: cfg={"sample": config["sample"], "evaluate": config["evaluate"]}
    log: f"{R}/logs/evaluate_student.log"
    threads: 2
    resources: gpu=1
    shell:
        "tbcm world-eval --params {PARAMS} --samples {R}/samples/student --model {input.model} --data {input.data} --judge {input.judge} "
        "--grids {output.grids} --out {output.metrics} > {log} 2>&1"
