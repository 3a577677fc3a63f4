TEACHER = f"{R}/world/teacher" if config["source"] == "world" else config["sana"]["teacher"]

rule black_latent:
    input: TEACHER
    output: f"{R}/black_latent.pt"
    params: cfg=config["black_latent"]
    log: f"{R}/logs/black_latent.log"
    shell: "tbcm black-latent --params {PARAMS} --teacher {input} --out {output} > {log} 2>&1"
