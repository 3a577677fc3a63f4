# The embedded world (source: world): data, VAE, judge and teacher, built from nothing. CPU-sized
# (minutes on 2 cores), so no rule here asks a cluster for a GPU. The critical path is VAE -> teacher
# -> distill: the VAE goes first on both cores (priority; a VAE step is 1.6x faster on two threads),
# then teacher and judge train side by side on one thread each; the judge (~9 min) is needed only
# for evaluation and finishes while distill runs (docs/world-budget.md).
if WORLD:

    rule world_data:
        output: directory(f"{R}/world/data")
        params: cfg=stage_params("world_data")
        log: f"{R}/logs/world_data.log"
        shell: "tbcm world-data --params {PARAMS:q} --out {output:q} > {log} 2>&1"

    rule world_vae:
        input: f"{R}/world/data"
        output: directory(f"{R}/world/vae")
        params: cfg=stage_params("world_vae")
        log: f"{R}/logs/world_vae.log"
        threads: 2
        priority: 10
        shell: "tbcm world-vae --params {PARAMS:q} --data {input:q} --out {output:q} > {log} 2>&1"

    rule world_judge:
        input: f"{R}/world/data"
        output: directory(f"{R}/world/judge")
        params: cfg=stage_params("world_judge")
        log: f"{R}/logs/world_judge.log"
        threads: 1
        shell: "tbcm world-judge --params {PARAMS:q} --data {input:q} --out {output:q} > {log} 2>&1"

    rule world_teacher:
        input: data=f"{R}/world/data", vae=f"{R}/world/vae"
        output: directory(f"{R}/world/teacher")
        params: cfg=stage_params("world_teacher")
        log: f"{R}/logs/world_teacher.log"
        threads: 1
        priority: 10
        shell: "tbcm world-teacher --params {PARAMS:q} --data {input.data:q} --vae {input.vae:q} --out {output:q} > {log} 2>&1"
